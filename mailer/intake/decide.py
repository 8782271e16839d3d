"""Which emails an Alertmanager notification means: pure functions over the payload and state.

Alertmanager sends every alert of the group each time (new, still firing, resolved), its HA
peers and retries send the same notification again, and `repeat_interval` re-sends an
unchanged group on purpose. So the mailer keeps one *episode* per alert identity, what it
notified and when, and diffs each payload against that.

An alert's identity is what it is about: the webhook's audience and the alert's labels
(account, alertname, system, ...) without the display-only ones (`DISPLAY_LABELS`). It leaves
out how the alert was delivered: the groupKey (a route edit changes every group), startsAt (a
restarted Prometheus or an HA replica sets its own) and the receiver. So per (account,
notification kind):

- an identity firing with no open episode is new: one *problem* email listing the new ones.
  After a recorded recovery only a startsAt later than that recovery is a new problem; an
  older firing copy (HA peer, restarted Prometheus, retry) arriving late sends nothing;
- an identity resolved while its episode is open: a *recovery* email where the catalog enables
  it (threaded under the problem email), otherwise just recorded. A resolved alert whose
  identity still fires in the same payload (an old label set beside its renamed successor)
  recovers nothing;
- if nothing changed, the episodes were last reported by this same receiver and group, and last
  notified longer than `duplicate_window` ago, this is Alertmanager's repeat: one *reminder*;
- anything else is a re-delivery (retry, HA peer, a group re-sent because another part of it
  changed, or the first notification of a group a route edit made) and sends nothing; each such
  alert is counted as deduplicated. A new group is recorded and restarts the window, so its
  retries send nothing and its own repeat is the next reminder.

`duplicate_window` must be longer than Alertmanager's retries plus the HA peer stagger, and
shorter than the smallest `repeat_interval`, or intended reminders are swallowed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sysnotify.mailer.catalog import Catalog, NotificationKind
from sysnotify.mailer.intake.payload import Alert, Data, format_time, parse_time

Audience = Literal["customer", "operator"]
OPERATOR_ACCOUNT = ""  # operator emails are not about any customer account
OPERATOR_ACCOUNT_NAME = "operators"
# Labels that only name things for people. Older rules set the account's display name as a
# label; it is not part of an alert's identity, so renaming an account changes no episode.
DISPLAY_LABELS = frozenset({"account_name"})
ACCOUNT_NAME = "account_name"  # the annotation (and, from older rules, the label) naming it


@dataclass(frozen=True)
class AlertState:
    """One episode of one alert identity: what was notified about it, and how it arrived."""

    identity: str
    account: str
    notification: str
    starts_at: str  # startsAt of the alert that opened the episode
    receiver: str  # the Alertmanager receiver and group that last reported it
    group_key: str
    problem_key: str  # notification key of the problem email (threading)
    first_notified_at: float
    last_notified_at: float  # last problem, reminder or first report by another group
    last_seen_at: float
    reminders: int = 0
    recovered_at: float | None = None
    ended_at: str = ""  # endsAt of the resolved alert: Prometheus's clock, like startsAt
    account_name: str = ""  # the display name the last email used

    def refired_after_recovery(self, starts_at: datetime) -> bool:
        """Whether an alert that started at `starts_at` is a new episode after this one's
        recovery, rather than a late copy of this one."""
        if self.ended_at:
            return starts_at > parse_time(self.ended_at)
        return starts_at.timestamp() > (self.recovered_at or 0.0)


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


def alert_identity(alert: Alert, audience: Audience) -> str:
    """What an alert is about, the same from any route, group, Prometheus or Alertmanager: a
    hash of the audience and the alert's labels without the display-only ones."""
    labels = sorted((k, v) for k, v in alert.labels.items() if k not in DISPLAY_LABELS)
    return hashlib.sha256(json.dumps([audience, labels]).encode()).hexdigest()


def notification_key(
    audience: str, account: str, kind: str, phase: str, parts: Sequence[str]
) -> str:
    """A stable hash naming one email's content: the same from every retry, HA peer and
    route, since `parts` name episodes (identity and start), never a group."""
    text = "\n".join([audience, account, kind, phase, *sorted(parts)])
    return hashlib.sha256(text.encode()).hexdigest()


def _account_name(alerts: Sequence[Alert], states: Sequence[AlertState], account: str) -> str:
    """The rules' annotation, else the label older rules set (a mixed rollout still names the
    account), else the name the episode's last email used (the annotation is empty while the
    account's data is missing), else the account id."""
    current = sorted(alerts, key=lambda a: a.status != "firing")  # firing alerts are fresher
    for found in (
        *(a.annotations.get(ACCOUNT_NAME) for a in current),
        *(a.labels.get(ACCOUNT_NAME) for a in current),
        *(s.account_name for s in states),
    ):
        if found:
            return found
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
    states: Mapping[str, AlertState],
    now: float,
    duplicate_window: float,
    audience: Audience = "customer",
) -> Decision:
    """The emails, state changes and counts one payload means, given the stored state.

    `states` holds the current episode of (at least) every identity in the payload that has
    one, keyed by `alert_identity`. `now` is a Unix time.
    """
    decision = Decision()
    groups = _route(data, catalog, audience, decision)
    for (account, kind_name), alerts in sorted(groups.items()):
        kind = catalog.by_name(kind_name) or catalog.generic
        _Group(data, kind, account, audience, now, duplicate_window, decision).decide(
            alerts, states
        )
    return decision


@dataclass
class _Group:
    """The decision for the alerts of one (account, kind) in one payload."""

    data: Data
    kind: NotificationKind
    account: str
    audience: Audience
    now: float
    window: float
    decision: Decision
    new_firing: list[tuple[str, Alert]] = field(default_factory=list)
    known_firing: list[tuple[Alert, AlertState]] = field(default_factory=list)
    to_recover: list[tuple[Alert, AlertState]] = field(default_factory=list)

    def decide(self, alerts: Sequence[Alert], states: Mapping[str, AlertState]) -> None:
        by_identity: dict[str, list[Alert]] = {}
        for alert in alerts:
            by_identity.setdefault(alert_identity(alert, self.audience), []).append(alert)
        for identity, same in sorted(by_identity.items()):
            self._classify(identity, same, states.get(identity))
        episodes = [state for _a, state in self.known_firing + self.to_recover]
        name = _account_name(alerts, episodes, self.account)
        if self.new_firing:
            self._problem(name)
        elif self._is_repeat():
            self._reminder(name)
        else:
            self._unchanged(name)
        if self.to_recover:
            self._recovery(name)

    def _classify(self, identity: str, alerts: list[Alert], state: AlertState | None) -> None:
        """Sorts one identity's alerts (usually one; two while a renamed label set and its
        predecessor overlap) into new, known, to recover, or nothing to do."""
        firing = [a for a in alerts if a.status == "firing"]
        if firing:
            newest = max(firing, key=lambda a: (a.starts_at, a.fingerprint))
            if state is None or (
                state.recovered_at is not None and state.refired_after_recovery(newest.starts_at)
            ):
                self.new_firing.append((identity, newest))
            elif state.recovered_at is None:
                self.known_firing.append((newest, state))
            else:  # a late firing copy of the recovered episode (HA peer, retry, restart)
                self.decision.deduplicated[self.kind.name] += len(alerts)
        elif state is not None and state.recovered_at is None:
            last = max(alerts, key=lambda a: (a.ends_at or a.starts_at, a.fingerprint))
            self.to_recover.append((last, state))
        elif state is not None:
            self.decision.deduplicated[self.kind.name] += len(alerts)
        # A resolved alert never notified (state lost or pruned) has nothing to follow up.

    def _key(self, phase: str, parts: Sequence[str]) -> str:
        return notification_key(self.audience, self.account, self.kind.name, phase, parts)

    def _seen(self, state: AlertState, name: str, **changes: Any) -> AlertState:
        """The episode as this payload reported it. A group other than the one that last
        reported it is a route edit (or a peer on another config) notifying its new group at
        once: that restarts the window, so only the new group's own repeat is a reminder."""
        update: dict[str, Any] = {"last_seen_at": self.now, "account_name": name}
        if (state.receiver, state.group_key) != (self.data.receiver, self.data.group_key):
            update |= {
                "receiver": self.data.receiver,
                "group_key": self.data.group_key,
                "last_notified_at": self.now,
            }
        return replace(state, **(update | changes))

    def _is_repeat(self) -> bool:
        """Alertmanager's repeat_interval: the same group re-sent unchanged after the window."""
        return (
            bool(self.known_firing)
            and not self.to_recover
            and all(
                (state.receiver, state.group_key) == (self.data.receiver, self.data.group_key)
                and self.now - state.last_notified_at >= self.window
                for _a, state in self.known_firing
            )
        )

    def _problem(self, name: str) -> None:
        parts = [f"{identity}|{alert.starts_at_text}" for identity, alert in self.new_firing]
        problem_key = self._key("problem", parts)
        alerts = tuple(alert for _i, alert in self.new_firing)
        self.decision.emails.append(
            PlannedEmail(self.account, name, self.kind, "problem", alerts, problem_key)
        )
        for identity, alert in self.new_firing:
            self.decision.states.append(
                AlertState(
                    identity,
                    self.account,
                    self.kind.name,
                    alert.starts_at_text,
                    self.data.receiver,
                    self.data.group_key,
                    problem_key,
                    self.now,
                    self.now,
                    self.now,
                    account_name=name,
                )
            )
        self._unchanged(name)  # the known ones of a growing group

    def _reminder(self, name: str) -> None:
        number = max(state.reminders for _a, state in self.known_firing) + 1
        parts = [f"{state.identity}|{state.starts_at}" for _a, state in self.known_firing]
        self.decision.emails.append(
            PlannedEmail(
                self.account,
                name,
                self.kind,
                "reminder",
                tuple(alert for alert, _s in self.known_firing),
                self._key("reminder", [*parts, f"#{number}"]),
                tuple(sorted({state.problem_key for _a, state in self.known_firing})),
            )
        )
        for _alert, state in self.known_firing:
            self.decision.states.append(
                self._seen(state, name, last_notified_at=self.now, reminders=number)
            )

    def _unchanged(self, name: str) -> None:
        for _alert, state in self.known_firing:
            self.decision.deduplicated[self.kind.name] += 1
            self.decision.states.append(self._seen(state, name))

    def _recovery(self, name: str) -> None:
        for alert, state in self.to_recover:
            self.decision.states.append(
                self._seen(state, name, recovered_at=self.now, ended_at=format_time(alert.ends_at))
            )
        if self.kind.send_recovery and self.kind.recovery_template is not None:
            parts = [f"{state.identity}|{state.starts_at}" for _a, state in self.to_recover]
            self.decision.emails.append(
                PlannedEmail(
                    self.account,
                    name,
                    self.kind,
                    "recovery",
                    tuple(alert for alert, _s in self.to_recover),
                    self._key("recovery", parts),
                    tuple(sorted({state.problem_key for _a, state in self.to_recover})),
                )
            )
