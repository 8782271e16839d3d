"""The mailer's SQLite backend: the schema and every query the mailer runs on it.

Durability: WAL journal with `synchronous=FULL`, so a commit is fsynced to the log before the
webhook answers 2xx and survives a power loss, not only a process crash (`NORMAL` would only
survive the latter). Delivery threads relax this for their own commits (tune_for_delivery).
Transactions, locking and migrations are sysnotify.sqlite's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sysnotify.mailer import counters
from sysnotify.mailer.intake.decide import AlertState
from sysnotify.mailer.intake.ended import AccountLifecycle
from sysnotify.mailer.store import (
    Claim,
    CounterChange,
    MetricsSnapshot,
    NewEmail,
    OutboxRow,
    PendingEmail,
    RecipientRecord,
    UndeliverableNote,
)
from sysnotify.sqlite import Database, Migration

BUSY_TIMEOUT_MS = 15_000
DELIVERY_CHECKPOINT_PAGES = 1000  # SQLite's default: about 4 MB of log
WEBHOOK_CHECKPOINT_PAGES = 20000  # only when nothing delivers for a long while

# Append only: a released migration is never edited.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "recipients, alert state, outbox, undeliverable notes, counters",
        """
    CREATE TABLE recipients (
        account TEXT NOT NULL,
        address TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('primary', 'subscriber')),
        categories TEXT NOT NULL DEFAULT '',  -- comma-separated, empty for the primary
        created_at REAL NOT NULL,
        PRIMARY KEY (account, address)
    );
    CREATE UNIQUE INDEX recipients_one_primary ON recipients (account) WHERE role = 'primary';

    -- What was notified about each alert instance (receiver, group, fingerprint, startsAt).
    CREATE TABLE alert_state (
        receiver TEXT NOT NULL,
        group_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        account TEXT NOT NULL,
        notification TEXT NOT NULL,
        problem_key TEXT NOT NULL,       -- notification key of the problem email (threading)
        first_notified_at REAL NOT NULL,
        last_notified_at REAL NOT NULL,  -- last problem or reminder covering this alert
        last_seen_at REAL NOT NULL,
        reminders INTEGER NOT NULL DEFAULT 0,
        recovered_at REAL,
        PRIMARY KEY (receiver, group_key, fingerprint, starts_at)
    );
    CREATE INDEX alert_state_last_seen ON alert_state (last_seen_at);

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        notification_key TEXT NOT NULL,
        recipient TEXT NOT NULL,
        notification TEXT NOT NULL,
        phase TEXT NOT NULL,
        account TEXT NOT NULL,
        message_id TEXT NOT NULL,
        thread_ids TEXT NOT NULL DEFAULT '',  -- Message-IDs this email replies to
        request TEXT NOT NULL,                -- the EmailRequest as JSON, rendered on delivery
        received_at REAL NOT NULL,            -- when the webhook arrived (latency start)
        queued_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        claimed_by TEXT,
        lease_until REAL,
        last_error TEXT NOT NULL DEFAULT '',
        finished_at REAL,
        UNIQUE (notification_key, recipient)
    );
    CREATE INDEX outbox_pending ON outbox (status, next_attempt_at);

    CREATE TABLE undeliverable (
        id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        receiver TEXT NOT NULL,
        account TEXT NOT NULL,
        notification TEXT NOT NULL,
        phase TEXT NOT NULL,
        reason TEXT NOT NULL,
        alerts TEXT NOT NULL  -- JSON: alertname, fingerprint, labels of each alert
    );

    -- Counters and histogram buckets, updated in the same transaction as the state they count.
    CREATE TABLE counters (
        name TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        value REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (name, label)
    );
    """,
    ),
    Migration(
        2,
        "alert state keyed by alert identity: one episode per identity, whatever its group",
        """
    -- One row per alert identity (what the alert is about: audience and labels without the
    -- display-only ones, hashed), holding its current episode. Schema 1 keyed rows by
    -- (receiver, groupKey, fingerprint, startsAt): a route edit or a new startsAt made a new
    -- row. Those rows carry over as LEGACY_IDENTITY || fingerprint, one per fingerprint (the
    -- open one last seen, else the last recovered), until their alert is seen again.
    CREATE TABLE alert_state_by_identity (
        identity TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        notification TEXT NOT NULL,
        starts_at TEXT NOT NULL,          -- startsAt of the alert that opened the episode
        receiver TEXT NOT NULL,           -- receiver and groupKey that last reported it
        group_key TEXT NOT NULL,
        problem_key TEXT NOT NULL,        -- notification key of the problem email (threading)
        first_notified_at REAL NOT NULL,
        last_notified_at REAL NOT NULL,   -- last problem, reminder or report by a new group
        last_seen_at REAL NOT NULL,
        reminders INTEGER NOT NULL DEFAULT 0,
        recovered_at REAL,
        ended_at TEXT NOT NULL DEFAULT '',     -- the resolved alert's endsAt
        account_name TEXT NOT NULL DEFAULT ''  -- the display name the last email used
    );
    INSERT INTO alert_state_by_identity (identity, account, notification, starts_at, receiver,
        group_key, problem_key, first_notified_at, last_notified_at, last_seen_at, reminders,
        recovered_at)
    SELECT 'fingerprint:' || fingerprint, account, notification, starts_at, receiver, group_key,
        problem_key, first_notified_at, last_notified_at, last_seen_at, reminders, recovered_at
    FROM (
        SELECT *, row_number() OVER (
            PARTITION BY fingerprint
            ORDER BY recovered_at IS NULL DESC, last_seen_at DESC, first_notified_at DESC
        ) AS rank
        FROM alert_state
    )
    WHERE rank = 1;
    DROP TABLE alert_state;
    ALTER TABLE alert_state_by_identity RENAME TO alert_state;
    CREATE INDEX alert_state_last_seen ON alert_state (last_seen_at);
    """,
    ),
    Migration(
        3,
        "outbox claim generation: a row is changed only under the claim that holds it",
        """
    -- Counted up by every claim; with claimed_by it names the claim a change is made under.
    -- claimed_by stays set on sent and failed rows: who finished them.
    ALTER TABLE outbox ADD COLUMN claim_generation INTEGER NOT NULL DEFAULT 0;
    """,
    ),
    Migration(
        6,
        "indexes for retention: finished outbox rows and undeliverable notes by age",
        """
    CREATE INDEX outbox_finished ON outbox (status, finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX undeliverable_received ON undeliverable (received_at);
    """,
    ),
    Migration(
        7,
        "lifecycle: offboarded accounts, disconnected integrations, the labels of episodes",
        """
    -- What the platform said the customer ended (sysnotify.mailer.lifecycle): nothing is mailed
    -- about an offboarded account, nor about an alert whose system or platform label names a
    -- disconnected integration of its account.
    CREATE TABLE offboarded_accounts (
        account TEXT PRIMARY KEY,
        since REAL NOT NULL
    );
    CREATE TABLE disconnected_integrations (
        account TEXT NOT NULL,
        system TEXT NOT NULL,
        since REAL NOT NULL,
        PRIMARY KEY (account, system)
    );
    -- The identity's labels as a JSON array of [name, value] pairs, so that the episodes of one
    -- integration can be found; '' for episodes opened before.
    ALTER TABLE alert_state ADD COLUMN labels TEXT NOT NULL DEFAULT '';
    CREATE INDEX alert_state_open_by_account ON alert_state (account)
        WHERE recovered_at IS NULL;
    CREATE INDEX outbox_pending_by_account ON outbox (account) WHERE status = 'pending';
    """,
    ),
    Migration(
        8,
        "undeliverable notes kept once per episode",
        """
    -- What a note is about (sysnotify.mailer.intake.transaction): Alertmanager's retries and
    -- repeats of an alert nobody can receive add no row. NULL for the notes kept before.
    ALTER TABLE undeliverable ADD COLUMN episode TEXT;
    CREATE UNIQUE INDEX undeliverable_episode ON undeliverable (episode)
        WHERE episode IS NOT NULL;
    """,
    ),
)
# How migration 2 names an episode carried over from schema 1 (see SqliteIntake.episode).
LEGACY_IDENTITY = "fingerprint:"

# A row still held by a claim: the same worker and generation, and still to be sent.
_HELD_BY_CLAIM = "id = ? AND claimed_by = ? AND claim_generation = ? AND status = 'pending'"

_INCREMENT = (
    "INSERT INTO counters (name, label, value) VALUES (?, ?, ?) "
    "ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value"
)


def increment_all(tx: sqlite3.Connection, changes: Iterable[CounterChange]) -> None:
    """Adds to several counters (name, label, amount), inside the caller's transaction."""
    tx.executemany(_INCREMENT, [change for change in changes if change[2]])


def _claim_of(row: OutboxRow) -> tuple[int, str, int]:
    return (row.id, row.claim.worker_id, row.claim.generation)


def _count_fenced(tx: sqlite3.Connection, action: str) -> None:
    increment_all(tx, [(counters.DELIVERY_FENCED, action, 1)])


def _state(row: sqlite3.Row) -> AlertState:
    return AlertState(
        row["identity"],
        row["account"],
        row["notification"],
        row["starts_at"],
        row["receiver"],
        row["group_key"],
        row["problem_key"],
        row["first_notified_at"],
        row["last_notified_at"],
        row["last_seen_at"],
        row["reminders"],
        row["recovered_at"],
        row["ended_at"],
        row["account_name"],
        tuple((name, value) for name, value in json.loads(row["labels"] or "[]")),
    )


def _save_state(tx: sqlite3.Connection, state: AlertState) -> None:
    tx.execute(
        "INSERT OR REPLACE INTO alert_state (identity, account, notification, starts_at,"
        " receiver, group_key, problem_key, first_notified_at, last_notified_at,"
        " last_seen_at, reminders, recovered_at, ended_at, account_name, labels)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            state.identity,
            state.account,
            state.notification,
            state.starts_at,
            state.receiver,
            state.group_key,
            state.problem_key,
            state.first_notified_at,
            state.last_notified_at,
            state.last_seen_at,
            state.reminders,
            state.recovered_at,
            state.ended_at,
            state.account_name,
            json.dumps(state.labels) if state.labels else "",
        ),
    )


def _recipient(row: sqlite3.Row) -> RecipientRecord:
    return RecipientRecord(
        row["account"],
        row["address"],
        row["role"],
        tuple(c for c in row["categories"].split(",") if c),
    )


def _recipients(conn: sqlite3.Connection, account: str) -> list[RecipientRecord]:
    rows = conn.execute(
        "SELECT * FROM recipients WHERE account = ? ORDER BY role = 'primary' DESC, address",
        (account,),
    ).fetchall()
    return [_recipient(row) for row in rows]


def _outbox_row(row: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        row["id"],
        row["notification_key"],
        row["notification"],
        row["phase"],
        row["recipient"],
        row["message_id"],
        tuple(row["thread_ids"].split()),
        json.loads(row["request"]),
        row["received_at"],
        row["queued_at"],
        row["attempts"],
        Claim(row["claimed_by"], row["claim_generation"], row["lease_until"]),
    )


class SqliteIntake:
    """The queries of one webhook's transaction (see IntakeTransaction)."""

    def __init__(self, tx: sqlite3.Connection) -> None:
        self.tx = tx

    def episode(self, identity: str, fingerprints: Sequence[str]) -> AlertState | None:
        row = self.tx.execute(
            "SELECT * FROM alert_state WHERE identity = ?", (identity,)
        ).fetchone()
        if row is None and fingerprints:
            legacy = [LEGACY_IDENTITY + fingerprint for fingerprint in fingerprints]
            row = self.tx.execute(
                f"SELECT * FROM alert_state WHERE identity IN ({', '.join('?' * len(legacy))})"
                " ORDER BY recovered_at IS NULL DESC, last_seen_at DESC LIMIT 1",
                legacy,
            ).fetchone()
            if row is not None:
                self.tx.execute(
                    "UPDATE alert_state SET identity = ? WHERE identity = ?",
                    (identity, row["identity"]),
                )
        return None if row is None else replace(_state(row), identity=identity)

    def save_state(self, state: AlertState) -> None:
        _save_state(self.tx, state)

    def recipients(self, account: str) -> list[RecipientRecord]:
        return _recipients(self.tx, account)

    def queue_email(self, email: NewEmail) -> bool:
        cursor = self.tx.execute(
            "INSERT INTO outbox (notification_key, recipient, notification, phase, account,"
            " message_id, thread_ids, request, received_at, queued_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (notification_key, recipient) DO NOTHING",
            (
                email.notification_key,
                email.recipient,
                email.notification,
                email.phase,
                email.account,
                email.message_id,
                " ".join(email.thread_ids),
                email.request,
                email.received_at,
                email.received_at,
                email.received_at,
            ),
        )
        return bool(cursor.rowcount)

    def note_undeliverable(self, note: UndeliverableNote) -> bool:
        cursor = self.tx.execute(
            "INSERT INTO undeliverable (received_at, receiver, account, notification, phase,"
            " reason, alerts, episode) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (
                note.received_at,
                note.receiver,
                note.account,
                note.notification,
                note.phase,
                note.reason,
                json.dumps(note.alerts),
                note.episode,
            ),
        )
        return bool(cursor.rowcount)

    def count(self, changes: Iterable[CounterChange]) -> None:
        increment_all(self.tx, changes)

    def lifecycles(self, accounts: Iterable[str]) -> dict[str, AccountLifecycle]:
        wanted = json.dumps(sorted(set(accounts)))
        offboarded = {
            row[0]
            for row in self.tx.execute(
                "SELECT account FROM offboarded_accounts"
                " WHERE account IN (SELECT value FROM json_each(?))",
                (wanted,),
            )
        }
        disconnected: dict[str, set[str]] = {}
        for account, system in self.tx.execute(
            "SELECT account, system FROM disconnected_integrations"
            " WHERE account IN (SELECT value FROM json_each(?))",
            (wanted,),
        ):
            disconnected.setdefault(account, set()).add(system)
        return {
            account: AccountLifecycle(
                account in offboarded, frozenset(disconnected.get(account, ()))
            )
            for account in offboarded | set(disconnected)
        }


class SqliteLifecycle:
    """The queries of one lifecycle command (see LifecycleTransaction)."""

    def __init__(self, tx: sqlite3.Connection) -> None:
        self.tx = tx

    def set_offboarded(self, account: str, offboarded: bool, now: float) -> bool:
        if offboarded:
            sql = "INSERT INTO offboarded_accounts (account, since) VALUES (?, ?)"
            sql += " ON CONFLICT (account) DO NOTHING"
            return bool(self.tx.execute(sql, (account, now)).rowcount)
        sql = "DELETE FROM offboarded_accounts WHERE account = ?"
        return bool(self.tx.execute(sql, (account,)).rowcount)

    def set_disconnected(self, account: str, system: str, disconnected: bool, now: float) -> bool:
        if disconnected:
            sql = "INSERT INTO disconnected_integrations (account, system, since)"
            sql += " VALUES (?, ?, ?) ON CONFLICT (account, system) DO NOTHING"
            return bool(self.tx.execute(sql, (account, system, now)).rowcount)
        sql = "DELETE FROM disconnected_integrations WHERE account = ? AND system = ?"
        return bool(self.tx.execute(sql, (account, system)).rowcount)

    def open_episodes(self, account: str) -> list[AlertState]:
        rows = self.tx.execute(
            "SELECT * FROM alert_state WHERE account = ? AND recovered_at IS NULL", (account,)
        ).fetchall()
        return [_state(row) for row in rows]

    def save_state(self, state: AlertState) -> None:
        _save_state(self.tx, state)

    def pending_emails(self, account: str) -> list[PendingEmail]:
        rows = self.tx.execute(
            "SELECT id, notification, request FROM outbox"
            " WHERE account = ? AND status = 'pending' ORDER BY id",
            (account,),
        ).fetchall()
        return [PendingEmail(row["id"], row["notification"], row["request"]) for row in rows]

    def rewrite_request(self, email_id: int, request: str) -> bool:
        sql = "UPDATE outbox SET request = ? WHERE id = ? AND status = 'pending'"
        return bool(self.tx.execute(sql, (request, email_id)).rowcount)

    def cancel_email(self, email_id: int, reason: str, now: float) -> bool:
        return bool(
            self.tx.execute(
                "UPDATE outbox SET status = 'failed', finished_at = ?, last_error = ?,"
                " lease_until = NULL WHERE id = ? AND status = 'pending'",
                (now, f"cancelled: {reason}", email_id),
            ).rowcount
        )

    def remove_recipients(self, account: str) -> int:
        sql = "DELETE FROM recipients WHERE account = ?"
        return int(self.tx.execute(sql, (account,)).rowcount)

    def count(self, changes: Iterable[CounterChange]) -> None:
        increment_all(self.tx, changes)


class SqliteRecipients:
    """The queries of one registry change (see RecipientTransaction)."""

    def __init__(self, tx: sqlite3.Connection) -> None:
        self.tx = tx

    def role_of(self, account: str, address: str) -> str | None:
        row = self.tx.execute(
            "SELECT role FROM recipients WHERE account = ? AND address = ?", (account, address)
        ).fetchone()
        return None if row is None else str(row["role"])

    def put_subscriber(
        self, account: str, address: str, categories: Sequence[str], now: float
    ) -> None:
        self.tx.execute(
            "INSERT INTO recipients (account, address, role, categories, created_at) "
            "VALUES (?, ?, 'subscriber', ?, ?) ON CONFLICT (account, address) "
            "DO UPDATE SET categories = excluded.categories",
            (account, address, ",".join(categories), now),
        )

    def delete(self, account: str, address: str) -> None:
        self.tx.execute(
            "DELETE FROM recipients WHERE account = ? AND address = ?", (account, address)
        )

    def make_primary(
        self, account: str, address: str, former_primary_categories: Sequence[str], now: float
    ) -> None:
        self.tx.execute(
            "UPDATE recipients SET role = 'subscriber', categories = ? "
            "WHERE account = ? AND role = 'primary' AND address != ?",
            (",".join(former_primary_categories), account, address),
        )
        self.tx.execute(
            "INSERT INTO recipients (account, address, role, categories, created_at) "
            "VALUES (?, ?, 'primary', '', ?) ON CONFLICT (account, address) "
            "DO UPDATE SET role = 'primary', categories = ''",
            (account, address, now),
        )


class SqliteStore:
    """The mailer's store in one SQLite file shared by all processes (see Store)."""

    def __init__(self, path: Path | str) -> None:
        self.db = Database(
            path,
            synchronous="FULL",
            busy_timeout_ms=BUSY_TIMEOUT_MS,
            pragmas=(
                # Checkpoints (copying the log into the database, with an fsync of each) are left
                # to the delivery threads, see tune_for_delivery(); this larger threshold only
                # bounds the log if nothing delivers for a long while.
                ("wal_autocheckpoint", WEBHOOK_CHECKPOINT_PAGES),
                ("foreign_keys", "ON"),
            ),
        )
        self.path = self.db.path

    def migrate(self) -> int:
        return self.db.migrate(MIGRATIONS, too_new="upgrade sysnotify or use another store")

    def close(self) -> None:
        self.db.close()

    def tune_for_delivery(self) -> None:
        """A delivery thread's commits do not wait for fsync (synchronous = NORMAL), and its
        connection runs the log's checkpoints.

        In WAL mode a NORMAL commit survives the process being killed (it is in the operating
        system's cache), and the next FULL commit of any connection (every webhook's) syncs
        the log with it; only a power loss or kernel crash can undo it. A delivery thread's
        commits are claims, "sent" and "retry" marks: losing one of those means an email may
        be sent again after such a crash, never that one is lost. Webhooks keep FULL:
        Alertmanager is answered 2xx only once their emails are on disk.

        A checkpoint runs in the connection whose commit finds the log past its threshold
        and waits for fsyncs of the log and the database. Delivery threads keep SQLite's
        default threshold, webhooks a larger one, so checkpoints happen after emails are
        sent rather than while Alertmanager waits for an answer.
        """
        self.db.set_pragmas(
            ("synchronous", "NORMAL"), ("wal_autocheckpoint", DELIVERY_CHECKPOINT_PAGES)
        )

    # -- intake ---------------------------------------------------------------------------

    @contextmanager
    def intake(self) -> Iterator[SqliteIntake]:
        with self.db.write() as tx:
            yield SqliteIntake(tx)

    def count(self, changes: Iterable[CounterChange]) -> None:
        with self.db.write() as tx:
            increment_all(tx, changes)

    # -- delivery -------------------------------------------------------------------------

    def claim_batch(
        self, worker_id: str, now: float, lease_until: float, limit: int
    ) -> list[OutboxRow]:
        with self.db.write() as tx:
            rows = tx.execute(
                "UPDATE outbox SET claimed_by = ?, lease_until = ?,"
                " claim_generation = claim_generation + 1 WHERE id IN ("
                " SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id"
                " LIMIT ?) RETURNING *",
                (worker_id, lease_until, now, now, limit),
            ).fetchall()
        # RETURNING gives no order guarantee.
        rows.sort(key=lambda row: (row["next_attempt_at"], row["id"]))
        return [_outbox_row(row) for row in rows]

    def extend_lease(self, row: OutboxRow, lease_until: float) -> bool:
        with self.db.write() as tx:
            held = tx.execute(
                f"UPDATE outbox SET lease_until = ? WHERE {_HELD_BY_CLAIM}",
                (lease_until, *_claim_of(row)),
            ).rowcount
            if not held:
                _count_fenced(tx, "extend")
        return bool(held)

    def mark_sent(self, row: OutboxRow, now: float, counted: Iterable[CounterChange]) -> bool:
        with self.db.write() as tx:
            if tx.execute(
                "UPDATE outbox SET status = 'sent', finished_at = ?, lease_until = NULL,"
                f" attempts = attempts + 1, last_error = '' WHERE {_HELD_BY_CLAIM}",
                (now, *_claim_of(row)),
            ).rowcount:
                increment_all(tx, counted)
                return True
            if tx.execute(
                "SELECT 1 FROM outbox WHERE id = ? AND claimed_by = ? AND claim_generation = ?"
                " AND status = 'sent'",
                _claim_of(row),
            ).fetchone():
                return True  # this claim's mark committed before; counted then
            _count_fenced(tx, "sent")
        return False

    def retry_later(self, row: OutboxRow, next_attempt_at: float, error: str) -> bool:
        with self.db.write() as tx:
            held = tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
                f" claimed_by = NULL, lease_until = NULL WHERE {_HELD_BY_CLAIM}",
                (next_attempt_at, error[:1000], *_claim_of(row)),
            ).rowcount
            increment_all(
                tx,
                [
                    (counters.SMTP_ERRORS, "transient", 1),
                    (counters.DELIVERY_FENCED, "retry", 0 if held else 1),
                ],
            )
        return bool(held)

    def release(self, row: OutboxRow) -> bool:
        with self.db.write() as tx:
            held = tx.execute(
                f"UPDATE outbox SET claimed_by = NULL, lease_until = NULL WHERE {_HELD_BY_CLAIM}",
                _claim_of(row),
            ).rowcount
            if not held:
                _count_fenced(tx, "release")
        return bool(held)

    def mark_failed(self, row: OutboxRow, now: float, error: str, smtp_kind: str | None) -> bool:
        with self.db.write() as tx:
            held = tx.execute(
                "UPDATE outbox SET status = 'failed', finished_at = ?, last_error = ?,"
                f" attempts = attempts + 1, lease_until = NULL WHERE {_HELD_BY_CLAIM}",
                (now, error[:1000], *_claim_of(row)),
            ).rowcount
            increment_all(
                tx,
                [
                    (counters.EMAILS_FAILED, row.notification, 1 if held else 0),
                    (counters.SMTP_ERRORS, smtp_kind or "", 1 if smtp_kind else 0),
                    (counters.DELIVERY_FENCED, "failed", 0 if held else 1),
                ],
            )
        return bool(held)

    def forget_alert_states(self, seen_before: float) -> int:
        with self.db.write() as tx:
            return tx.execute(
                "DELETE FROM alert_state WHERE last_seen_at < ?", (seen_before,)
            ).rowcount

    # -- retention ------------------------------------------------------------------------

    def prune_emails(self, status: str, finished_before: float, limit: int) -> int:
        if status not in ("sent", "failed"):
            raise ValueError(f"only sent or failed emails are pruned, not {status!r}")
        with self.db.write() as tx:
            # Through outbox_finished: `finished_at < ?` implies its `finished_at IS NOT NULL`.
            return tx.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status = ?"
                " AND finished_at < ? ORDER BY finished_at LIMIT ?)",
                (status, finished_before, limit),
            ).rowcount

    def prune_undeliverable(self, received_before: float, limit: int) -> int:
        with self.db.write() as tx:
            return tx.execute(
                "DELETE FROM undeliverable WHERE id IN (SELECT id FROM undeliverable"
                " WHERE received_at < ? ORDER BY received_at LIMIT ?)",
                (received_before, limit),
            ).rowcount

    # -- the recipient registry -----------------------------------------------------------

    def recipients(self, account: str) -> list[RecipientRecord]:
        return _recipients(self.db.connection(), account)

    def accounts(self) -> list[str]:
        rows = (
            self.db.connection()
            .execute("SELECT DISTINCT account FROM recipients ORDER BY account")
            .fetchall()
        )
        return [row["account"] for row in rows]

    @contextmanager
    def change_recipients(self) -> Iterator[SqliteRecipients]:
        with self.db.write() as tx:
            yield SqliteRecipients(tx)

    # -- lifecycle ------------------------------------------------------------------------

    @contextmanager
    def change_lifecycle(self) -> Iterator[SqliteLifecycle]:
        with self.db.write() as tx:
            yield SqliteLifecycle(tx)

    def lifecycle(self, account: str) -> tuple[float | None, dict[str, float]]:
        with self.db.read() as tx:
            row = tx.execute(
                "SELECT since FROM offboarded_accounts WHERE account = ?", (account,)
            ).fetchone()
            systems = tx.execute(
                "SELECT system, since FROM disconnected_integrations WHERE account = ?"
                " ORDER BY system",
                (account,),
            ).fetchall()
        return (None if row is None else row["since"]), {r["system"]: r["since"] for r in systems}

    # -- reports --------------------------------------------------------------------------

    def undeliverable(self, limit: int) -> list[dict[str, Any]]:
        rows = (
            self.db.connection()
            .execute("SELECT * FROM undeliverable ORDER BY id DESC LIMIT ?", (limit,))
            .fetchall()
        )
        return [
            {
                "id": r["id"],
                "received_at": r["received_at"],
                "receiver": r["receiver"],
                "account": r["account"],
                "notification": r["notification"],
                "phase": r["phase"],
                "reason": r["reason"],
                "alerts": json.loads(r["alerts"]),
            }
            for r in rows
        ]

    def emails(self, status: str, limit: int) -> list[dict[str, Any]]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT id, notification, phase, account, recipient, message_id, attempts,"
                " last_error, queued_at, finished_at, next_attempt_at FROM outbox WHERE status = ?"
                " ORDER BY id DESC LIMIT ?",
                (status, limit),
            )
            .fetchall()
        )
        return [dict(row) for row in rows]

    def metrics(self) -> MetricsSnapshot:
        with self.db.read() as tx:
            rows = tx.execute("SELECT name, label, value FROM counters").fetchall()
            pending, oldest = tx.execute(
                "SELECT count(*), min(queued_at) FROM outbox WHERE status = 'pending'"
            ).fetchone()
        values: dict[str, dict[str, float]] = {}
        for name, label, value in rows:
            values.setdefault(name, {})[label] = value
        return MetricsSnapshot(values, int(pending), oldest)

    def probe_write(self) -> None:
        with self.db.write() as tx:
            tx.execute("PRAGMA user_version").fetchone()
            tx.execute(
                "INSERT INTO counters (name, label, value) VALUES ('readyz', '', 0) "
                "ON CONFLICT (name, label) DO UPDATE SET value = 0"
            )
