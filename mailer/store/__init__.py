"""The mailer's storage: what each part of the mailer reads and writes, behind one interface.

The parts and what they need:
- intake: one `IntakeTransaction` per webhook (the alert states, the recipients, the outbox
  rows, the undeliverable notes and the counters, committed together or not at all);
- delivery: claiming outbox rows under a lease and marking them sent, retried or failed, each
  change checked against the claim it was made under (`Claim`);
- retention: deleting what is no longer needed, a bounded batch per transaction;
- the recipient registry: one `RecipientTransaction` per change;
- the lifecycle commands (integrations disconnected, accounts offboarded): one
  `LifecycleTransaction` per command;
- the admin API, /metrics and /readyz: read-only reports and a write probe.

`open_store(config)` (sysnotify.mailer.store.backends) opens the backend the config names. A
backend is one module that owns the tables and every query on them (SQLite:
sysnotify.mailer.store.sqlite); nothing else in the mailer writes SQL. Every backend failure is
a StoreError: callers answer 5xx or retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sysnotify.mailer.intake.decide import AlertState
from sysnotify.mailer.intake.ended import AccountLifecycle
from sysnotify.sqlite import StoreError

__all__ = [
    "Claim",
    "CounterChange",
    "IntakeTransaction",
    "LifecycleTransaction",
    "PendingEmail",
    "MetricsSnapshot",
    "NewEmail",
    "OutboxRow",
    "RecipientRecord",
    "RecipientTransaction",
    "Store",
    "StoreError",
    "UndeliverableNote",
    "open_store",
]

CounterChange = tuple[str, str, float]  # (counter name, label, amount): see mailer.counters


@dataclass(frozen=True)
class RecipientRecord:
    """A registry row as stored: `categories` is empty for the primary administrator."""

    account: str
    address: str
    role: str  # "primary" or "subscriber"
    categories: tuple[str, ...]


@dataclass(frozen=True)
class NewEmail:
    """One email for one recipient, as the intake queues it."""

    notification_key: str
    recipient: str
    notification: str
    phase: str
    account: str
    message_id: str
    thread_ids: tuple[str, ...]  # Message-IDs this email replies to
    request: str  # the stored request (mailer.stored_request), rendered on delivery
    received_at: float


@dataclass(frozen=True)
class Claim:
    """Who holds an outbox row, and which of its claims this is.

    Every claim of a row counts its generation up, so a worker whose lease ran out while it
    was stalled (a slow SMTP server, a locked store) holds a stale claim once the row is
    claimed again, even by the same worker: every change of the row names its claim, and a
    stale claim changes nothing (the change is *fenced off*).
    """

    worker_id: str
    generation: int
    lease_until: float  # as claimed; extensions move it later


@dataclass(frozen=True)
class OutboxRow:
    """A claimed outbox row, as delivery sees it."""

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
    claim: Claim


@dataclass(frozen=True)
class UndeliverableNote:
    """A notification kept because nobody could receive it."""

    received_at: float
    receiver: str
    account: str
    notification: str
    phase: str
    reason: str
    alerts: list[dict[str, Any]]  # alertname, fingerprint, status, labels of each alert
    # What the note is about (its alerts' episodes and phase): a note whose episode is kept
    # already is not kept again, so Alertmanager's retries and repeats add no row.
    episode: str | None = None


@dataclass(frozen=True)
class PendingEmail:
    """An outbox row not sent yet, as the lifecycle commands see it."""

    id: int
    notification: str
    request: str  # the stored request (mailer.stored_request)


@dataclass(frozen=True)
class MetricsSnapshot:
    """One consistent read for /metrics."""

    counters: dict[str, dict[str, float]]  # counter name -> label -> value
    pending_emails: int
    oldest_pending_queued_at: float | None


class IntakeTransaction(Protocol):
    """What one webhook reads and writes; committed as a whole when the block ends."""

    def episode(self, identity: str, fingerprints: Sequence[str]) -> AlertState | None:
        """The current (open, else last) episode of this alert identity. Without one, an
        episode a schema-1 store kept under one of these Alertmanager fingerprints, which
        from then on is this identity's."""
        ...

    def save_state(self, state: AlertState) -> None:
        """Stores the identity's current episode (a new episode replaces a recovered one)."""
        ...

    def recipients(self, account: str) -> list[RecipientRecord]:
        """The account's recipients, primary first."""
        ...

    def queue_email(self, email: NewEmail) -> bool:
        """Adds an outbox row; False when this (notification key, recipient) is queued
        already, which makes a re-delivered webhook queue nothing."""
        ...

    def note_undeliverable(self, note: UndeliverableNote) -> bool:
        """Keeps the note; False when a note of the same episode is kept already."""
        ...

    def count(self, changes: Iterable[CounterChange]) -> None: ...

    def lifecycles(self, accounts: Iterable[str]) -> dict[str, AccountLifecycle]:
        """What each of these accounts ended (offboarded, disconnected integrations); only
        the accounts that ended something are in the result."""
        ...


class LifecycleTransaction(Protocol):
    """One lifecycle command (sysnotify.mailer.lifecycle); committed as a whole."""

    def set_offboarded(self, account: str, offboarded: bool, now: float) -> bool:
        """Marks the account offboarded (since the first time) or active again; returns
        whether that changed anything."""
        ...

    def set_disconnected(self, account: str, system: str, disconnected: bool, now: float) -> bool:
        """Marks the integration disconnected (since the first time) or connected again;
        returns whether that changed anything."""
        ...

    def open_episodes(self, account: str) -> list[AlertState]:
        """The account's episodes that have not recovered."""
        ...

    def save_state(self, state: AlertState) -> None: ...

    def pending_emails(self, account: str) -> list[PendingEmail]:
        """The account's outbox rows still to be sent (claimed ones included)."""
        ...

    def rewrite_request(self, email_id: int, request: str) -> bool:
        """Replaces a row's stored request while it is still to be sent."""
        ...

    def cancel_email(self, email_id: int, reason: str, now: float) -> bool:
        """Gives up on a row still to be sent: status failed, last_error "cancelled: ..."."""
        ...

    def remove_recipients(self, account: str) -> int:
        """Deletes the account's recipients, the primary too; returns how many."""
        ...

    def count(self, changes: Iterable[CounterChange]) -> None: ...


class RecipientTransaction(Protocol):
    """One change of the recipient registry; committed as a whole when the block ends."""

    def role_of(self, account: str, address: str) -> str | None: ...

    def put_subscriber(
        self, account: str, address: str, categories: Sequence[str], now: float
    ) -> None:
        """Adds a subscriber, or replaces an existing subscriber's categories."""
        ...

    def delete(self, account: str, address: str) -> None: ...

    def make_primary(
        self, account: str, address: str, former_primary_categories: Sequence[str], now: float
    ) -> None:
        """Makes `address` the primary (adding it if needed); the previous primary stays a
        subscriber of `former_primary_categories`."""
        ...


class Store(Protocol):
    """A mailer store: every process and thread of one mailer deployment shares it."""

    def migrate(self) -> int:
        """Brings the schema to the latest version; returns that version."""
        ...

    def close(self) -> None: ...

    def tune_for_delivery(self) -> None:
        """Settings for the calling delivery thread (its commits need not wait for a sync)."""
        ...

    # -- intake ---------------------------------------------------------------------------

    def intake(self) -> AbstractContextManager[IntakeTransaction]: ...

    def count(self, changes: Iterable[CounterChange]) -> None:
        """Adds to counters in a transaction of its own."""
        ...

    # -- delivery -------------------------------------------------------------------------
    #
    # Every change of a claimed row takes effect only while `row.claim` still holds it (the
    # same worker and generation, the row still pending); a lease that merely ran out does not
    # matter as long as nobody claimed the row since. Otherwise the change is fenced off: the
    # row is left as its current holder has it, the method returns False, and the store
    # counts it (counters.DELIVERY_FENCED, by action) in the same transaction.

    def claim_batch(
        self, worker_id: str, now: float, lease_until: float, limit: int
    ) -> list[OutboxRow]:
        """Atomically takes up to `limit` due rows (unclaimed, or with an expired lease),
        oldest first, under one lease and a new claim generation each."""
        ...

    def extend_lease(self, row: OutboxRow, lease_until: float) -> bool:
        """Moves the lease of a row still held by `row.claim` to `lease_until`."""
        ...

    def mark_sent(self, row: OutboxRow, now: float, counted: Iterable[CounterChange]) -> bool:
        """Marks the row sent and counts `counted` with it. True as well when this claim
        already marked it sent (a mark retried after its commit was reported failed), then
        without counting again."""
        ...

    def retry_later(self, row: OutboxRow, next_attempt_at: float, error: str) -> bool:
        """Counts an attempt and gives the row back until `next_attempt_at`; the transient
        SMTP error is counted either way."""
        ...

    def release(self, row: OutboxRow) -> bool:
        """Gives the row back untouched."""
        ...

    def mark_failed(self, row: OutboxRow, now: float, error: str, smtp_kind: str | None) -> bool:
        """Gives up on the row; `smtp_kind` counts the last SMTP attempt (either way)."""
        ...

    def forget_alert_states(self, seen_before: float) -> int:
        """Drops episodes not seen since `seen_before`; returns how many."""
        ...

    # -- retention ------------------------------------------------------------------------

    def prune_emails(self, status: str, finished_before: float, limit: int) -> int:
        """Deletes up to `limit` outbox rows of `status` ("sent" or "failed"; never a pending
        row) finished before `finished_before`, oldest first, in one short transaction;
        returns how many.

        :raise ValueError: for any other status.
        """
        ...

    def prune_undeliverable(self, received_before: float, limit: int) -> int:
        """Deletes up to `limit` undeliverable notes kept before `received_before`, oldest
        first, in one short transaction; returns how many."""
        ...

    # -- the recipient registry -----------------------------------------------------------

    def recipients(self, account: str) -> list[RecipientRecord]:
        """The account's recipients, primary first."""
        ...

    def accounts(self) -> list[str]: ...

    def change_recipients(self) -> AbstractContextManager[RecipientTransaction]: ...

    # -- lifecycle: integrations disconnected, accounts offboarded ------------------------

    def change_lifecycle(self) -> AbstractContextManager[LifecycleTransaction]: ...

    def lifecycle(self, account: str) -> tuple[float | None, dict[str, float]]:
        """Since when the account is offboarded (None if it is not), and its disconnected
        integrations with the time each was disconnected."""
        ...

    # -- reports --------------------------------------------------------------------------

    def undeliverable(self, limit: int) -> list[dict[str, Any]]:
        """Undeliverable notes, newest first, as the admin API shows them."""
        ...

    def emails(self, status: str, limit: int) -> list[dict[str, Any]]:
        """Outbox rows with this status, newest first, as the admin API shows them."""
        ...

    def metrics(self) -> MetricsSnapshot: ...

    def probe_write(self) -> None:
        """Proves a write commits (not read-only, not full); raises StoreError otherwise."""
        ...
