"""Which emails an Alertmanager notification means: pure functions over the payload and state.

Alertmanager sends every alert of the group each time (new, still firing, resolved), its HA
peers and retries send the same notification again, and `repeat_interval` re-sends an
unchanged group on purpose. So the mailer keeps, per alert instance (receiver, groupKey,
fingerprint, startsAt), what it notified and when, and diffs each payload against that:

- a firing alert never notified is new: one *problem* email per (account, notification kind)
  listing the new alerts;
- a resolved alert whose problem was notified and not yet recovered: a *recovery* email where
  the catalog enables it (threaded under the problem email), otherwise just recorded;
- if nothing changed for an (account, kind) and its firing alerts were last notified longer
  than `duplicate_window` ago, this is Alertmanager's repeat: one *reminder* email;
- anything else is a re-delivery (retry, HA peer, or a group re-sent because another part of
  it changed) and sends nothing; each such alert is counted as deduplicated.

`duplicate_window` must be longer than Alertmanager's retries plus the HA peer stagger, and
shorter than the smallest `repeat_interval`, or intended reminders are swallowed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from sysnotify.mailer.catalog import Catalog, NotificationKind
from sysnotify.mailer.intake.payload import Alert, Data, format_time

Audience = Literal["customer", "operator"]
OPERATOR_ACCOUNT = ""  # operator emails are not about any customer account
OPERATOR_ACCOUNT_NAME = "operators"

StateKey = tuple[str, str]  # (fingerprint, startsAt text), within one receiver and group


@dataclass(frozen=True)
class AlertState:
    """What was notified about one alert instance."""

    receiver: str
    group_key: str
    fingerprint: str
    starts_at: str
    account: str
    notification: str
    problem_key: str
    first_notified_at: float
    last_notified_at: float
    last_seen_at: float
    reminders: int = 0
    recovered_at: float | None = None

    @property
    def key(self) -> StateKey:
        return (self.fingerprint, self.starts_at)


@dataclass(frozen=True)
class PlannedEmail:
    """One email to every recipient of (account, kind) in one phase."""

    account: str
    account_name: str
    kind: NotificationKind
    phase: Literal["problem", "reminder", "recovery"]
    alerts: tuple[Alert, ...]
    notification_key: str  # stable per content; with the recipient it makes the Message-ID
    thread_keys: tuple[str, ...] = ()  # problem notification keys this email follows up


@dataclass(frozen=True)
class Unroutable:
    """Alerts that cannot be emailed to anyone on this webhook; kept as undeliverable."""

    account: str
    kind: NotificationKind
    phase: Literal["problem", "reminder", "recovery"]
    reason: str
    alerts: tuple[Alert, ...]


@dataclass
class Decision:
    emails: list[PlannedEmail] = field(default_factory=list)
    unroutable: list[Unroutable] = field(default_factory=list)
    states: list[AlertState] = field(default_factory=list)  # rows to upsert
    received: Counter[str] = field(default_factory=Counter)  # by notification name
    deduplicated: Counter[str] = field(default_factory=Counter)


def notification_key(
    receiver: str, group_key: str, account: str, kind: str, phase: str, parts: Sequence[str]
) -> str:
    """A stable hash naming one email's content (the same from every retry and HA peer)."""
    text = "\n".join([receiver, group_key, account, kind, phase, *sorted(parts)])
    return hashlib.sha256(text.encode()).hexdigest()


def state_key(alert: Alert) -> StateKey:
    return (alert.fingerprint, alert.starts_at_text)


def _account_name(alerts: Sequence[Alert], account: str) -> str:
    for alert in alerts:
        name = alert.labels.get("account_name")
        if name:
            return name
    return account or OPERATOR_ACCOUNT_NAME


def _route(
    data: Data,
    catalog: Catalog,
    audience: Audience,
    decision: Decision,
) -> dict[tuple[str, str], list[Alert]]:
    """Groups the payload's alerts by (account, kind); the unroutable ones are set aside.

    A routing mistake may group alerts of several accounts into one notification: splitting
    by account here means no account is ever mailed about another.
    """
    groups: dict[tuple[str, str], list[Alert]] = {}
    for alert in data.alerts:
        kind = catalog.for_alertname(alert.alertname)
        decision.received[kind.name] += 1
        phase: Literal["problem", "recovery"] = (
            "problem" if alert.status == "firing" else "recovery"
        )
        if audience == "customer":
            account = alert.labels.get("account", "")
            if alert.labels.get("audience") == "operator":
                decision.unroutable.append(
                    Unroutable(account, kind, phase, "operator_alert_on_customer_webhook", (alert,))
                )
                continue
            if not account:
                decision.unroutable.append(
                    Unroutable("", kind, phase, "no_account_label", (alert,))
                )
                continue
        else:
            account = OPERATOR_ACCOUNT
        groups.setdefault((account, kind.name), []).append(alert)
    return groups


def decide(
    data: Data,
    catalog: Catalog,
    states: Mapping[StateKey, AlertState],
    now: float,
    duplicate_window: float,
    audience: Audience = "customer",
) -> Decision:
    """The emails, state changes and counts one payload means, given the stored state.

    `states` holds the stored state of (at least) every alert of the payload, keyed by
    `state_key`, for this payload's receiver and groupKey. `now` is a Unix time.
    """
    decision = Decision()
    groups = _route(data, catalog, audience, decision)
    for (account, kind_name), alerts in sorted(groups.items()):
        kind = catalog.by_name(kind_name) or catalog.generic
        _decide_group(data, kind, account, alerts, states, now, duplicate_window, decision)
    return decision


def _decide_group(
    data: Data,
    kind: NotificationKind,
    account: str,
    alerts: list[Alert],
    states: Mapping[StateKey, AlertState],
    now: float,
    window: float,
    decision: Decision,
) -> None:
    account_name = _account_name(alerts, account)
    new_firing: list[Alert] = []
    known_firing: list[tuple[Alert, AlertState]] = []
    to_recover: list[tuple[Alert, AlertState]] = []
    for alert in alerts:
        state = states.get(state_key(alert))
        if alert.status == "firing":
            if state is None:
                new_firing.append(alert)
            elif state.recovered_at is None:
                known_firing.append((alert, state))
            else:
                # An older "firing" copy arriving after the recovery (HA peer, retry).
                decision.deduplicated[kind.name] += 1
        elif state is not None and state.recovered_at is None:
            to_recover.append((alert, state))
        elif state is not None:
            decision.deduplicated[kind.name] += 1
        # A resolved alert never notified (state lost or pruned) has nothing to follow up.

    def key(phase: str, parts: Sequence[str]) -> str:
        return notification_key(data.receiver, data.group_key, account, kind.name, phase, parts)

    if new_firing:
        problem_key = key("problem", [f"{a.fingerprint}|{a.starts_at_text}" for a in new_firing])
        decision.emails.append(
            PlannedEmail(account, account_name, kind, "problem", tuple(new_firing), problem_key)
        )
        for alert in new_firing:
            decision.states.append(
                AlertState(
                    data.receiver,
                    data.group_key,
                    alert.fingerprint,
                    alert.starts_at_text,
                    account,
                    kind.name,
                    problem_key,
                    now,
                    now,
                    now,
                )
            )
        for _alert, state in known_firing:
            decision.deduplicated[kind.name] += 1
            decision.states.append(replace(state, last_seen_at=now))
    elif (
        known_firing
        and not to_recover
        and all(now - state.last_notified_at >= window for _a, state in known_firing)
    ):
        number = max(state.reminders for _a, state in known_firing) + 1
        parts = [f"{a.fingerprint}|{a.starts_at_text}" for a, _s in known_firing]
        reminder_key = key("reminder", [*parts, f"#{number}"])
        threads = tuple(sorted({state.problem_key for _a, state in known_firing}))
        decision.emails.append(
            PlannedEmail(
                account,
                account_name,
                kind,
                "reminder",
                tuple(a for a, _s in known_firing),
                reminder_key,
                threads,
            )
        )
        for _alert, state in known_firing:
            decision.states.append(
                replace(state, last_notified_at=now, last_seen_at=now, reminders=number)
            )
    else:
        for _alert, state in known_firing:
            decision.deduplicated[kind.name] += 1
            decision.states.append(replace(state, last_seen_at=now))

    if to_recover:
        for _alert, state in to_recover:
            decision.states.append(replace(state, recovered_at=now, last_seen_at=now))
        if kind.send_recovery and kind.recovery_template is not None:
            parts = [
                f"{a.fingerprint}|{a.starts_at_text}|{format_time(a.ends_at)}"
                for a, _s in to_recover
            ]
            threads = tuple(sorted({state.problem_key for _a, state in to_recover}))
            decision.emails.append(
                PlannedEmail(
                    account,
                    account_name,
                    kind,
                    "recovery",
                    tuple(a for a, _s in to_recover),
                    key("recovery", parts),
                    threads,
                )
            )
