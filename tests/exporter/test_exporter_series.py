"""Every computed metric at its edges, with a fixed (settable) clock.

Facts go in through the store (validated events), values come out of the ordinary collector
path and are read with ``get_sample_value``, as a scrape would see them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from sysnotify.exporter import series
from sysnotify.exporter.collector import StoreCollector
from sysnotify.exporter.store import DAY, FactStore
from tests.support.exporter import (
    NOW,
    NOW_DT,
    Clock,
    account,
    ago,
    api_usage,
    credential,
    privacy,
    sync_finished,
    sync_started,
    ts,
    web_visits,
)

Value = Callable[..., float | None]


@pytest.fixture
def value(store: FactStore, clock: Clock) -> Value:
    """value(name, account="acc-1", **labels): the sample's value, None when absent."""

    def read(name: str, acc: str = "acc-1", **labels: str) -> float | None:
        registry = CollectorRegistry()
        StoreCollector(store, clock, registry=registry)
        return registry.get_sample_value(name, {"account": acc, **labels} if acc else labels)

    return read


# -- credentials ---------------------------------------------------------------------------


def test_expiry_is_password_change_plus_90_days(apply, value):
    apply(credential(password_changed_at="2026-05-01T08:30:00Z"))
    expected = NOW_DT.replace(month=5, day=1, hour=8, minute=30).timestamp() + 90 * DAY
    assert value("abm_credential_expiry_timestamp_seconds", system="salesforce") == expected
    assert value("abm_credential_info", system="salesforce", policy="expire_90_days") == 1


def test_offsets_are_converted_to_utc(apply, value):
    apply(credential(password_changed_at="2026-05-01T10:30:00+02:00"))
    assert value("abm_credential_expiry_timestamp_seconds", system="salesforce") == (
        NOW_DT.replace(month=5, day=1, hour=8, minute=30).timestamp() + 90 * DAY
    )


@pytest.mark.parametrize(
    "system, policy",
    [
        ("salesforce", "never_expire"),
        ("eloqua", "never_expire"),
        ("marketo", "no_rotation"),
        ("hubspot", "no_rotation"),
        ("pardot", "no_rotation"),
        ("salesforce", "no_rotation"),
    ],
)
def test_no_expiry_series_without_an_expiring_policy(apply, value, system, policy):
    apply(credential(system=system, policy=policy, password_changed_at=ago(days=200)))
    assert value("abm_credential_expiry_timestamp_seconds", system=system) is None
    assert value("abm_credential_info", system=system, policy=policy) == 1
    assert value("abm_credential_valid", system=system) == 1


def test_expiry_series_goes_when_the_policy_changes_to_never_expire(apply, value):
    apply(credential(checked_at=ago(hours=5)))
    apply(credential(policy="never_expire", checked_at=ago(hours=1)))
    assert value("abm_credential_expiry_timestamp_seconds", system="salesforce") is None
    assert value("abm_credential_info", system="salesforce", policy="expire_90_days") is None
    assert value("abm_credential_info", system="salesforce", policy="never_expire") == 1


def test_validity_follows_the_latest_check_not_the_latest_arrival(apply, value):
    apply(credential(valid=False, checked_at=ago(hours=1)))
    apply(credential(valid=True, checked_at=ago(hours=2)))  # older check, arrives later
    assert value("abm_credential_valid", system="salesforce") == 0
    apply(credential(valid=True, checked_at=ago(minutes=1)))
    assert value("abm_credential_valid", system="salesforce") == 1


def test_same_checked_at_the_later_event_wins(apply, value):
    apply(
        credential(valid=True, checked_at=ago(hours=1)),
        credential(valid=False, checked_at=ago(hours=1)),
    )
    assert value("abm_credential_valid", system="salesforce") == 0


def test_each_system_is_its_own_series(apply, value):
    apply(
        credential(),
        credential(system="marketo", policy="no_rotation", valid=False, password_changed_at=None),
    )
    assert value("abm_credential_valid", system="salesforce") == 1
    assert value("abm_credential_valid", system="marketo") == 0


# -- API usage -----------------------------------------------------------------------------


def test_calls_used_in_the_current_window(apply, value, clock):
    start = NOW - 3600
    apply(api_usage(used=700, limit=1000, window_start=ts_of(start)))
    assert value("abm_api_daily_calls_used", platform="salesforce") == 700
    clock.now = start + DAY - 1  # last second of the window
    assert value("abm_api_daily_calls_used", platform="salesforce") == 700
    clock.now = start + DAY  # the window has ended: nothing used in the new one yet
    assert value("abm_api_daily_calls_used", platform="salesforce") == 0
    assert value("abm_api_daily_calls_limit", platform="salesforce") == 1000


def test_a_snapshot_of_an_earlier_window_means_zero_used_today(apply, value):
    apply(api_usage(used=999, limit=1000, window_start=ago(hours=30)))
    assert value("abm_api_daily_calls_used", platform="salesforce") == 0
    assert value("abm_api_daily_calls_limit", platform="salesforce") == 1000


def test_an_older_window_arriving_late_changes_nothing(apply, value):
    apply(api_usage(used=50, window_start=ago(hours=1)))
    apply(api_usage(used=900, limit=5000, window_start=ago(hours=25)))
    assert value("abm_api_daily_calls_used", platform="salesforce") == 50
    assert value("abm_api_daily_calls_limit", platform="salesforce") == 1000


def test_within_a_window_the_largest_count_wins(apply, value):
    apply(api_usage(used=600), api_usage(used=400))
    assert value("abm_api_daily_calls_used", platform="salesforce") == 600


def test_a_window_starting_slightly_ahead_counts_as_current(apply, value):
    apply(api_usage(used=10, window_start=ts_of(NOW + 60)))
    assert value("abm_api_daily_calls_used", platform="salesforce") == 10


def test_limit_and_used_can_be_equal(apply, value):
    apply(api_usage(used=1000, limit=1000))
    assert value("abm_api_daily_calls_used", platform="salesforce") == 1000


# -- web visits ----------------------------------------------------------------------------


def week_of_history(acc: str = "acc-1", first: int = -35, per_day: int = 10) -> list[dict]:
    return [web_visits(acc, offset, visits=per_day) for offset in range(first, 0)]


def test_last_week_is_the_seven_complete_days_before_today(apply, value):
    apply(
        *week_of_history(first=-10, per_day=1),
        web_visits(offset=0, visits=1000),  # today: still counting, left out
        web_visits(offset=-7, page="/edge", visits=100),  # first day of the window
        web_visits(offset=-8, page="/before", visits=10000),
    )  # just before it
    assert value("abm_web_visits_last_week") == 7 + 100


def test_the_window_moves_at_utc_midnight(apply, value, clock):
    apply(*week_of_history(first=-14, per_day=1), web_visits(offset=0, visits=50))
    clock.now = NOW_DT.replace(hour=23, minute=59, second=59).timestamp()
    assert value("abm_web_visits_last_week") == 7
    clock.now = NOW_DT.replace(hour=0).timestamp() + DAY  # tomorrow 00:00: today is complete
    assert value("abm_web_visits_last_week") == 6 + 50


def test_weekly_average_is_the_mean_of_the_four_weeks_before(apply, value):
    events = [
        web_visits(offset=offset, visits=v)
        for offset, v in (
            (-8, 40),
            (-14, 40),
            (-15, 80),
            (-21, 0),
            (-22, 120),
            (-35, 160),
            (-36, 100000),
        )
    ]
    apply(*events, *[web_visits(offset=o, page="/p", visits=1) for o in range(-7, 0)])
    # Weeks: days -14..-8 = 80, -21..-15 = 80, -28..-22 = 120, -35..-29 = 160; day -36 is out.
    assert value("abm_web_visits_weekly_average") == (80 + 80 + 120 + 160) / 4
    assert value("abm_web_visits_last_week") == 7


def test_days_without_visits_count_as_zero(apply, value):
    apply(web_visits(offset=-40, visits=0), web_visits(offset=-30, visits=280))
    assert value("abm_web_visits_weekly_average") == 70
    assert value("abm_web_visits_last_week") == 0


def test_a_tag_that_stopped_shows_a_drop_and_does_not_vanish(apply, value):
    apply(*[web_visits(offset=o, visits=100) for o in range(-40, -5)])  # nothing since day -5
    assert value("abm_web_visits_last_week") == 200
    assert value("abm_web_visits_weekly_average") == 700
    assert value("abm_web_pages_tracked_last_week") == 1


@pytest.mark.parametrize(
    "first, last_week, average",
    [
        (-1, None, None),  # tag installed yesterday: no full week yet
        (-6, None, None),
        (-7, 7.0, None),  # the last week is covered; no norm week yet
        (-13, 13.0 - 6, None),  # 6 days of the first norm week: not a full week
        (-14, 7.0, 7.0),  # one full norm week
        (-21, 7.0, 7.0),
        (-28, 7.0, 7.0),  # three weeks, each 7
        (-35, 7.0, 7.0),
        (-90, 7.0, 7.0),  # more history than needed: four weeks
    ],
)
def test_new_accounts_average_over_the_full_weeks_they_have(
    apply, value, first, last_week, average
):
    apply(*week_of_history(first=first, per_day=1))
    assert value("abm_web_visits_last_week") == last_week
    assert value("abm_web_visits_weekly_average") == average


def test_partial_history_average_uses_only_full_weeks(apply, value):
    # First day -20: weeks -14..-8 (full) is 7*2; days -20..-15 are a partial week, left out.
    apply(
        *[web_visits(offset=o, visits=2) for o in range(-20, -7)],
        *[web_visits(offset=o, visits=1) for o in range(-7, 0)],
    )
    assert value("abm_web_visits_weekly_average") == 14


def test_the_latest_count_for_a_day_and_page_wins(apply, value):
    apply(web_visits(offset=-40, visits=0), web_visits(offset=-2, visits=50))
    apply(web_visits(offset=-2, visits=20))
    assert value("abm_web_visits_last_week") == 20
    apply(web_visits(offset=-2, visits=0))
    assert value("abm_web_visits_last_week") == 0
    assert value("abm_web_pages_tracked_last_week") == 0


def test_pages_tracked_counts_distinct_pages_with_visits_in_the_window(apply, value):
    apply(
        web_visits(offset=-40, visits=0),
        web_visits(offset=-1, page="/a", visits=3),
        web_visits(offset=-5, page="/a", visits=3),
        web_visits(offset=-7, page="/b", visits=1),
        web_visits(offset=-3, page="/zero", visits=0),  # no visits: not tracked
        web_visits(offset=0, page="/today", visits=9),  # today: outside the window
        web_visits(offset=-8, page="/old", visits=9),
    )  # before the window
    assert value("abm_web_pages_tracked_last_week") == 2


def test_no_web_series_for_an_account_without_web_data(apply, value):
    apply(account())
    for name in (
        "abm_web_visits_last_week",
        "abm_web_visits_weekly_average",
        "abm_web_pages_tracked_last_week",
    ):
        assert value(name) is None


def test_accounts_do_not_mix(apply, value):
    apply(*week_of_history("acc-1", per_day=1), *week_of_history("acc-2", per_day=5))
    assert value("abm_web_visits_last_week", "acc-1") == 7
    assert value("abm_web_visits_last_week", "acc-2") == 35


# -- sync ----------------------------------------------------------------------------------


def test_a_started_run_is_running(apply, value):
    apply(sync_started(at=ago(hours=3)))
    assert value("abm_sync_running") == 1
    assert value("abm_sync_last_started_timestamp_seconds") == NOW - 3 * 3600
    assert value("abm_sync_last_success_timestamp_seconds") is None
    assert value("abm_sync_last_duration_seconds") is None


def test_a_successful_run(apply, value):
    apply(sync_started(at=ago(hours=3)), sync_finished(at=ago(hours=2), status="success"))
    assert value("abm_sync_running") == 0
    assert value("abm_sync_last_success_timestamp_seconds") == NOW - 2 * 3600
    assert value("abm_sync_last_duration_seconds") == 3600


def test_a_failed_run_does_not_move_last_success(apply, value):
    apply(
        sync_started(run="r1", at=ago(hours=30)),
        sync_finished(run="r1", at=ago(hours=29), status="success"),
    )
    apply(
        sync_started(run="r2", at=ago(hours=5)),
        sync_finished(run="r2", at=ago(hours=3), status="failed"),
    )
    assert value("abm_sync_last_success_timestamp_seconds") == NOW - 29 * 3600
    assert value("abm_sync_last_duration_seconds") == 2 * 3600
    assert value("abm_sync_last_started_timestamp_seconds") == NOW - 5 * 3600
    assert value("abm_sync_running") == 0


def test_a_new_run_is_running_while_last_success_stays(apply, value):
    apply(
        sync_started(run="r1", at=ago(hours=30)),
        sync_finished(run="r1", at=ago(hours=29)),
        sync_started(run="r2", at=ago(hours=1)),
    )
    assert value("abm_sync_running") == 1
    assert value("abm_sync_last_success_timestamp_seconds") == NOW - 29 * 3600
    assert value("abm_sync_last_duration_seconds") == 3600


def test_a_late_start_of_an_older_run_does_not_hide_the_running_one(apply, value):
    apply(sync_started(run="new", at=ago(hours=1)))
    apply(sync_started(run="old", at=ago(hours=26)), sync_finished(run="old", at=ago(hours=25)))
    assert value("abm_sync_running") == 1
    assert value("abm_sync_last_started_timestamp_seconds") == NOW - 3600


def test_a_duplicate_finish_is_idempotent_and_the_first_finish_stays(apply, value):
    apply(sync_started(at=ago(hours=3)), sync_finished(at=ago(hours=2), status="success"))
    apply(sync_finished(at=ago(hours=2), status="success"))
    apply(sync_finished(at=ago(hours=1), status="failed"))  # a run finishes once
    assert value("abm_sync_last_success_timestamp_seconds") == NOW - 2 * 3600
    assert value("abm_sync_last_duration_seconds") == 3600


def test_a_repeated_start_keeps_the_first_start_time(apply, value):
    apply(sync_started(at=ago(hours=3)), sync_started(at=ago(hours=1)))
    assert value("abm_sync_last_started_timestamp_seconds") == NOW - 3 * 3600


def test_no_sync_series_without_runs(apply, value):
    apply(account())
    for name in (
        "abm_sync_running",
        "abm_sync_last_started_timestamp_seconds",
        "abm_sync_last_success_timestamp_seconds",
        "abm_sync_last_duration_seconds",
    ):
        assert value(name) is None


# -- privacy -------------------------------------------------------------------------------


def test_pending_requests_and_the_oldest(apply, value):
    apply(
        privacy(request="a", received_at=ago(days=9)), privacy(request="b", received_at=ago(days=2))
    )
    assert value("abm_privacy_optout_pending_requests") == 2
    assert value("abm_privacy_optout_oldest_pending_timestamp_seconds") == NOW - 9 * DAY


def test_a_completed_request_is_no_longer_pending(apply, value):
    apply(
        privacy(request="a", received_at=ago(days=9)), privacy(request="b", received_at=ago(days=2))
    )
    apply(privacy(request="a", received_at=ago(days=9), status="completed"))
    assert value("abm_privacy_optout_pending_requests") == 1
    assert value("abm_privacy_optout_oldest_pending_timestamp_seconds") == NOW - 2 * DAY


def test_completed_stays_completed_whatever_arrives_later(apply, value):
    apply(privacy(status="completed"))
    apply(privacy(status="pending"))
    assert value("abm_privacy_optout_pending_requests") == 0


def test_no_oldest_series_when_nothing_is_pending(apply, value):
    apply(account(), privacy(status="completed"))
    assert value("abm_privacy_optout_pending_requests") == 0
    assert value("abm_privacy_optout_oldest_pending_timestamp_seconds") is None


def test_pending_count_is_zero_for_an_account_without_requests(apply, value):
    apply(account())
    assert value("abm_privacy_optout_pending_requests") == 0


def test_the_earliest_received_at_is_kept(apply, value):
    apply(privacy(received_at=ago(days=1)), privacy(received_at=ago(days=4)))
    assert value("abm_privacy_optout_oldest_pending_timestamp_seconds") == NOW - 4 * DAY


# -- accounts ------------------------------------------------------------------------------


def test_account_info_only_once_named_but_metrics_are_published_before(apply, value):
    apply(api_usage("acc-9"))
    assert value("abm_api_daily_calls_used", "acc-9", platform="salesforce") == 100
    assert value("abm_account_info", "acc-9", account_name="Acme Corp") is None
    apply(account("acc-9"))
    assert value("abm_account_info", "acc-9", account_name="Acme Corp") == 1
    apply(account("acc-9", name="Acme Europe"))
    assert value("abm_account_info", "acc-9", account_name="Acme Corp") is None
    assert value("abm_account_info", "acc-9", account_name="Acme Europe") == 1


def test_store_wide_self_metrics(apply, value, clock):
    apply(account("a"), account("b"))
    clock.now = NOW + 60
    apply(account("b"))
    assert value("sysnotify_exporter_accounts", None) == 2
    assert value("sysnotify_exporter_last_event_timestamp_seconds", None) == NOW + 60
    assert value("sysnotify_exporter_account_last_event_timestamp_seconds", "a") == NOW
    assert value("sysnotify_exporter_account_last_event_timestamp_seconds", "b") == NOW + 60


# -- pure helpers --------------------------------------------------------------------------


def test_boundaries_are_midnight_or_an_api_window_end():
    from sysnotify.exporter.store import AccountFacts

    facts = AccountFacts("a", api=[("marketo", 1, 2, NOW - 3600)])
    midnight = (NOW // DAY + 1) * DAY
    assert series.account_boundary(AccountFacts("a"), NOW) == midnight
    assert series.account_boundary(facts, NOW) == min(midnight, NOW - 3600 + DAY)
    assert series.next_boundary([facts, AccountFacts("b")], NOW) == min(midnight, NOW - 3600 + DAY)


def test_norm_weeks_available():
    today = 1000
    assert series.norm_weeks_available(today - 14, today) == 1
    assert series.norm_weeks_available(today - 13, today) == 0
    assert series.norm_weeks_available(today - 35, today) == 4
    assert series.norm_weeks_available(today - 1000, today) == 4
    assert series.weekly_average((1, 2, 3, 4), None, today) is None


def ts_of(epoch: float) -> str:
    from datetime import UTC, datetime

    return ts(datetime.fromtimestamp(epoch, UTC))
