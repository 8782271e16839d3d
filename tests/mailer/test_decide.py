"""Which emails a payload means: sysnotify.mailer.intake.decide against captured Alertmanager
payloads."""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.intake.decide import AlertState, Audience, Decision, alert_identity, decide
from sysnotify.mailer.intake.payload import Data, parse
from tests.support.alertmanager import fixture_payload, named, regrouped, with_starts_at

WINDOW = 3600.0
T0 = 1_795_800_000.0


class Memory:
    """Applies decisions to an in-memory state, as the intake transaction does in the store."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or Catalog()
        self.states: dict[str, AlertState] = {}

    def run(
        self, payload: dict[str, Any] | Data, now: float, audience: Audience = "customer"
    ) -> Decision:
        data = payload if isinstance(payload, Data) else parse(payload)
        identities = {alert_identity(a, audience) for a in data.alerts}
        known = {i: self.states[i] for i in identities if i in self.states}
        decision = decide(data, self.catalog, known, now, WINDOW, audience)
        for state in decision.states:
            self.states[state.identity] = state
        return decision


def phases(decision: Decision) -> list[tuple[str, str, str, int]]:
    return [(e.account, e.kind.name, e.phase, len(e.alerts)) for e in decision.emails]


def test_new_firing_alerts_mean_one_problem_email_per_account_and_kind() -> None:
    decision = Memory().run(fixture_payload("credential_expired_grouped_firing"), T0)
    assert phases(decision) == [("acc-1002", "credential_expired", "problem", 3)]
    assert decision.emails[0].account_name == "Initech"
    assert decision.received == {"credential_expired": 3}
    assert not decision.deduplicated


def test_same_payload_again_within_the_window_sends_nothing_and_counts_duplicates() -> None:
    memory = Memory()
    payload = fixture_payload("credential_expired_grouped_firing")
    memory.run(payload, T0)
    again = memory.run(payload, T0 + 30)
    assert again.emails == []
    assert again.deduplicated == {"credential_expired": 3}


def test_ha_peer_copy_with_another_external_url_is_a_duplicate() -> None:
    memory = Memory()
    payload = fixture_payload("credential_expired_firing")
    memory.run(payload, T0)
    peer = copy.deepcopy(payload)
    peer["externalURL"] = "http://alertmanager-2.example:9093"
    assert parse(peer).idempotency_key() == parse(payload).idempotency_key()
    assert memory.run(peer, T0 + 15).emails == []


def test_repeat_after_the_window_is_a_reminder_threaded_under_the_problem() -> None:
    memory = Memory()
    payload = fixture_payload("credential_expired_grouped_firing")
    problem = memory.run(payload, T0).emails[0]
    reminder = memory.run(payload, T0 + WINDOW + 1)
    assert phases(reminder) == [("acc-1002", "credential_expired", "reminder", 3)]
    assert reminder.emails[0].thread_keys == (problem.notification_key,)
    assert reminder.emails[0].notification_key != problem.notification_key
    # Its own HA copy is a duplicate; the next repeat is a second, distinct reminder.
    assert memory.run(payload, T0 + WINDOW + 20).emails == []
    second = memory.run(payload, T0 + 2 * WINDOW + 30)
    assert phases(second) == [("acc-1002", "credential_expired", "reminder", 3)]
    assert second.emails[0].notification_key != reminder.emails[0].notification_key


def test_resolved_alert_sends_a_threaded_recovery_where_the_catalog_has_one() -> None:
    memory = Memory()
    problem = memory.run(fixture_payload("credential_expired_firing"), T0).emails[0]
    recovery = memory.run(fixture_payload("credential_expired_resolved"), T0 + 300)
    assert phases(recovery) == [("acc-1001", "credential_expired", "recovery", 1)]
    assert recovery.emails[0].thread_keys == (problem.notification_key,)
    # Re-delivered resolution: nothing more.
    again = memory.run(fixture_payload("credential_expired_resolved"), T0 + 310)
    assert again.emails == [] and again.deduplicated == {"credential_expired": 1}


def test_late_firing_copy_after_the_recovery_sends_nothing() -> None:
    memory = Memory()
    memory.run(fixture_payload("credential_expired_firing"), T0)
    memory.run(fixture_payload("credential_expired_resolved"), T0 + 300)
    late = memory.run(fixture_payload("credential_expired_firing"), T0 + 301)
    assert late.emails == [] and late.deduplicated == {"credential_expired": 1}


def test_late_firing_copy_after_a_recovery_long_after_the_problem_is_no_reminder() -> None:
    # The episode's last email is older than the window: were the recovered episode taken
    # for an open one, this copy would be a "still broken" reminder after the fix.
    memory = Memory()
    memory.run(fixture_payload("credential_expired_firing"), T0)
    memory.run(fixture_payload("credential_expired_resolved"), T0 + 2 * WINDOW)
    late = memory.run(fixture_payload("credential_expired_firing"), T0 + 2 * WINDOW + 30)
    assert late.emails == [] and late.deduplicated == {"credential_expired": 1}
    assert late.states == []  # the recorded recovery stays as it was


def test_a_route_edit_resends_nothing_and_the_episode_recovers_through_the_new_group() -> None:
    memory = Memory()
    firing = fixture_payload("credential_expired_grouped_firing")
    problem = memory.run(firing, T0).emails[0]
    # Alertmanager notifies the new group at once, whatever the time since the problem email.
    moved = memory.run(regrouped(firing), T0 + 3 * WINDOW)
    assert moved.emails == [] and moved.deduplicated == {"credential_expired": 3}
    assert memory.run(regrouped(firing), T0 + 3 * WINDOW + 10).emails == []  # its retry
    # A peer still on the old route repeats the old group: not a new problem either.
    assert memory.run(firing, T0 + 3 * WINDOW + 20).emails == []
    partly = regrouped(fixture_payload("credential_expired_grouped_partly_resolved"))
    recovery = memory.run(partly, T0 + 4 * WINDOW)
    assert phases(recovery) == [("acc-1002", "credential_expired", "recovery", 1)]
    assert recovery.emails[0].thread_keys == (problem.notification_key,)


def test_reminders_continue_in_the_new_group_threaded_under_the_first_problem() -> None:
    memory = Memory()
    firing = fixture_payload("credential_expired_firing")
    problem = memory.run(firing, T0).emails[0]
    assert memory.run(regrouped(firing), T0 + 2 * WINDOW).emails == []
    reminder = memory.run(regrouped(firing), T0 + 3 * WINDOW + 1)  # the new group's repeat
    assert phases(reminder) == [("acc-1001", "credential_expired", "reminder", 1)]
    assert reminder.emails[0].thread_keys == (problem.notification_key,)


@pytest.mark.parametrize(
    "late_start",
    [
        "2026-11-27T02:40:53.100000Z",  # an HA replica that fired a little later
        "2026-11-27T02:40:54.709067Z",  # fired exactly when the recovery was recorded
    ],
)
def test_a_later_startsat_not_newer_than_the_recovery_sends_nothing(late_start: str) -> None:
    memory = Memory()
    memory.run(fixture_payload("credential_expired_firing"), T0)
    memory.run(fixture_payload("credential_expired_resolved"), T0 + 300)  # endsAt 02:40:54.709
    late = with_starts_at(fixture_payload("credential_expired_firing"), late_start)
    assert memory.run(late, T0 + 310).emails == []
    # ... and its own resolved copy is no second "working again".
    assert (
        memory.run(
            with_starts_at(fixture_payload("credential_expired_resolved"), late_start), T0 + 320
        ).emails
        == []
    )


def test_a_re_fire_after_the_recovery_is_a_new_problem_with_its_own_thread() -> None:
    memory = Memory()
    first = memory.run(fixture_payload("credential_expired_firing"), T0).emails[0]
    memory.run(fixture_payload("credential_expired_resolved"), T0 + 300)
    refired = "2026-11-27T05:00:00Z"
    again = memory.run(
        with_starts_at(fixture_payload("credential_expired_firing"), refired), T0 + 9000
    )
    assert phases(again) == [("acc-1001", "credential_expired", "problem", 1)]
    assert again.emails[0].notification_key != first.notification_key
    resolved = with_starts_at(fixture_payload("credential_expired_resolved"), refired)
    for alert in resolved["alerts"]:
        alert["endsAt"] = "2026-11-27T06:00:00Z"
    recovery = memory.run(resolved, T0 + 12000)
    assert phases(recovery) == [("acc-1001", "credential_expired", "recovery", 1)]
    assert recovery.emails[0].thread_keys == (again.emails[0].notification_key,)


def test_renaming_an_account_in_an_alert_label_sends_nothing_until_the_next_reminder() -> None:
    """Older rules put the name in a label: a rename makes a new alert (new fingerprint) that
    fires beside the old one, which then resolves."""
    memory = Memory()
    old = named(fixture_payload("credential_expired_firing"), "Globex", as_label=True)
    new = named(fixture_payload("credential_expired_firing"), "Globex Group", as_label=True)
    problem = memory.run(old, T0).emails[0]
    both = copy.deepcopy(new)
    both["alerts"] = old["alerts"] + new["alerts"]
    assert memory.run(both, T0 + 600).emails == []
    old_resolved = copy.deepcopy(both)
    old_resolved["alerts"][0]["status"] = "resolved"
    old_resolved["alerts"][0]["endsAt"] = "2026-11-27T02:55:00Z"
    assert memory.run(old_resolved, T0 + 1200).emails == []  # not a false "working again"
    reminder = memory.run(new, T0 + WINDOW + 600)
    assert phases(reminder) == [("acc-1001", "credential_expired", "reminder", 1)]
    assert reminder.emails[0].account_name == "Globex Group"
    assert reminder.emails[0].thread_keys == (problem.notification_key,)


def test_renaming_an_account_in_the_annotation_sends_nothing_and_names_it_anew() -> None:
    memory = Memory()
    old = named(fixture_payload("credential_expired_firing"), "Globex", as_label=False)
    new = named(fixture_payload("credential_expired_firing"), "Globex Group", as_label=False)
    assert memory.run(old, T0).emails[0].account_name == "Globex"
    assert memory.run(new, T0 + 600).emails == []
    assert memory.run(new, T0 + WINDOW + 600).emails[0].account_name == "Globex Group"
    resolved = named(fixture_payload("credential_expired_resolved"), "Globex Group", as_label=False)
    recovery = memory.run(resolved, T0 + WINDOW + 900)
    assert phases(recovery) == [("acc-1001", "credential_expired", "recovery", 1)]
    assert recovery.emails[0].account_name == "Globex Group"


def test_an_identity_is_the_audience_and_the_labels_without_display_names() -> None:
    alert = parse(fixture_payload("credential_expired_firing")).alerts[0]
    renamed = replace(alert, labels={**alert.labels, "account_name": "Other"}, fingerprint="f")
    restarted = replace(alert, starts_at=alert.starts_at + timedelta(minutes=5))
    other_system = replace(alert, labels={**alert.labels, "system": "hubspot"})
    identity = alert_identity(alert, "customer")
    assert alert_identity(renamed, "customer") == identity
    assert alert_identity(restarted, "customer") == identity
    assert alert_identity(other_system, "customer") != identity
    assert alert_identity(alert, "operator") != identity


def test_while_the_accounts_data_is_missing_a_reminder_keeps_the_last_name() -> None:
    """The rules' annotation is empty while the exporter does not publish the account."""
    memory = Memory()
    memory.run(named(fixture_payload("credential_expired_firing"), "Globex", as_label=False), T0)
    missing = named(fixture_payload("credential_expired_firing"), "", as_label=False)
    assert memory.run(missing, T0 + WINDOW + 1).emails[0].account_name == "Globex"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"api_limit_reached": True}, [("acc-2002", "api_limit_reached", "recovery", 1)]),
    ],
)
def test_recovery_only_where_enabled(
    overrides: dict[str, bool], expected: list[tuple[str, str, str, int]]
) -> None:
    memory = Memory(Catalog.with_overrides(overrides))
    memory.run(fixture_payload("api_limit_reached_firing"), T0)
    assert phases(memory.run(fixture_payload("api_limit_reached_resolved"), T0 + 60)) == expected


def test_partly_resolved_group_recovers_one_system_and_repeats_nothing_else() -> None:
    memory = Memory()
    memory.run(fixture_payload("credential_expired_grouped_firing"), T0)
    # Even after the window: the payload is a change (a resolution), not a repeat.
    decision = memory.run(
        fixture_payload("credential_expired_grouped_partly_resolved"), T0 + WINDOW + 5
    )
    assert phases(decision) == [("acc-1002", "credential_expired", "recovery", 1)]
    assert decision.emails[0].alerts[0].labels["system"] == "hubspot"
    assert decision.deduplicated == {"credential_expired": 2}


def test_new_alert_joining_a_group_gets_a_problem_email_listing_only_it() -> None:
    memory = Memory()
    grouped = fixture_payload("credential_expired_grouped_firing")
    first = copy.deepcopy(grouped)
    first["alerts"] = first["alerts"][:2]
    memory.run(first, T0)
    decision = memory.run(grouped, T0 + 120)
    assert phases(decision) == [("acc-1002", "credential_expired", "problem", 1)]
    assert decision.emails[0].alerts[0].fingerprint == grouped["alerts"][2]["fingerprint"]


def test_alerts_of_several_accounts_in_one_group_are_split_per_account() -> None:
    decision = Memory().run(fixture_payload("misrouted_two_accounts_firing"), T0)
    assert phases(decision) == [
        ("acc-4001", "web_visits_dropped", "problem", 1),
        ("acc-4002", "web_visits_dropped", "problem", 1),
    ]
    for email in decision.emails:
        assert {a.labels["account"] for a in email.alerts} == {email.account}


def test_alert_without_account_label_is_kept_as_unroutable() -> None:
    decision = Memory().run(fixture_payload("no_account_label_firing"), T0)
    assert decision.emails == []
    assert [(u.reason, u.kind.name) for u in decision.unroutable] == [
        ("no_account_label", "data_sync_delayed")
    ]
    assert decision.received == {"data_sync_delayed": 1}


def test_operator_alert_on_the_customer_webhook_is_never_routed_to_an_account() -> None:
    payload = fixture_payload("operator_firing")
    payload["alerts"][0]["labels"]["account"] = "acc-1001"
    decision = Memory().run(payload, T0)
    assert decision.emails == []
    assert [u.reason for u in decision.unroutable] == ["operator_alert_on_customer_webhook"]


def test_operator_webhook_groups_without_accounts() -> None:
    memory = Memory()
    decision = memory.run(fixture_payload("operator_firing"), T0, audience="operator")
    assert phases(decision) == [("", "generic", "problem", 1)]
    assert decision.emails[0].account_name == "operators"


def test_unknown_alertname_is_the_generic_notification() -> None:
    decision = Memory().run(fixture_payload("unknown_alertname_firing"), T0)
    assert phases(decision) == [("acc-2007", "generic", "problem", 1)]
    assert decision.received == {"generic": 1}


def test_resolved_alert_never_notified_sends_nothing() -> None:
    decision = Memory().run(fixture_payload("credential_expired_resolved"), T0)
    assert decision.emails == [] and decision.states == []


def test_keys_do_not_depend_on_the_clock_or_the_sending_peer() -> None:
    payload = fixture_payload("data_sync_delayed_firing")
    peer = copy.deepcopy(payload)
    peer["externalURL"] = "http://peer.example"
    peer["truncatedAlerts"] = 0
    a = Memory().run(payload, T0).emails[0].notification_key
    b = Memory().run(peer, T0 + 999).emails[0].notification_key
    assert a == b


def group_payload(statuses: tuple[str, ...]) -> dict[str, Any]:
    """The captured three-system group with each alert firing, resolved or absent ("-")."""
    payload = fixture_payload("credential_expired_grouped_firing")
    alerts = []
    for alert, status in zip(payload["alerts"], statuses, strict=True):
        if status == "-":
            continue
        alert = copy.deepcopy(alert)
        alert["status"] = status
        if status == "resolved":
            alert["endsAt"] = "2026-11-27T03:00:00Z"
        alerts.append(alert)
    payload["alerts"] = alerts
    return payload


# At most 12 steps whose gaps add up to less than the window: every payload is a change or a
# re-delivery, never Alertmanager's repeat.
step = st.tuples(
    st.tuples(*[st.sampled_from(["firing", "resolved", "-"])] * 3),
    st.floats(min_value=0, max_value=WINDOW / 13),
)


@given(steps=st.lists(step, min_size=1, max_size=12), peer_copies=st.booleans())
@settings(max_examples=150, deadline=None)
def test_within_the_window_each_alert_is_announced_and_recovered_at_most_once(
    steps: list[tuple[tuple[str, ...], float]], peer_copies: bool
) -> None:
    memory = Memory()
    now = T0
    problems: Counter[str] = Counter()
    recoveries: Counter[str] = Counter()
    for statuses, gap in steps:
        if not any(s != "-" for s in statuses):
            continue
        now += gap
        payload = group_payload(statuses)
        copies = [payload, {**payload, "externalURL": "http://peer"}] if peer_copies else [payload]
        for body in copies:
            for email in memory.run(body, now).emails:
                assert email.phase != "reminder"  # never inside the window
                target = problems if email.phase == "problem" else recoveries
                target.update(a.fingerprint for a in email.alerts)
    assert all(count == 1 for count in problems.values())
    assert all(count == 1 for count in recoveries.values())
    assert set(recoveries) <= set(problems)  # a recovery always follows its problem


ROUTES = ('{}:{account="acc-1002", alertname="CredentialExpired"}', '{}/{tier="gold"}')
STARTS = ("2026-11-27T02:40:52.597688124Z", "2026-11-27T02:41:30Z")  # both before any endsAt
moved_step = st.tuples(
    st.tuples(*[st.sampled_from(["firing", "resolved", "-"])] * 3),
    st.floats(min_value=0, max_value=WINDOW / 13),
    st.sampled_from(ROUTES),
    st.sampled_from(STARTS),
)


@given(steps=st.lists(moved_step, min_size=1, max_size=12))
@settings(max_examples=150, deadline=None)
def test_route_edits_and_restarts_within_the_window_announce_each_alert_at_most_once(
    steps: list[tuple[tuple[str, ...], float, str, str]],
) -> None:
    """Payloads from either of two routes (a route edit, or HA peers on two configs), with the
    startsAt of the first Prometheus or of a restarted one."""
    memory = Memory()
    now = T0
    problems: Counter[str] = Counter()
    recoveries: Counter[str] = Counter()
    for statuses, gap, route, starts_at in steps:
        if not any(s != "-" for s in statuses):
            continue
        now += gap
        payload = with_starts_at(group_payload(statuses), starts_at)
        if route != ROUTES[0]:
            payload = regrouped(payload, route)
        for email in memory.run(payload, now).emails:
            assert email.phase != "reminder"
            target = problems if email.phase == "problem" else recoveries
            target.update(a.labels["system"] for a in email.alerts)
    assert all(count == 1 for count in problems.values())
    assert all(count == 1 for count in recoveries.values())
    assert set(recoveries) <= set(problems)


# -- details pinned by mutation testing (docs/reliability.md, "Mutation testing") ----------


def resolved_all(payload: dict[str, Any], ends_at: str = "2026-11-27T02:40:54.709067Z") -> Any:
    """The payload with every alert resolved at `ends_at`."""
    edited = copy.deepcopy(payload)
    edited["status"] = "resolved"
    for alert in edited["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = ends_at
    return edited


def test_keys_are_the_hash_of_their_content_so_peers_on_two_versions_agree() -> None:
    # A rolling upgrade has HA peers on two versions at once: a key computed differently by
    # one of them would queue the same email twice (the outbox is unique per key).
    def expected(phase: str, *parts: str) -> str:
        text = "\n".join(["customer", "acc-1001", "credential_expired", phase, *sorted(parts)])
        return hashlib.sha256(text.encode()).hexdigest()

    memory = Memory()
    firing = fixture_payload("credential_expired_firing")
    episode = f"{alert_identity(parse(firing).alerts[0], 'customer')}|2026-11-27T02:40:52.597688Z"
    problem = memory.run(firing, T0).emails[0]
    assert problem.notification_key == expected("problem", episode)
    reminder = memory.run(firing, T0 + WINDOW).emails[0]
    assert reminder.notification_key == expected("reminder", episode, "#1")
    recovery = memory.run(fixture_payload("credential_expired_resolved"), T0 + WINDOW + 60)
    assert recovery.emails[0].notification_key == expected("recovery", episode)


def test_reminders_are_numbered_from_one_and_a_repeat_is_due_at_exactly_the_window() -> None:
    memory = Memory()
    payload = fixture_payload("credential_expired_grouped_firing")
    memory.run(payload, T0)
    first = memory.run(payload, T0 + WINDOW)
    assert [e.phase for e in first.emails] == ["reminder"]
    assert {s.reminders for s in first.states} == {1}
    second = memory.run(payload, T0 + 2 * WINDOW)
    assert {s.reminders for s in second.states} == {2}


def test_every_episode_written_keeps_the_name_the_email_used() -> None:
    """The stored name is what a reminder falls back on while the account's data is missing."""
    memory = Memory()
    grouped = fixture_payload("credential_expired_grouped_firing")
    two = copy.deepcopy(grouped)
    two["alerts"] = two["alerts"][:2]
    steps = [
        (two, T0),  # problem
        (two, T0 + 30),  # unchanged
        (grouped, T0 + 60),  # a third joins: the two known ones are rewritten too
        (grouped, T0 + WINDOW + 60),  # reminder
        (fixture_payload("credential_expired_grouped_partly_resolved"), T0 + WINDOW + 90),
    ]
    for payload, now in steps:
        decision = memory.run(payload, now)
        assert decision.states and {s.account_name for s in decision.states} == {"Initech"}


def test_an_account_without_a_name_is_named_by_its_id() -> None:
    decision = Memory().run(
        named(fixture_payload("credential_expired_firing"), "", as_label=False), T0
    )
    assert decision.emails[0].account_name == "acc-1001"


def test_the_name_comes_from_a_firing_alert_before_a_resolved_one() -> None:
    memory = Memory()
    memory.run(
        named(fixture_payload("credential_expired_grouped_firing"), "Initech", as_label=False), T0
    )
    partly = named(
        fixture_payload("credential_expired_grouped_partly_resolved"), "Initech", as_label=False
    )
    for alert in partly["alerts"][1:]:  # the firing ones, after the resolved one
        alert["annotations"]["account_name"] = "Initech Europe"
    decision = memory.run(partly, T0 + 60)
    assert decision.emails[0].account_name == "Initech Europe"


def test_a_route_edit_records_when_the_episode_was_last_seen() -> None:
    """Episodes not seen for `state_retention` are pruned: a stale time would prune a live one."""
    memory = Memory()
    firing = fixture_payload("credential_expired_firing")
    memory.run(firing, T0)
    moved = memory.run(regrouped(firing), T0 + 3 * WINDOW)
    assert [(s.last_seen_at, s.last_notified_at) for s in moved.states] == [
        (T0 + 3 * WINDOW, T0 + 3 * WINDOW)
    ]


def test_every_copy_of_a_recovered_group_is_counted_as_deduplicated() -> None:
    memory = Memory()
    firing = fixture_payload("credential_expired_grouped_firing")
    memory.run(firing, T0)
    memory.run(resolved_all(firing), T0 + 300)
    assert memory.run(resolved_all(firing), T0 + 310).deduplicated == {"credential_expired": 3}
    assert memory.run(firing, T0 + 2 * WINDOW).deduplicated == {"credential_expired": 3}


def test_two_resolved_label_sets_of_one_identity_recover_with_the_later_end() -> None:
    """An old label set beside its renamed successor: one recovery, ended when the last did."""
    memory = Memory()
    memory.run(named(fixture_payload("credential_expired_firing"), "Globex", as_label=True), T0)
    renamed = named(fixture_payload("credential_expired_resolved"), "Globex Group", as_label=True)
    renamed["alerts"][0] |= {"startsAt": "2026-11-27T02:40:53Z", "endsAt": "2026-11-27T02:40:55Z"}
    old = named(fixture_payload("credential_expired_resolved"), "Globex", as_label=True)
    old["alerts"][0]["endsAt"] = "2026-11-27T02:41:30Z"
    both = copy.deepcopy(renamed)
    both["alerts"] = renamed["alerts"] + old["alerts"]
    decision = memory.run(both, T0 + 300)
    assert phases(decision) == [("acc-1001", "credential_expired", "recovery", 1)]
    assert decision.emails[0].alerts[0].labels["account_name"] == "Globex"
    assert [s.ended_at for s in decision.states] == ["2026-11-27T02:41:30Z"]


def test_a_pre_identity_episode_refires_only_after_its_recovery_time() -> None:
    """Episodes from before identities (schema 1) have no endsAt: the recovery time decides."""
    state = AlertState(
        "id",
        "acc-1001",
        "credential_expired",
        "",
        "mailer",
        "{}",
        "key",
        T0,
        T0,
        T0,
        recovered_at=T0 + 300,
    )
    recovered = datetime.fromtimestamp(T0 + 300, UTC)
    assert not state.refired_after_recovery(recovered)
    assert state.refired_after_recovery(recovered + timedelta(milliseconds=1))


def test_unroutable_alerts_keep_their_phase_and_never_stop_the_others() -> None:
    payload = fixture_payload("credential_expired_firing")
    no_account = fixture_payload("no_account_label_firing")["alerts"][0]
    resolved_without = copy.deepcopy(no_account) | {"status": "resolved"}
    operator = copy.deepcopy(fixture_payload("operator_firing")["alerts"][0])
    operator["labels"].pop("account", None)
    payload["alerts"] = [no_account, resolved_without, operator, *payload["alerts"]]
    decision = Memory().run(payload, T0)
    assert [(u.account, u.phase, u.reason) for u in decision.unroutable] == [
        ("", "problem", "no_account_label"),
        ("", "recovery", "no_account_label"),
        ("", "problem", "operator_alert_on_customer_webhook"),
    ]
    assert phases(decision) == [("acc-1001", "credential_expired", "problem", 1)]


def test_the_default_audience_is_the_customers() -> None:
    data = parse(fixture_payload("credential_expired_firing"))
    decision = decide(data, Catalog(), {}, T0, WINDOW)
    assert phases(decision) == [("acc-1001", "credential_expired", "problem", 1)]
