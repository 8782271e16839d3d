"""The exporter's SQLite backend: the schema, its migrations and every query on it.

SQLite in WAL mode, schema versioned by ``PRAGMA user_version``; transactions, locking and
migrations are :mod:`sysnotify.sqlite`'s. Every batch is applied in one ``BEGIN IMMEDIATE``
transaction, and every write is an upsert keyed on natural keys (with order-independent rules
where facts can arrive late), so applying the same batch again leaves the facts as they were.
The batch counter is the ``version`` row of the ``meta`` table.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sysnotify.exporter.events import (
    LIFECYCLE,
    MAX_DAILY_VISITS,
    Event,
    EventError,
    day_to_iso,
)
from sysnotify.exporter.lifecycle import ACCOUNT_SCOPE, ScopeState, is_dropped, lifecycle_scope
from sysnotify.exporter.store import AccountFacts, ApplyResult, BatchRejected
from sysnotify.sqlite import Database, Migration, StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteFactStore"]


# Append only: a released migration is never edited; a later release adds the next one, and
# opening an older file applies the missing ones in order, each in its own transaction.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "accounts, credentials, API usage, web visits, syncs, privacy requests",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        INSERT INTO meta (key, value) VALUES ('version', 0), ('last_event_at', NULL);
        CREATE TABLE accounts (
            account TEXT PRIMARY KEY,
            name TEXT,
            last_event_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE credentials (
            account TEXT NOT NULL,
            system TEXT NOT NULL,
            policy TEXT NOT NULL,
            password_changed_at REAL,
            valid INTEGER NOT NULL,
            checked_at REAL NOT NULL,
            PRIMARY KEY (account, system)
        ) WITHOUT ROWID;
        CREATE TABLE api_usage (
            account TEXT NOT NULL,
            platform TEXT NOT NULL,
            window_start REAL NOT NULL,
            used INTEGER NOT NULL,
            daily_limit INTEGER NOT NULL,
            PRIMARY KEY (account, platform)
        ) WITHOUT ROWID;
        CREATE TABLE web_visits (
            account TEXT NOT NULL,
            day INTEGER NOT NULL,
            page TEXT NOT NULL,
            visits INTEGER NOT NULL,
            PRIMARY KEY (account, day, page)
        ) WITHOUT ROWID;
        CREATE TABLE web_accounts (
            account TEXT PRIMARY KEY,
            first_day INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE sync_runs (
            account TEXT NOT NULL,
            run_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT,
            PRIMARY KEY (account, run_id)
        ) WITHOUT ROWID;
        CREATE TABLE privacy_requests (
            account TEXT NOT NULL,
            request_id TEXT NOT NULL,
            received_at REAL NOT NULL,
            status TEXT NOT NULL,
            PRIMARY KEY (account, request_id)
        ) WITHOUT ROWID;
        CREATE INDEX privacy_pending ON privacy_requests (account, received_at)
            WHERE status = 'pending';
    """,
    ),
    Migration(
        2,
        "daily web-visit totals per account, kept by triggers",
        """
        CREATE TABLE web_daily (
            account TEXT NOT NULL,
            day INTEGER NOT NULL,
            visits INTEGER NOT NULL,
            PRIMARY KEY (account, day)
        ) WITHOUT ROWID;
        INSERT INTO web_daily (account, day, visits)
            SELECT account, day, SUM(visits) FROM web_visits GROUP BY account, day;
        CREATE TRIGGER web_visits_insert AFTER INSERT ON web_visits BEGIN
            INSERT INTO web_daily (account, day, visits) VALUES (NEW.account, NEW.day, NEW.visits)
            ON CONFLICT (account, day) DO UPDATE SET visits = visits + NEW.visits;
        END;
        CREATE TRIGGER web_visits_update AFTER UPDATE OF visits ON web_visits BEGIN
            UPDATE web_daily SET visits = visits + NEW.visits - OLD.visits
            WHERE account = NEW.account AND day = NEW.day;
        END;
        CREATE TRIGGER web_visits_delete AFTER DELETE ON web_visits BEGIN
            UPDATE web_daily SET visits = visits - OLD.visits
            WHERE account = OLD.account AND day = OLD.day;
        END;
    """,
    ),
    Migration(
        5,
        "facts out of this release's bounds removed; overflowed daily totals recomputed",
        # Older releases accepted counts of any size and times in any year. Such a fact could
        # blind /metrics or freeze an account's state (a check dated in 2999 wins against every
        # later one), and no event can correct it, so it goes: counts over the maxima of
        # docs/exporter.md ("Bounds": 10^9 visits of a page a day, 10^10 API calls) and times
        # more than a day ahead of the clock at the upgrade. The platform's next report of
        # the same fact puts it back. The daily totals of the days concerned are counted again
        # from their pages: one that overflowed became an inexact float.
        """
        CREATE TEMP TABLE recount (account TEXT, day INTEGER, PRIMARY KEY (account, day));
        INSERT OR IGNORE INTO recount SELECT account, day FROM web_visits
            WHERE typeof(visits) != 'integer' OR visits < 0 OR visits > 1000000000;
        INSERT OR IGNORE INTO recount SELECT account, day FROM web_daily
            WHERE typeof(visits) != 'integer' OR visits < 0 OR visits > 100000000000;
        DELETE FROM web_visits
            WHERE typeof(visits) != 'integer' OR visits < 0 OR visits > 1000000000;
        UPDATE web_daily SET visits = (
            SELECT COALESCE(SUM(w.visits), 0) FROM web_visits w
            WHERE w.account = web_daily.account AND w.day = web_daily.day
        ) WHERE (account, day) IN (SELECT account, day FROM recount);
        DROP TABLE recount;
        DELETE FROM api_usage
            WHERE typeof(used) != 'integer' OR used < 0 OR used > 10000000000
            OR typeof(daily_limit) != 'integer' OR daily_limit < 1
            OR daily_limit > 10000000000
            OR window_start > CAST(strftime('%s', 'now') AS INTEGER) + 86400;
        DELETE FROM credentials
            WHERE checked_at > CAST(strftime('%s', 'now') AS INTEGER) + 86400
            OR password_changed_at > CAST(strftime('%s', 'now') AS INTEGER) + 86400;
        DELETE FROM sync_runs
            WHERE started_at > CAST(strftime('%s', 'now') AS INTEGER) + 86400
            OR finished_at > CAST(strftime('%s', 'now') AS INTEGER) + 86400;
        DELETE FROM privacy_requests
            WHERE received_at > CAST(strftime('%s', 'now') AS INTEGER) + 86400;
    """,
    ),
    Migration(
        6,
        "indexes for retention: daily totals by day, sync runs by start, handled requests",
        """
        CREATE INDEX web_daily_day ON web_daily (day);
        CREATE INDEX sync_runs_started ON sync_runs (started_at);
        CREATE INDEX privacy_completed ON privacy_requests (received_at)
            WHERE status = 'completed';
    """,
    ),
    Migration(
        7,
        "lifecycle: integrations disconnected and accounts offboarded, the latest event of each",
        # One row per scope: an account's integration (system), or the account itself (''). An
        # ended scope's facts are gone and new ones are dropped; after a restart, facts from
        # before it are dropped (sysnotify.exporter.lifecycle). Rows stay after the facts age
        # out, so that a late fact of an offboarded account never brings it back.
        """
        CREATE TABLE lifecycle (
            account TEXT NOT NULL,
            system TEXT NOT NULL,
            ended INTEGER NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (account, system)
        ) WITHOUT ROWID;
    """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
LIFECYCLE_SCHEMA = 7

# A run the sync metrics show: the account's latest started, latest successful or latest
# finished one (ties kept). Prunable runs are older than all three.
_PRUNABLE_RUN = (
    "started_at < (SELECT MAX(started_at) FROM sync_runs WHERE account = r.account)"
    " AND (finished_at IS NULL"
    " OR finished_at < (SELECT MAX(finished_at) FROM sync_runs WHERE account = r.account))"
    " AND (status IS NOT 'success' OR finished_at < (SELECT MAX(finished_at) FROM sync_runs"
    " WHERE account = r.account AND status = 'success'))"
)
_FACT_TABLES = ("credentials", "api_usage", "web_visits", "sync_runs", "privacy_requests")
_NO_FACTS = " AND ".join(
    f"NOT EXISTS (SELECT 1 FROM {table} WHERE account = a.account)" for table in _FACT_TABLES
)


_SQL = {
    "account": "INSERT INTO accounts (account, name, last_event_at) VALUES (?, ?, 0) "
    "ON CONFLICT (account) DO UPDATE SET name = excluded.name",
    "credential": "INSERT INTO credentials (account, system, policy, password_changed_at, valid,"
    " checked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, system) DO UPDATE"
    " SET policy = excluded.policy,"
    " password_changed_at = excluded.password_changed_at,"
    " valid = excluded.valid, checked_at = excluded.checked_at"
    " WHERE excluded.checked_at >= credentials.checked_at",
    # Within one daily window the call count only grows, so the largest snapshot wins and an
    # older snapshot arriving late changes nothing; a newer window replaces the snapshot.
    "api_usage": "INSERT INTO api_usage (account, platform, used, daily_limit, window_start)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, platform) DO UPDATE SET"
    " used = CASE WHEN excluded.window_start > api_usage.window_start"
    " THEN excluded.used ELSE max(api_usage.used, excluded.used) END,"
    " daily_limit = excluded.daily_limit, window_start = excluded.window_start"
    " WHERE excluded.window_start >= api_usage.window_start",
    "web_visits": "INSERT INTO web_visits (account, day, page, visits) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (account, day, page) DO UPDATE SET visits = excluded.visits"
    " WHERE visits != excluded.visits",
    "sync_started": "INSERT INTO sync_runs (account, run_id, started_at) VALUES (?, ?, ?)"
    " ON CONFLICT (account, run_id) DO NOTHING",
    "sync_finished": "UPDATE sync_runs SET finished_at = ?, status = ?"
    " WHERE account = ? AND run_id = ? AND finished_at IS NULL",
    # A completed request stays completed whatever arrives later; received_at keeps the
    # earliest value seen. Both rules are order-independent, so replays change nothing.
    "privacy_optout": "INSERT INTO privacy_requests (account, request_id, received_at, status)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (account, request_id) DO UPDATE SET"
    " status = CASE WHEN privacy_requests.status = 'completed'"
    " OR excluded.status = 'completed' THEN 'completed' ELSE 'pending' END,"
    " received_at = min(privacy_requests.received_at, excluded.received_at)",
}


# The latest event of a scope wins; on a tie the later one in the batch. RETURNING names the
# scopes this batch changed, whose facts go when the change ends them.
_LIFECYCLE_SQL = (
    "INSERT INTO lifecycle (account, system, ended, at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (account, system) DO UPDATE SET ended = excluded.ended, at = excluded.at"
    " WHERE excluded.at >= lifecycle.at RETURNING ended"
)
# What ending a scope deletes: the integration's facts, or all of the account's.
_END_INTEGRATION = (
    "DELETE FROM credentials WHERE account = :account AND system = :system",
    "DELETE FROM api_usage WHERE account = :account AND platform = :system",
)
_END_ACCOUNT = (
    "DELETE FROM credentials WHERE account = :account",
    "DELETE FROM api_usage WHERE account = :account",
    "DELETE FROM web_visits WHERE account = :account",
    "DELETE FROM web_daily WHERE account = :account",
    "DELETE FROM web_accounts WHERE account = :account",
    "DELETE FROM sync_runs WHERE account = :account",
    "DELETE FROM privacy_requests WHERE account = :account",
)


def _scope(accounts: list[str] | None) -> str:
    """The condition of a facts query: every account, or those of the `accounts` parameter."""
    return "1" if accounts is None else "account IN (SELECT value FROM json_each(:accounts))"


@dataclass(frozen=True)
class _FactQuery:
    """One query of facts(): rows starting with the account, and how a row adds to its facts."""

    what: str
    sql: str  # {scope} is the account condition; :week and :today are parameters
    add: Callable[[AccountFacts, tuple[Any, ...]], None]


def _add_credential(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    _, system, policy, changed, valid, checked = row
    facts.credentials.append((system, policy, changed, bool(valid), checked))


def _add_api(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    facts.api.append(row[1:])


def _add_first_day(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    facts.web_first_day = row[1]


def _add_weeks(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    facts.web_weeks = row[1:]


def _add_pages(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    facts.web_pages_last_week = row[1]


def _add_latest_run(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    _, facts.sync_last_started_at, finished = row
    facts.sync_latest_finished = finished is not None


def _add_last_success(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    facts.sync_last_success_at = row[1]


def _add_last_finish(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    _, facts.sync_last_finished_at, facts.sync_last_duration = row


def _add_privacy(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    _, facts.privacy_pending, facts.privacy_oldest_pending_at = row


def _add_offboarded(facts: AccountFacts, row: tuple[Any, ...]) -> None:
    facts.offboarded = True


_FACT_QUERIES = (
    # First, so that a file at an older schema can go without it (SqliteFactStore.__init__).
    _FactQuery(
        "lifecycle",
        "SELECT account FROM lifecycle WHERE system = '' AND ended = 1 AND {scope}",
        _add_offboarded,
    ),
    _FactQuery(
        "credentials",
        "SELECT account, system, policy, password_changed_at, valid, checked_at"
        " FROM credentials WHERE {scope}",
        _add_credential,
    ),
    _FactQuery(
        "API usage",
        "SELECT account, platform, used, daily_limit, window_start FROM api_usage WHERE {scope}",
        _add_api,
    ),
    _FactQuery(
        "first web day", "SELECT account, first_day FROM web_accounts WHERE {scope}", _add_first_day
    ),
    _FactQuery(
        "weekly web visits",
        "SELECT account,"
        " SUM(CASE WHEN day >= :week THEN visits ELSE 0 END),"
        " SUM(CASE WHEN day >= :week - 7 AND day < :week THEN visits ELSE 0 END),"
        " SUM(CASE WHEN day >= :week - 14 AND day < :week - 7 THEN visits ELSE 0 END),"
        " SUM(CASE WHEN day >= :week - 21 AND day < :week - 14 THEN visits ELSE 0 END),"
        " SUM(CASE WHEN day < :week - 21 THEN visits ELSE 0 END)"
        " FROM web_daily WHERE day >= :week - 28 AND day < :today AND {scope} GROUP BY account",
        _add_weeks,
    ),
    # Driven by web_accounts, each count is a range read of one account's primary-key
    # prefix: about 3x faster than one grouped scan of web_visits.
    _FactQuery(
        "pages tracked",
        "SELECT account, (SELECT COUNT(DISTINCT page) FROM web_visits w"
        " WHERE w.account = web_accounts.account AND w.day >= :week AND w.day < :today"
        " AND w.visits > 0) FROM web_accounts WHERE {scope}",
        _add_pages,
    ),
    # SQLite takes the bare columns of a MAX() aggregate from the row holding the max.
    _FactQuery(
        "latest sync run",
        "SELECT account, MAX(started_at), finished_at FROM sync_runs WHERE {scope}"
        " GROUP BY account",
        _add_latest_run,
    ),
    _FactQuery(
        "last successful sync",
        "SELECT account, MAX(finished_at) FROM sync_runs WHERE status = 'success' AND {scope}"
        " GROUP BY account",
        _add_last_success,
    ),
    _FactQuery(
        "last finished sync",
        "SELECT account, MAX(finished_at), finished_at - started_at FROM sync_runs"
        " WHERE finished_at IS NOT NULL AND {scope} GROUP BY account",
        _add_last_finish,
    ),
    _FactQuery(
        "pending privacy requests",
        "SELECT account, COUNT(*), MIN(received_at) FROM privacy_requests"
        " WHERE status = 'pending' AND {scope} GROUP BY account",
        _add_privacy,
    ),
)


class SqliteFactStore:
    """The fact store in the SQLite file at `path` (see FactStore); one connection per thread,
    WAL for concurrent readers.

    `clock` gives the wall-clock time recorded as "when an event was applied".
    """

    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], float] = time.time,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        """Opens (creating or migrating) the file; `migrations` is for tests of old releases."""
        self.path = str(path)
        self.clock = clock
        # WAL + NORMAL: never corrupts; a power cut (not a crash) may lose the last batches,
        # which the platform sends again (every batch is idempotent).
        self.db = Database(
            path,
            synchronous="NORMAL",
            busy_timeout_ms=30_000,
            row_factory=None,
            pragmas=(("cache_size", -65536),),
        )
        self.migrate(migrations)
        # A file kept at an older schema (tests of upgrades) is used as the release that wrote
        # it did: without lifecycle scopes.
        self._lifecycle = self.schema_version() >= LIFECYCLE_SCHEMA
        self._queries = _FACT_QUERIES if self._lifecycle else _FACT_QUERIES[1:]

    # -- connections and schema ------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for tests of this backend: nothing else runs SQL."""
        return self.db.connection()

    def close(self) -> None:
        self.db.close()

    def schema_version(self) -> int:
        return self.db.schema_version()

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> int:
        """Applies the migrations this file lacks; returns the schema version it ends at."""
        return self.db.migrate(migrations, too_new="upgrade sysnotify or use another --db")

    # -- writing ---------------------------------------------------------------------------

    def apply(self, events: Sequence[Event]) -> ApplyResult:
        """Applies a validated batch in one transaction, or raises BatchRejected.

        The events must come from :func:`sysnotify.exporter.events.validate_events` with no
        errors; the error indices of BatchRejected are positions in `events`.
        """
        by_type = dict(Counter(event[0] for event in events))
        applied_at = self.clock()
        with self.db.write() as conn:
            facts = self._apply_lifecycle(conn, events)
            return self._apply_facts(conn, events, facts, by_type, applied_at)

    def _apply_lifecycle(
        self, conn: sqlite3.Connection, events: Sequence[Event]
    ) -> list[Event | None]:
        """Applies the batch's lifecycle events (deleting the facts of the scopes they end);
        returns the batch with None in place of every event not to apply as a fact: the
        lifecycle events, and the facts they leave out (sysnotify.exporter.lifecycle)."""
        for event in events:
            if event[0] in LIFECYCLE and self._lifecycle:
                account, system = lifecycle_scope(event)
                ended = LIFECYCLE[event[0]]
                changed = conn.execute(_LIFECYCLE_SQL, (account, system, ended, event[-1]))
                if changed.fetchall() and ended:
                    for sql in _END_ACCOUNT if system == ACCOUNT_SCOPE else _END_INTEGRATION:
                        conn.execute(sql, {"account": account, "system": system})
        scopes = self._scopes(conn, {event[1] for event in events}) if self._lifecycle else {}
        if not scopes:
            return [None if event[0] in LIFECYCLE else event for event in events]
        kept: list[Event | None] = []
        started: set[tuple[str, str]] = set()
        for event in events:
            if is_dropped(event, scopes) or self._run_unknown(conn, event, scopes, started):
                kept.append(None)
                continue
            if event[0] == "sync_started":
                started.add((event[1], event[2]))
            kept.append(None if event[0] in LIFECYCLE else event)
        return kept

    @staticmethod
    def _scopes(
        conn: sqlite3.Connection, accounts: Iterable[str]
    ) -> dict[tuple[str, str], ScopeState]:
        rows = conn.execute(
            "SELECT account, system, ended, at FROM lifecycle"
            " WHERE account IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(accounts)),),
        ).fetchall()
        return {
            (account, system): ScopeState(bool(ended), at) for account, system, ended, at in rows
        }

    @staticmethod
    def _run_unknown(
        conn: sqlite3.Connection,
        event: Event,
        scopes: dict[tuple[str, str], ScopeState],
        started: set[tuple[str, str]],
    ) -> bool:
        """A sync_finished of an account that started again, for a run started before (so
        dropped): the run is unknown, and the fact goes with it instead of failing the batch."""
        if event[0] != "sync_finished" or (event[1], ACCOUNT_SCOPE) not in scopes:
            return False
        key = (event[1], event[2])
        return (
            key not in started
            and not conn.execute(
                "SELECT 1 FROM sync_runs WHERE account = ? AND run_id = ?", key
            ).fetchone()
        )

    def _apply_facts(
        self,
        conn: sqlite3.Connection,
        events: Sequence[Event],
        facts: Sequence[Event | None],
        by_type: dict[str, int],
        applied_at: float,
    ) -> ApplyResult:
        groups: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in _SQL}
        first_days: dict[str, int] = {}
        for event in facts:
            if event is None:
                continue
            kind = event[0]
            if kind == "sync_finished":
                _, account, run_id, at, status = event
                groups[kind].append((at, status, account, run_id))
            else:
                groups[kind].append(event[1:])
                if kind == "web_visits":
                    day = event[2]
                    seen = first_days.get(event[1])
                    if seen is None or day < seen:
                        first_days[event[1]] = day
        # Every account the batch names changed (a lifecycle event or a dropped fact too):
        # the /metrics cache recomputes them.
        accounts = frozenset(event[1] for event in events)
        if groups["sync_finished"]:
            errors = self._check_sync(conn, facts)
            if errors:
                raise BatchRejected(errors)
        conn.executemany(
            "INSERT INTO accounts (account, last_event_at) VALUES (?, ?) ON CONFLICT (account)"
            " DO UPDATE SET last_event_at = max(last_event_at, excluded.last_event_at)",
            [(account, applied_at) for account in accounts],
        )
        for kind, rows in groups.items():
            if rows:
                conn.executemany(_SQL[kind], rows)
        if groups["web_visits"]:
            errors = self._check_daily_visits(conn, facts)
            if errors:
                raise BatchRejected(errors)
        if first_days:
            conn.executemany(
                "INSERT INTO web_accounts (account, first_day) VALUES (?, ?)"
                " ON CONFLICT (account) DO UPDATE SET first_day = min(first_day,"
                " excluded.first_day) WHERE excluded.first_day < first_day",
                list(first_days.items()),
            )
        version = conn.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'version' RETURNING value"
        ).fetchone()[0]
        if events:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_event_at'", (applied_at,))
        return ApplyResult(
            version=int(version), applied=len(events), by_type=by_type, accounts=accounts
        )

    @staticmethod
    def _check_sync(conn: sqlite3.Connection, events: Sequence[Event | None]) -> list[EventError]:
        """A sync_finished needs its sync_started, in the store or earlier in the batch."""
        errors: list[EventError] = []
        starts: dict[tuple[str, str], float] = {}
        lookup = "SELECT started_at FROM sync_runs WHERE account = ? AND run_id = ?"
        for index, event in enumerate(events):
            if event is None:
                continue
            kind = event[0]
            if kind == "sync_started":
                key = (event[1], event[2])
                if key not in starts:
                    row = conn.execute(lookup, key).fetchone()
                    starts[key] = row[0] if row else event[3]
            elif kind == "sync_finished":
                key = (event[1], event[2])
                started = starts.get(key)
                if started is None:
                    row = conn.execute(lookup, key).fetchone()
                    if row is None:
                        errors.append(
                            EventError(
                                index,
                                "run_id",
                                f"no sync_started for run {event[2][:80]!r} of account "
                                f"{event[1][:80]!r}, neither in the store nor earlier in this "
                                "batch",
                            )
                        )
                        continue
                    started = starts[key] = row[0]
                if event[3] < started:
                    errors.append(EventError(index, "at", "is before the run's sync_started"))
        return errors

    @staticmethod
    def _check_daily_visits(
        conn: sqlite3.Connection, events: Sequence[Event | None]
    ) -> list[EventError]:
        """An account's visits of one day, all pages together (web_daily, now that the batch's
        pages are in), stay within MAX_DAILY_VISITS; the last event of a day over it is named."""
        last: dict[tuple[str, int], int] = {}
        for index, event in enumerate(events):
            if event is not None and event[0] == "web_visits":
                last[(event[1], event[2])] = index
        over = conn.execute(
            "SELECT d.account, d.day FROM json_each(?) j JOIN web_daily d"
            " ON d.account = json_extract(j.value, '$[0]')"
            " AND d.day = json_extract(j.value, '$[1]') WHERE d.visits > ?",
            (json.dumps(list(last)), MAX_DAILY_VISITS),
        ).fetchall()
        return [
            EventError(
                last[(account, day)],
                "visits",
                f"brings the visits of account {account[:80]!r} on {day_to_iso(day)}, all pages "
                f"together, over the maximum of {MAX_DAILY_VISITS} for one account on one day",
            )
            for account, day in sorted(over)
        ]

    # -- retention -------------------------------------------------------------------------
    # Each call is one short write transaction of at most `limit` rows, found through an
    # index or read before the write lock is taken; see sysnotify.exporter.retention.

    def prune_web_visits(self, before_day: int, limit: int) -> int:
        """Deletes up to `limit` per-page visits of days before `before_day`, oldest days first,
        and the daily totals of the days it empties; returns the rows deleted (0: none left).

        Windows never look back more than 35 days, and each account's first web day is kept
        apart (web_accounts), so this changes no metric.
        """
        days = (
            self.connection()
            .execute(
                "SELECT account, day FROM web_daily WHERE day < ? ORDER BY day LIMIT ?",
                (before_day, limit),
            )
            .fetchall()
        )
        visits = totals = 0
        with self.db.write() as conn:
            for account, day in days:
                budget = limit - visits  # at least 1: the loop stops when it is used up
                deleted = conn.execute(
                    "DELETE FROM web_visits WHERE (account, day, page) IN (SELECT account, day,"
                    " page FROM web_visits WHERE account = ? AND day = ? LIMIT ?)",
                    (account, day, budget),
                ).rowcount
                visits += deleted
                if deleted == budget:
                    break  # the day may hold more; the next call goes on with it
                totals += conn.execute(
                    "DELETE FROM web_daily WHERE account = ? AND day = ?", (account, day)
                ).rowcount
        return visits + totals

    def prune_privacy_requests(self, received_before: float, limit: int) -> int:
        """Deletes up to `limit` handled (completed) privacy requests received before
        `received_before`; returns how many. Pending requests are never deleted."""
        with self.db.write() as conn:
            return conn.execute(
                "DELETE FROM privacy_requests WHERE (account, request_id) IN (SELECT account,"
                " request_id FROM privacy_requests WHERE status = 'completed'"
                " AND received_at < ? ORDER BY received_at LIMIT ?)",
                (received_before, limit),
            ).rowcount

    def prune_offboarded_accounts(self, offboarded_before: float, limit: int) -> int:
        """Deletes up to `limit` accounts offboarded before `offboarded_before` (the last
        series they kept, their last event time, goes with them); returns how many. Their
        lifecycle rows stay, so that a late fact never brings such an account back."""
        with self.db.write() as conn:
            return conn.execute(
                "DELETE FROM accounts WHERE account IN (SELECT l.account FROM lifecycle AS l"
                " JOIN accounts AS a ON a.account = l.account"
                " WHERE l.system = '' AND l.ended = 1 AND l.at < ? LIMIT ?)",
                (offboarded_before, limit),
            ).rowcount

    def prune_sync_runs(self, started_before: float, limit: int) -> int:
        """Deletes up to `limit` sync runs started before `started_before` that none of the
        sync metrics shows; returns how many.

        The runs are chosen outside the write lock; each is deleted only if it is unchanged
        since (a run that finished meanwhile may have become the latest finished one). A run
        unchanged stays prunable: the runs the metrics show are never deleted, and newer runs
        only push it further back.
        """
        runs = (
            self.connection()
            .execute(
                "SELECT account, run_id, finished_at, status FROM sync_runs AS r"
                f" WHERE started_at < ? AND {_PRUNABLE_RUN} ORDER BY started_at LIMIT ?",
                (started_before, limit),
            )
            .fetchall()
        )
        if not runs:
            return 0
        with self.db.write() as conn:
            return conn.executemany(
                "DELETE FROM sync_runs WHERE account = ? AND run_id = ?"
                " AND finished_at IS ? AND status IS ?",
                runs,
            ).rowcount

    def prune_idle_accounts(self, idle_since: float, limit: int) -> int:
        """Forgets up to `limit` accounts without any fact and without an event since
        `idle_since` (their name and first web day too); returns how many.

        The version counter moves when any is forgotten: its series leave /metrics.
        """
        accounts = (
            self.connection()
            .execute(
                f"SELECT account FROM accounts AS a WHERE last_event_at < ? AND {_NO_FACTS}"
                " LIMIT ?",
                (idle_since, limit),
            )
            .fetchall()
        )
        if not accounts:
            return 0
        removed = 0
        with self.db.write() as conn:
            for (account,) in accounts:
                # Checked again under the lock: an event may have arrived meanwhile.
                if conn.execute(
                    f"DELETE FROM accounts AS a WHERE account = ? AND last_event_at < ?"
                    f" AND {_NO_FACTS}",
                    (account, idle_since),
                ).rowcount:
                    conn.execute("DELETE FROM web_accounts WHERE account = ?", (account,))
                    conn.execute("DELETE FROM web_daily WHERE account = ?", (account,))
                    removed += 1
            if removed:
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")
        return removed

    # -- reading ---------------------------------------------------------------------------

    def version(self) -> int:
        """The number of batches applied to this file so far."""
        row = self.connection().execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return int(row[0])

    def last_event_at(self) -> float | None:
        row = (
            self.connection()
            .execute("SELECT value FROM meta WHERE key = 'last_event_at'")
            .fetchone()
        )
        return None if row[0] is None else float(row[0])

    def account_count(self) -> int:
        return int(self.connection().execute("SELECT COUNT(*) FROM accounts").fetchone()[0])

    def facts(self, today: int, accounts: Iterable[str] | None = None) -> dict[str, AccountFacts]:
        """Facts of every account (or of `accounts` only), with web windows ending before `today`.

        `today` is the current UTC day (days since the epoch): the last week is days
        today-7 .. today-1, the four weeks before it today-35 .. today-8.

        Each query reads every account in scope at once. When one fails (an integer overflow
        in one account's sum, a damaged page of the file), it is read again one account at a
        time, and only the accounts whose reads still fail get a `problem`.
        """
        scope = None if accounts is None else sorted(set(accounts))
        params = {"week": today - 7, "today": today}
        result: dict[str, AccountFacts] = {}
        # One consistent snapshot across the queries below.
        with self.db.read() as conn:
            sql = "SELECT account, name, last_event_at FROM accounts WHERE "
            for account, name, last_event_at in conn.execute(
                sql + _scope(scope), {"accounts": json.dumps(scope)}
            ):
                result[account] = AccountFacts(account, name, last_event_at)
            for query in self._queries:
                for row in self._read(conn, query, scope, params, result):
                    facts = result.get(row[0])
                    if facts is None:  # cannot happen: every event upserts its account
                        facts = result[row[0]] = AccountFacts(row[0])
                    query.add(facts, row)
        return result

    @staticmethod
    def _read(
        conn: sqlite3.Connection,
        query: _FactQuery,
        scope: list[str] | None,
        params: dict[str, Any],
        result: dict[str, AccountFacts],
    ) -> list[tuple[Any, ...]]:
        """The rows of `query` for the accounts in scope that can be read; see facts()."""
        try:
            return conn.execute(
                query.sql.format(scope=_scope(scope)), {**params, "accounts": json.dumps(scope)}
            ).fetchall()
        except sqlite3.Error:
            pass
        rows: list[tuple[Any, ...]] = []
        sql = query.sql.format(scope=_scope([]))
        for account in list(result) if scope is None else scope:
            try:
                rows += conn.execute(sql, {**params, "accounts": json.dumps([account])})
            except sqlite3.Error as error:
                facts = result.setdefault(account, AccountFacts(account))
                facts.problem = f"reading its {query.what}: {error}"
        return rows

    def check(self) -> None:
        """Raises StoreError when the store cannot be read (for /healthz)."""
        try:
            self.connection().execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        except sqlite3.Error as error:
            raise StoreError(f"read store {self.path}: {error}") from error
