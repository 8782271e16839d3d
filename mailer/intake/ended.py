"""Alerts about what a customer ended: a disconnected integration, an offboarded account.

When a customer disconnects an integration, its series stop and its alerts resolve: that is
not a fix they made, so no recovery email may go out, nor a reminder about something they no
longer use. When an account leaves the platform, nothing at all is mailed about it. The
platform tells the mailer (sysnotify.mailer.lifecycle); the intake sets such alerts aside
before deciding, with these pure functions, and records them as undeliverable with the reason.

An alert is about an integration when its `system` or `platform` label names it (credential
alerts carry `system`, API-allowance alerts `platform`). Every alert that is set aside leaves
its episode closed as of now: copies of it that arrive later (Alertmanager's repeats, an HA
peer, the still-firing alert once the integration is connected again) are old news, and only
an alert that starts after that is a new problem with a new email.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sysnotify.mailer.intake.decide import AlertState, Audience, alert_identity, identity_labels
from sysnotify.mailer.intake.payload import Alert, Data, format_time

ACCOUNT_OFFBOARDED = "account_offboarded"
INTEGRATION_DISCONNECTED = "integration_disconnected"
# The labels that name the integration an alert is about.
INTEGRATION_LABELS = ("system", "platform")


@dataclass(frozen=True)
class AccountLifecycle:
    """What an account ended: the whole account (offboarded), or some integrations."""

    offboarded: bool = False
    disconnected: frozenset[str] = frozenset()

    def ends(self, labels: Mapping[str, str]) -> str | None:
        """Why an alert with these labels is no longer mailed about, or None."""
        if self.offboarded:
            return ACCOUNT_OFFBOARDED
        if any(labels.get(name) in self.disconnected for name in INTEGRATION_LABELS):
            return INTEGRATION_DISCONNECTED
        return None


ACTIVE = AccountLifecycle()


def closed(state: AlertState, now: float) -> AlertState:
    """The episode ended silently at `now`: no recovery follows, and only an alert that starts
    after `now` opens a new one (AlertState.refired_after_recovery)."""
    ended_at = format_time(datetime.fromtimestamp(now, UTC))
    return replace(state, recovered_at=now, ended_at=ended_at, last_seen_at=now)


@dataclass
class SetAside:
    """The alerts of one payload that are set aside, by (account, notification, phase,
    reason), and the episodes they leave closed."""

    alerts: dict[tuple[str, str, str, str], list[Alert]] = field(default_factory=dict)
    states: list[AlertState] = field(default_factory=list)


def set_aside(
    data: Data,
    lifecycles: Mapping[str, AccountLifecycle],
    states: Mapping[str, AlertState],
    notification_of: Mapping[str, str],
    now: float,
    audience: Audience = "customer",
) -> tuple[Data, SetAside]:
    """Splits a customer payload into what is still decided on and what is set aside.

    `lifecycles` holds the accounts of the payload that ended something; `states` the
    current episodes by identity; `notification_of` the notification name of each
    alertname in the payload. Operator payloads are never set aside.
    """
    aside = SetAside()
    if audience != "customer" or not lifecycles:
        return data, aside
    kept: list[Alert] = []
    for alert in data.alerts:
        account = alert.labels.get("account", "")
        reason = lifecycles.get(account, ACTIVE).ends(alert.labels)
        if reason is None:
            kept.append(alert)
            continue
        notification = notification_of[alert.alertname]
        phase = "problem" if alert.status == "firing" else "recovery"
        aside.alerts.setdefault((account, notification, phase, reason), []).append(alert)
        identity = alert_identity(alert, audience)
        state = states.get(identity) or AlertState(
            identity,
            account,
            notification,
            alert.starts_at_text,
            data.receiver,
            data.group_key,
            "",
            now,
            now,
            now,
            labels=identity_labels(alert),
        )
        aside.states.append(closed(state, now))
    return replace(data, alerts=tuple(kept)), aside
