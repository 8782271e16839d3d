"""SQLite as both services use it: one connection per thread, versioned migrations, write
transactions that take the write lock up front, and one error type that names the failed step.

Both stores run in WAL mode, so readers (a /metrics scrape, the admin API) never wait for a
writer. Every write runs in `BEGIN IMMEDIATE`, which takes SQLite's single write lock at the
start: concurrent processes and threads serialise there instead of failing half-way with
SQLITE_BUSY when a read transaction tries to upgrade. Threads of one process also queue on a
Python lock before BEGIN IMMEDIATE: SQLite's busy handler polls with sleeps that grow to
100 ms, which under load made callers wait far longer than the transactions they waited for;
a lock hands over at once.

Schemas are versioned with `PRAGMA user_version`. Migrations are append-only: a released one
is never edited, a later release adds the next, and each is applied in its own transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class StoreError(RuntimeError):
    """The store could not be opened, read or written (disk full, read-only, locked too long,
    a schema newer than this release); the message names the store and the step."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


def split_sql(script: str) -> list[str]:
    """Splits a migration into statements, keeping trigger bodies and comments intact."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


class Database:
    """One SQLite file shared by processes and threads; one connection per thread.

    :param synchronous: "FULL" when a commit must survive a power loss before the caller is
        answered (the mailer's webhooks), "NORMAL" when surviving a process crash is enough.
    :param pragmas: further `PRAGMA name = value` settings for each new connection.
    :param row_factory: how rows come back: sqlite3.Row (by name), or None for plain tuples,
        the fastest for bulk reads.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str,
        busy_timeout_ms: int,
        pragmas: Sequence[tuple[str, str | int]] = (),
        row_factory: type[sqlite3.Row] | None = sqlite3.Row,
    ) -> None:
        self.path = Path(path)
        self.row_factory = row_factory
        self.busy_timeout_ms = busy_timeout_ms
        self._pragmas: tuple[tuple[str, str | int], ...] = (
            ("busy_timeout", busy_timeout_ms),
            ("journal_mode", "WAL"),
            ("synchronous", synchronous),
            *pragmas,
        )
        self._local = threading.local()
        # Each connection with the thread that opened it (and alone uses it).
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()

    # -- connections ----------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use).

        :raise StoreError: when the file cannot be opened or set up.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout_ms / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.row_factory = self.row_factory
                for name, value in self._pragmas:
                    conn.execute(f"PRAGMA {name} = {value}")
            except (sqlite3.Error, OSError) as error:
                raise StoreError(f"open store {self.path}: {error}") from error
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append((threading.current_thread(), conn))
        return conn

    def set_pragmas(self, *pragmas: tuple[str, str | int]) -> None:
        """Changes settings of this thread's connection only (e.g. a delivery thread's)."""
        try:
            conn = self.connection()
            for name, value in pragmas:
                conn.execute(f"PRAGMA {name} = {value}")
        except sqlite3.Error as error:
            raise StoreError(f"set up store {self.path}: {error}") from error

    def close(self) -> None:
        """Closes the connections of this thread and of threads that have ended.

        A connection of a thread still running is left to it: closing a connection while
        another thread is inside a statement on it crashes SQLite (a background prune or a
        delivery thread that has not stopped yet); a later close() closes it once its thread
        has ended.
        """
        current = threading.current_thread()
        with self._connections_lock:
            still_used = []
            for owner, conn in self._connections:
                if owner is current or not owner.is_alive():
                    conn.close()
                else:
                    still_used.append((owner, conn))
            self._connections = still_used
        self._local = threading.local()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): committed on success, rolled back on error.

        :raise StoreError: when SQLite fails (the caller's own exceptions pass through).
        """
        conn = self.connection()
        if not self._write_lock.acquire(timeout=self.busy_timeout_ms / 1000):
            raise StoreError(
                f"begin write transaction: another thread held the store "
                f"for more than {self.busy_timeout_ms / 1000:.0f}s"
            )
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
        """A consistent snapshot for several reads.

        :raise StoreError: when SQLite fails.
        """
        conn = self.connection()
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as error:
            raise StoreError(f"begin read: {error}") from error
        try:
            yield conn
        except sqlite3.Error as error:
            raise StoreError(f"read store: {error}") from error
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        try:
            return int(self.connection().execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as error:
            raise StoreError(f"read the schema version of {self.path}: {error}") from error

    def migrate(self, migrations: Sequence[Migration], too_new: str = "") -> int:
        """Applies the migrations this file lacks, each in its own transaction; returns the
        schema version it ends at.

        A file already at the newest version is only read: a process (re)started while
        another holds the write lock must still boot. The version is read again under the
        write lock, since another process may have migrated meanwhile.

        :param too_new: what to tell the operator when the file is newer than this release.
        :raise StoreError: for a file newer than `migrations`, or when a migration fails.
        """
        newest = migrations[-1].version if migrations else 0
        current = self.schema_version()
        if current > newest:
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this "
                f"release's {newest}{'; ' + too_new if too_new else ''}"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            with self.write() as tx:
                current = int(tx.execute("PRAGMA user_version").fetchone()[0])
                if current >= migration.version:
                    continue
                for statement in split_sql(migration.sql):
                    tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {int(migration.version)}")
            current = migration.version
        return self.schema_version()
