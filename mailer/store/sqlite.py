"""The mailer's SQLite store: recipients, alert state, outbox, undeliverable notes, counters.

Durability: WAL journal with `synchronous=FULL`, so a commit is fsynced to the WAL before the
webhook answers 2xx and survives a power loss, not only a process crash (`NORMAL` would only
survive the latter). Every write runs in `BEGIN IMMEDIATE`, which takes SQLite's single write
lock up front: concurrent gunicorn workers and delivery threads serialise there instead of
failing half-way with SQLITE_BUSY on lock upgrade. Threads of one process also queue on a
Python lock before BEGIN IMMEDIATE: SQLite's busy handler polls with sleeps that grow to
100 ms, which under load made webhook answers and deliveries wait far longer than the
transactions they waited for; a lock hands over at once.

The schema is versioned with `PRAGMA user_version`; MIGRATIONS[i] upgrades version i to
i+1. Statements are split on ";", so the SQL comments must not contain one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 15_000

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the initial schema.
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
)


DELIVERY_CHECKPOINT_PAGES = 1000  # SQLite's default: about 4 MB of log
WEBHOOK_CHECKPOINT_PAGES = 20000  # only when nothing delivers for a long while


class StoreError(RuntimeError):
    """The store could not be opened or written (disk full, read-only, locked too long)."""


class Store:
    """One SQLite database shared by all processes; one connection per thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                # Checkpoints (copying the log into the database, with an fsync of each)
                # are left to the delivery threads, see tune_for_delivery(); this larger
                # threshold only bounds the log if nothing delivers for a long while.
                conn.execute(f"PRAGMA wal_autocheckpoint = {WEBHOOK_CHECKPOINT_PAGES}")
                conn.execute("PRAGMA foreign_keys = ON")
            except (sqlite3.Error, OSError) as error:
                raise StoreError(f"open store {self.path}: {error}") from error
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def tune_for_delivery(self) -> None:
        """Settings for a delivery thread's connection: commits without waiting for fsync
        (synchronous = NORMAL), and the log's checkpoints.

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
        try:
            conn = self.connection()
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {DELIVERY_CHECKPOINT_PAGES}")
        except sqlite3.Error as error:
            raise StoreError(f"tune the store for delivery: {error}") from error

    def migrate(self) -> int:
        """Brings the schema to the latest version; returns that version.

        A store already at the latest version is only read: a gunicorn worker (re)started
        while another process holds the write lock must still boot, or gunicorn gives up
        on every worker. Behind it, the version is read again under the write lock, since
        another process may have migrated meanwhile.
        """
        conn = self.connection()
        if self._schema_version(conn) == len(MIGRATIONS):
            return len(MIGRATIONS)
        with self.write() as tx:
            version = self._schema_version(tx)
            for target in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {target + 1}")
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as error:
            raise StoreError(f"read the schema version of {self.path}: {error}") from error
        if version > len(MIGRATIONS):
            raise StoreError(f"store {self.path} has schema version {version}, newer than "
                             f"this mailer knows ({len(MIGRATIONS)})")
        return version

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): committed on success, rolled back on error.

        :raise StoreError: when SQLite fails (the caller's own exceptions pass through).
        """
        conn = self.connection()
        if not self._write_lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            raise StoreError(f"begin write transaction: another thread held the store "
                             f"for more than {BUSY_TIMEOUT_MS / 1000:.0f}s")
        try:
            yield from self._transaction(conn)
        finally:
            self._write_lock.release()

    @staticmethod
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StoreError(f"begin write transaction: {error}") from error
        try:
            yield conn
        except BaseException as error:
            # SQLite rolls a transaction back by itself on SQLITE_FULL and some I/O errors; a
            # second ROLLBACK would fail and hide the real error (a 500 instead of a 503).
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise StoreError(f"write to store: {error}") from error
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise StoreError(f"commit to store: {error}") from error

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several reads."""
        conn = self.connection()
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as error:
            raise StoreError(f"begin read: {error}") from error
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Closes every connection this Store opened (in any thread)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


_INCREMENT = ("INSERT INTO counters (name, label, value) VALUES (?, ?, ?) "
              "ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value")


def increment(tx: sqlite3.Connection, name: str, label: str = "", amount: float = 1) -> None:
    """Adds `amount` to a counter inside the caller's transaction."""
    if amount:
        tx.execute(_INCREMENT, (name, label, amount))


def increment_all(tx: sqlite3.Connection,
                  changes: Iterable[tuple[str, str, float]]) -> None:
    """Adds to several counters (name, label, amount) in one call, inside the caller's
    transaction."""
    tx.executemany(_INCREMENT, [change for change in changes if change[2]])
