"""The durable outbox: intake of webhook payloads, and the rows the delivery worker sends.

`Intake.accept` runs in ONE write transaction: read the alert state, decide (mailer.decide),
write the new state, one outbox row per (notification key, recipient), the undeliverable
notes and the counters. The webhook answers 2xx only after that commit, so an accepted
notification is never lost, and a re-delivery finds the state already written and queues
nothing (the unique (notification_key, recipient) constraint backs this up).

Emails are rendered by the delivery worker, not here: the request path does no template work
and stays fast; the EmailRequest is stored as JSON in the row.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sysnotify.mailer import counters
from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.intake.decide import AlertState, Audience, PlannedEmail, StateKey, decide, state_key
from sysnotify.mailer.delivery.message import message_id
from sysnotify.mailer.model import AlertView, EmailRequest, Recipient
from sysnotify.mailer.intake.payload import Alert, Data, format_time, parse_time
from sysnotify.mailer.recipients import recipients_for
from sysnotify.mailer.store.sqlite import Store, increment, increment_all


@dataclass(frozen=True)
class IntakeResult:
    queued: int
    undeliverable: int
    deduplicated: int

    def as_dict(self) -> dict[str, int]:
        return {"queued": self.queued, "undeliverable": self.undeliverable,
                "deduplicated": self.deduplicated}


@dataclass(frozen=True)
class OutboxRow:
    id: int
    notification_key: str
    notification: str
    phase: str
    recipient: str
    message_id: str
    thread_ids: tuple[str, ...]
    request: dict[str, Any]
    received_at: float
    queued_at: float
    attempts: int


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": format_time(alert.starts_at),
        "endsAt": format_time(alert.ends_at) if alert.ends_at else None,
        "fingerprint": alert.fingerprint,
    }


def request_json(planned: PlannedEmail, recipient: Recipient, generated_at: float,
                 audience: Audience) -> str:
    return json.dumps({
        "audience": audience,
        "notification": planned.kind.name,
        "phase": planned.phase,
        "account": planned.account,
        "account_name": planned.account_name,
        "alerts": [_alert_json(a) for a in planned.alerts],
        "recipient": {"address": recipient.address, "role": recipient.role},
        "generated_at": format_time(datetime.fromtimestamp(generated_at, UTC)),
    }, sort_keys=True)


def email_request(data: dict[str, Any], catalog: Catalog) -> EmailRequest:
    """Rebuilds the EmailRequest stored in an outbox row."""
    kind = catalog.by_name(data["notification"]) or catalog.generic
    alerts = tuple(
        AlertView(
            alertname=a["labels"].get("alertname", ""),
            status=a["status"],
            labels=a["labels"],
            annotations=a["annotations"],
            starts_at=parse_time(a["startsAt"]),
            ends_at=parse_time(a["endsAt"]) if a.get("endsAt") else None,
            fingerprint=a["fingerprint"],
        )
        for a in data["alerts"]
    )
    return EmailRequest(
        notification=kind,
        phase=data["phase"],
        account=data["account"],
        account_name=data["account_name"],
        alerts=alerts,
        recipient=Recipient(data["recipient"]["address"], data["recipient"]["role"]),
        generated_at=parse_time(data["generated_at"]),
    )


def _state(row: sqlite3.Row) -> AlertState:
    return AlertState(
        row["receiver"], row["group_key"], row["fingerprint"], row["starts_at"],
        row["account"], row["notification"], row["problem_key"],
        row["first_notified_at"], row["last_notified_at"], row["last_seen_at"],
        row["reminders"], row["recovered_at"])


def _load_states(tx: sqlite3.Connection, data: Data) -> dict[StateKey, AlertState]:
    """The stored state of each alert of the payload, keyed by the alert's own state_key.

    An alert whose exact (fingerprint, startsAt) is unknown continues the open (not yet
    recovered) episode of the same fingerprint in the same group, if there is one. startsAt
    is not stable: Prometheus sends the time the alert fired (`FiredAt`), which a restarted
    Prometheus sets anew and HA replicas set each their own, and a restarted Alertmanager
    takes whatever startsAt arrives first. Without this, a recovery after such restarts found
    no state and was never sent, and the same problem could be mailed again as new.
    """
    states: dict[StateKey, AlertState] = {}
    for alert in data.alerts:
        key = state_key(alert)
        rows = tx.execute(
            "SELECT * FROM alert_state WHERE receiver = ? AND group_key = ? AND fingerprint = ? "
            "AND (starts_at = ? OR recovered_at IS NULL)",
            (data.receiver, data.group_key, *key)).fetchall()
        exact = [row for row in rows if row["starts_at"] == key[1]]
        row = exact[0] if exact else max(
            (r for r in rows if r["recovered_at"] is None),
            key=lambda r: parse_time(r["starts_at"]), default=None)
        if row is not None:
            states[key] = _state(row)
    return states


def _save_state(tx: sqlite3.Connection, state: AlertState) -> None:
    tx.execute(
        "INSERT OR REPLACE INTO alert_state (receiver, group_key, fingerprint, starts_at, account,"
        " notification, problem_key, first_notified_at, last_notified_at, last_seen_at,"
        " reminders, recovered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (state.receiver, state.group_key, state.fingerprint, state.starts_at, state.account,
         state.notification, state.problem_key, state.first_notified_at,
         state.last_notified_at, state.last_seen_at, state.reminders, state.recovered_at))


def _note_undeliverable(tx: sqlite3.Connection, now: float, receiver: str, account: str,
                        notification: str, phase: str, reason: str,
                        alerts: Sequence[Alert]) -> None:
    summary = [{"alertname": a.alertname, "fingerprint": a.fingerprint, "status": a.status,
                "labels": dict(a.labels)} for a in alerts]
    tx.execute(
        "INSERT INTO undeliverable (received_at, receiver, account, notification, phase, reason,"
        " alerts) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (now, receiver, account, notification, phase, reason, json.dumps(summary)))
    increment(tx, counters.EMAILS_UNDELIVERABLE, notification)


class Intake:
    """Turns accepted payloads into outbox rows, durably."""

    def __init__(self, store: Store, catalog: Catalog, sender_domain: str,
                 duplicate_window: Callable[[str], float], operator_addresses: Sequence[str],
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.catalog = catalog
        self.sender_domain = sender_domain
        self.duplicate_window = duplicate_window  # by Alertmanager receiver name
        self.operator_addresses = tuple(operator_addresses)
        self.clock = clock

    def _recipients(self, tx: sqlite3.Connection, planned: PlannedEmail,
                    audience: Audience) -> list[Recipient]:
        if audience == "operator":
            # Operators only ever come from the config; customer registries are not read.
            return [Recipient(address, "subscriber") for address in self.operator_addresses]
        generic = planned.kind.name == self.catalog.generic.name
        registered = recipients_for(tx, planned.account, planned.kind.category,
                                    primary_only=generic)
        return [Recipient(r.address, "primary" if r.role == "primary" else "subscriber")
                for r in registered]

    def accept(self, data: Data, audience: Audience = "customer",
               received_at: float | None = None) -> IntakeResult:
        """Decides and stores the emails of one payload, and counts the webhook's 200.

        :raise StoreError: nothing was stored; the caller answers 5xx so Alertmanager retries.
        """
        now = self.clock() if received_at is None else received_at
        queued = undeliverable = 0
        with self.store.write() as tx:
            states = _load_states(tx, data)
            decision = decide(data, self.catalog, states, now,
                              self.duplicate_window(data.receiver), audience)
            for state in decision.states:
                _save_state(tx, state)
            for item in decision.unroutable:
                _note_undeliverable(tx, now, data.receiver, item.account, item.kind.name,
                                    item.phase, item.reason, item.alerts)
                undeliverable += 1
            for planned in decision.emails:
                recipients = self._recipients(tx, planned, audience)
                if not recipients:
                    reason = "no_operator_addresses" if audience == "operator" \
                        else "no_recipients"
                    _note_undeliverable(tx, now, data.receiver, planned.account,
                                        planned.kind.name, planned.phase, reason,
                                        planned.alerts)
                    undeliverable += 1
                    continue
                queued += self._queue(tx, planned, recipients, now, audience)
            increment_all(tx, [
                *((counters.NOTIFICATIONS_RECEIVED, name, count)
                  for name, count in decision.received.items()),
                *((counters.NOTIFICATIONS_DEDUPLICATED, name, count)
                  for name, count in decision.deduplicated.items()),
                (counters.WEBHOOK_REQUESTS, "200", 1),
            ])
        return IntakeResult(queued, undeliverable, sum(decision.deduplicated.values()))

    def _queue(self, tx: sqlite3.Connection, planned: PlannedEmail,
               recipients: Sequence[Recipient], now: float, audience: Audience) -> int:
        queued = 0
        for recipient in recipients:
            msg_id = message_id(planned.notification_key, recipient.address, self.sender_domain)
            threads = [message_id(key, recipient.address, self.sender_domain)
                       for key in planned.thread_keys]
            cursor = tx.execute(
                "INSERT INTO outbox (notification_key, recipient, notification, phase, account,"
                " message_id, thread_ids, request, received_at, queued_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (notification_key, recipient) DO NOTHING",
                (planned.notification_key, recipient.address, planned.kind.name, planned.phase,
                 planned.account, msg_id, " ".join(threads),
                 request_json(planned, recipient, now, audience), now, now, now))
            if cursor.rowcount:
                queued += 1
                increment(tx, counters.EMAILS_QUEUED, planned.kind.name)
        return queued


def tracking_headers(row: OutboxRow) -> dict[str, str]:
    """X-Sysnotify-* headers that let tools and tests identify an email without parsing its
    wording: the notification (`operators` for the pipeline's own alerts), phase and account."""
    if row.request.get("audience") == "operator":
        return {"X-Sysnotify-Notification": "operators", "X-Sysnotify-Phase": row.phase}
    return {"X-Sysnotify-Notification": row.notification, "X-Sysnotify-Phase": row.phase,
            "X-Sysnotify-Account": row.request.get("account", "")}


def _outbox_row(row: sqlite3.Row) -> OutboxRow:
    return OutboxRow(row["id"], row["notification_key"], row["notification"], row["phase"],
                     row["recipient"],
                     row["message_id"], tuple(row["thread_ids"].split()),
                     json.loads(row["request"]), row["received_at"], row["queued_at"],
                     row["attempts"])


class Queue:
    """The delivery side: claim rows under a lease, then mark them sent, retried or failed."""

    def __init__(self, store: Store, worker_id: str, lease_seconds: float) -> None:
        self.store = store
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds

    def claim(self, now: float) -> OutboxRow | None:
        """Atomically takes the next due row (unclaimed, or with an expired lease)."""
        rows = self.claim_batch(now, 1)
        return rows[0] if rows else None

    def claim_batch(self, now: float, limit: int) -> list[OutboxRow]:
        """Atomically takes up to `limit` due rows, oldest first, under one lease: one
        transaction for many emails instead of one each."""
        with self.store.write() as tx:
            rows = tx.execute(
                "UPDATE outbox SET claimed_by = ?, lease_until = ? WHERE id IN ("
                " SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id"
                " LIMIT ?) RETURNING *",
                (self.worker_id, now + self.lease_seconds, now, now, limit)).fetchall()
        # RETURNING gives no order guarantee.
        rows.sort(key=lambda row: (row["next_attempt_at"], row["id"]))
        return [_outbox_row(row) for row in rows]

    def mark_sent(self, row: OutboxRow, now: float, latency_buckets: Sequence[float]) -> bool:
        """Records SMTP acceptance, the sent counter and the latency, in one transaction."""
        with self.store.write() as tx:
            cursor = tx.execute(
                "UPDATE outbox SET status = 'sent', finished_at = ?, claimed_by = NULL,"
                " lease_until = NULL, attempts = attempts + 1, last_error = ''"
                " WHERE id = ? AND status = 'pending'", (now, row.id))
            if not cursor.rowcount:
                return False
            latency = max(0.0, now - row.received_at)
            increment_all(tx, (
                (counters.EMAILS_SENT, row.notification, 1),
                (counters.LATENCY_IN_BUCKET,
                 counters.latency_bucket_label(latency, latency_buckets), 1),
                (counters.LATENCY_SUM, "", latency),
                (counters.LATENCY_COUNT, "", 1),
            ))
        return True

    def retry_later(self, row: OutboxRow, now: float, next_attempt_at: float, error: str) -> None:
        with self.store.write() as tx:
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
                " claimed_by = NULL, lease_until = NULL WHERE id = ? AND status = 'pending'",
                (next_attempt_at, error[:1000], row.id))
            increment(tx, counters.SMTP_ERRORS, "transient")

    def release(self, row: OutboxRow) -> None:
        """Gives a claimed row back untouched (e.g. on shutdown before sending)."""
        with self.store.write() as tx:
            tx.execute("UPDATE outbox SET claimed_by = NULL, lease_until = NULL "
                       "WHERE id = ? AND claimed_by = ?", (row.id, self.worker_id))

    def mark_failed(self, row: OutboxRow, now: float, error: str, smtp_kind: str | None) -> None:
        """Gives up on a row; `smtp_kind` counts the last SMTP attempt (None: not an SMTP error)."""
        with self.store.write() as tx:
            cursor = tx.execute(
                "UPDATE outbox SET status = 'failed', finished_at = ?, last_error = ?,"
                " attempts = attempts + 1, claimed_by = NULL, lease_until = NULL"
                " WHERE id = ? AND status = 'pending'", (now, error[:1000], row.id))
            if cursor.rowcount:
                increment(tx, counters.EMAILS_FAILED, row.notification)
            if smtp_kind:
                increment(tx, counters.SMTP_ERRORS, smtp_kind)


def prune_state(store: Store, now: float, retention: float) -> int:
    """Forgets alert instances not seen for `retention` seconds; returns how many."""
    with store.write() as tx:
        cursor = tx.execute("DELETE FROM alert_state WHERE last_seen_at < ?", (now - retention,))
        return cursor.rowcount
