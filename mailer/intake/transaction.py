"""The webhook transaction: one payload's decision and its emails, stored durably.

`Intake.accept` runs in ONE store transaction: read the alert state, decide
(sysnotify.mailer.intake.decide), write the new state, one outbox row per (notification key,
recipient), the undeliverable notes and the counters. The webhook answers 2xx only after that
commit, so an accepted notification is never lost, and a re-delivery finds the state already
written and queues nothing (the outbox's unique (notification key, recipient) backs this up).

Emails are rendered by delivery, not here: the request path does no template work and stays
fast; the email request is stored in the row (sysnotify.mailer.stored_request).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sysnotify.mailer import counters, stored_request
from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.delivery.message import message_id
from sysnotify.mailer.intake.decide import (
    AlertState,
    Audience,
    PlannedEmail,
    alert_identity,
    decide,
)
from sysnotify.mailer.intake.ended import set_aside
from sysnotify.mailer.intake.payload import Alert, Data
from sysnotify.mailer.model import Recipient
from sysnotify.mailer.recipients import receives
from sysnotify.mailer.store import IntakeTransaction, NewEmail, Store, UndeliverableNote


@dataclass(frozen=True)
class IntakeResult:
    queued: int
    undeliverable: int
    deduplicated: int

    def as_dict(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "undeliverable": self.undeliverable,
            "deduplicated": self.deduplicated,
        }


def _load_states(tx: IntakeTransaction, data: Data, audience: Audience) -> dict[str, AlertState]:
    """The current episode of each alert identity in the payload, keyed by identity.

    The identity is looked up, not the groupKey or startsAt, which a route edit, a restarted
    Prometheus or an HA replica change while the alert is the same. The alerts' fingerprints
    find an episode a store from before identities (schema 1) kept.
    """
    fingerprints: dict[str, list[str]] = {}
    for alert in data.alerts:
        fingerprints.setdefault(alert_identity(alert, audience), []).append(alert.fingerprint)
    states = {}
    for identity, found_by in fingerprints.items():
        state = tx.episode(identity, found_by)
        if state is not None:
            states[identity] = state
    return states


def _undeliverable(
    now: float,
    receiver: str,
    account: str,
    notification: str,
    phase: str,
    reason: str,
    alerts: Sequence[Alert],
    audience: Audience,
) -> UndeliverableNote:
    """A note of alerts nobody can receive, named by what it is about: the alerts' episodes
    (identity and startsAt), the reason, and whether it is their problem (reminders are the
    same news) or their end. Alertmanager's retries, HA copies and repeats name the same."""
    about = sorted((alert_identity(a, audience), a.starts_at_text) for a in alerts)
    ending = "recovery" if phase == "recovery" else "problem"
    episode = hashlib.sha256(json.dumps([reason, ending, about]).encode()).hexdigest()
    return UndeliverableNote(
        now,
        receiver,
        account,
        notification,
        phase,
        reason,
        [
            {
                "alertname": a.alertname,
                "fingerprint": a.fingerprint,
                "status": a.status,
                "labels": dict(a.labels),
            }
            for a in alerts
        ],
        episode,
    )


class Intake:
    """Turns accepted payloads into outbox rows, durably."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        sender_domain: str,
        duplicate_window: Callable[[str], float],
        operator_addresses: Sequence[str],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.sender_domain = sender_domain
        self.duplicate_window = duplicate_window  # by Alertmanager receiver name
        self.operator_addresses = tuple(operator_addresses)
        self.clock = clock

    def _recipients(
        self, tx: IntakeTransaction, planned: PlannedEmail, audience: Audience
    ) -> list[Recipient]:
        if audience == "operator":
            # Operators only ever come from the config; customer registries are not read.
            return [Recipient(address, "subscriber") for address in self.operator_addresses]
        generic = planned.kind.name == self.catalog.generic.name
        return [
            Recipient(r.address, "primary" if r.role == "primary" else "subscriber")
            for r in tx.recipients(planned.account)
            if receives(r, planned.kind.category, primary_only=generic)
        ]

    def accept(
        self, data: Data, audience: Audience = "customer", received_at: float | None = None
    ) -> IntakeResult:
        """Decides and stores the emails of one payload, and counts the webhook's 200.

        :raise StoreError: nothing was stored; the caller answers 5xx so Alertmanager retries.
        """
        now = self.clock() if received_at is None else received_at
        queued = undeliverable = 0
        with self.store.intake() as tx:
            states = _load_states(tx, data, audience)
            # Alerts about what the customer ended (an offboarded account, a disconnected
            # integration) are set aside before deciding: nothing is mailed about them.
            lifecycles = (
                tx.lifecycles({a.labels.get("account", "") for a in data.alerts})
                if audience == "customer"
                else {}
            )
            notification_of = {
                a.alertname: self.catalog.for_alertname(a.alertname).name for a in data.alerts
            }
            decided, aside = set_aside(data, lifecycles, states, notification_of, now, audience)
            decision = decide(
                decided, self.catalog, states, now, self.duplicate_window(data.receiver), audience
            )
            for state in (*aside.states, *decision.states):
                tx.save_state(state)

            def keep_undeliverable(
                account: str, notification: str, phase: str, reason: str, alerts: Sequence[Alert]
            ) -> int:
                note = _undeliverable(
                    now, data.receiver, account, notification, phase, reason, alerts, audience
                )
                if not tx.note_undeliverable(note):
                    return 0  # this episode's note is kept already
                tx.count([(counters.EMAILS_UNDELIVERABLE, notification, 1)])
                return 1

            for (account, notification, phase, reason), alerts in aside.alerts.items():
                tx.count([(counters.NOTIFICATIONS_RECEIVED, notification, len(alerts))])
                undeliverable += keep_undeliverable(account, notification, phase, reason, alerts)
            for item in decision.unroutable:
                undeliverable += keep_undeliverable(
                    item.account, item.kind.name, item.phase, item.reason, item.alerts
                )
            for planned in decision.emails:
                recipients = self._recipients(tx, planned, audience)
                if not recipients:
                    reason = "no_operator_addresses" if audience == "operator" else "no_recipients"
                    undeliverable += keep_undeliverable(
                        planned.account, planned.kind.name, planned.phase, reason, planned.alerts
                    )
                    continue
                queued += self._queue(tx, planned, recipients, now, audience)
            tx.count(
                [
                    *(
                        (counters.NOTIFICATIONS_RECEIVED, name, count)
                        for name, count in decision.received.items()
                    ),
                    *(
                        (counters.NOTIFICATIONS_DEDUPLICATED, name, count)
                        for name, count in decision.deduplicated.items()
                    ),
                    (counters.WEBHOOK_REQUESTS, "200", 1),
                ]
            )
            if data.truncated_alerts:
                # Cut by the receiver's max_alerts: those alerts are never decided on here.
                tx.count([(counters.TRUNCATED_ALERTS, audience, data.truncated_alerts)])
        return IntakeResult(queued, undeliverable, sum(decision.deduplicated.values()))

    def _queue(
        self,
        tx: IntakeTransaction,
        planned: PlannedEmail,
        recipients: Sequence[Recipient],
        now: float,
        audience: Audience,
    ) -> int:
        queued = 0
        for recipient in recipients:
            email = NewEmail(
                notification_key=planned.notification_key,
                recipient=recipient.address,
                notification=planned.kind.name,
                phase=planned.phase,
                account=planned.account,
                message_id=message_id(
                    planned.notification_key, recipient.address, self.sender_domain
                ),
                thread_ids=tuple(
                    message_id(key, recipient.address, self.sender_domain)
                    for key in planned.thread_keys
                ),
                request=stored_request.dumps(
                    audience=audience,
                    notification=planned.kind.name,
                    phase=planned.phase,
                    account=planned.account,
                    account_name=planned.account_name,
                    alerts=planned.alerts,
                    recipient=recipient,
                    generated_at=now,
                ),
                received_at=now,
            )
            if tx.queue_email(email):
                queued += 1
                tx.count([(counters.EMAILS_QUEUED, planned.kind.name, 1)])
        return queued
