"""The exporter's fact store: what the rest of the exporter reads and writes, behind one interface.

The store keeps facts, not metric values: per-page daily visit counts, sync runs, privacy
requests, the latest credential check and API-usage snapshot. Metric values are computed from
them at collection time (:mod:`sysnotify.exporter.series`), so windows such as "the last 7
days" move with the clock and a Prometheus restart loses nothing.

What every backend promises: a batch is applied whole or not at all, and applying the same
batch again leaves the facts as they were. A version counter goes up by one with each applied
batch, so any process sharing the store can tell whether the facts changed since it last
looked (the /metrics cache relies on it).

`open_fact_store(location)` in :mod:`sysnotify.exporter.store.backends` opens the backend a
location names; it lives there so that this module never imports a backend. A backend is one
module that owns the schema and every query on it (SQLite:
:mod:`sysnotify.exporter.store.sqlite`); nothing else in the exporter runs SQL. Every backend
failure is a StoreError: the ingest API answers 503, /healthz and /metrics report it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sysnotify.exporter.events import Event, EventError
from sysnotify.sqlite import StoreError

__all__ = [
    "DAY",
    "AccountFacts",
    "ApplyResult",
    "BatchRejected",
    "FactStore",
    "StoreError",
]

DAY = 86400


class BatchRejected(Exception):
    """A batch failed the checks that need the store; nothing of it was applied."""

    def __init__(self, errors: Sequence[EventError]) -> None:
        super().__init__(f"{len(errors)} invalid event(s)")
        self.errors = list(errors)


@dataclass(frozen=True)
class ApplyResult:
    version: int
    applied: int
    by_type: dict[str, int]
    accounts: frozenset[str]


@dataclass(slots=True)
class AccountFacts:
    """What the store knows about one account, as of one instant (see :meth:`FactStore.facts`)."""

    account: str
    name: str | None = None
    last_event_at: float | None = None
    # (system, policy, password_changed_at, valid, checked_at)
    credentials: list[tuple[str, str, float | None, bool, float]] = field(default_factory=list)
    # (platform, used, limit, window_start)
    api: list[tuple[str, int, int, float]] = field(default_factory=list)
    web_first_day: int | None = None
    # Visit totals of the last week, then of the four weeks before it (most recent first).
    web_weeks: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    web_pages_last_week: int = 0
    sync_last_started_at: float | None = None
    sync_latest_finished: bool = False  # whether the latest started run has finished
    sync_last_success_at: float | None = None
    sync_last_finished_at: float | None = None
    sync_last_duration: float | None = None
    privacy_pending: int = 0
    privacy_oldest_pending_at: float | None = None
    # The account left the platform (account_offboarded): none of its series are published,
    # only the exporter's own last-event time, until it ages out (sysnotify.exporter.lifecycle).
    offboarded: bool = False
    # Why some of this account's facts could not be read (the rest of it is then incomplete);
    # None when all of them were. Every other account is read all the same.
    problem: str | None = None


class FactStore(Protocol):
    """The facts of every account, shared by the processes that open the same store.

    Safe to use from several threads. Every method raises StoreError when the backend fails.
    """

    # -- writing ---------------------------------------------------------------------------

    def apply(self, events: Sequence[Event]) -> ApplyResult:
        """Applies a validated batch as a whole, or raises BatchRejected.

        The events must come from :func:`sysnotify.exporter.events.validate_events` with no
        errors; the error indices of BatchRejected are positions in `events`. A
        ``sync_finished`` needs its ``sync_started``, in the store or earlier in the batch; an
        account's visits of one day, all pages together, must stay within
        :data:`sysnotify.exporter.events.MAX_DAILY_VISITS`. Lifecycle events are applied
        first: facts they leave out (:mod:`sysnotify.exporter.lifecycle`) are accepted and
        dropped.
        """
        ...

    # -- retention (sysnotify.exporter.retention calls these until they return 0) -----------

    def prune_web_visits(self, before_day: int, limit: int) -> int:
        """Deletes up to `limit` per-page visits of days before `before_day` and the daily
        totals of the days it empties, in one short transaction; returns the rows deleted.

        Windows never look back more than 35 days, and each account's first web day is kept
        apart, so pruning older facts changes no metric.
        """
        ...

    def prune_privacy_requests(self, received_before: float, limit: int) -> int:
        """Deletes up to `limit` handled privacy requests received before `received_before`;
        returns how many. Pending requests are never deleted."""
        ...

    def prune_offboarded_accounts(self, offboarded_before: float, limit: int) -> int:
        """Deletes up to `limit` accounts offboarded before `offboarded_before`; returns how
        many (their lifecycle rows stay)."""
        ...

    def prune_sync_runs(self, started_before: float, limit: int) -> int:
        """Deletes up to `limit` sync runs started before `started_before`, except each
        account's latest started, latest successful and latest finished run (what the sync
        metrics show); returns how many."""
        ...

    def prune_idle_accounts(self, idle_since: float, limit: int) -> int:
        """Forgets up to `limit` accounts without any fact (credential, API usage, web visits,
        sync run, privacy request) and without an event since `idle_since`; returns how many.
        The version counter moves when any is forgotten."""
        ...

    # -- reading ---------------------------------------------------------------------------

    def version(self) -> int:
        """The number of batches applied to this store so far."""
        ...

    def last_event_at(self) -> float | None:
        """When the last non-empty batch was applied (None before the first)."""
        ...

    def account_count(self) -> int: ...

    def facts(self, today: int, accounts: Iterable[str] | None = None) -> dict[str, AccountFacts]:
        """Facts of every account (or of `accounts` only), with web windows ending before `today`.

        `today` is the current UTC day (days since the epoch): the last week is days
        today-7 .. today-1, the four weeks before it today-35 .. today-8. All of it is one
        consistent snapshot. One account's facts that cannot be read (a stored value no
        release accepts any more) set that account's `problem` and leave the others alone.
        """
        ...

    def check(self) -> None:
        """Raises StoreError when the store cannot be read (for /healthz)."""
        ...

    def close(self) -> None:
        """Releases what this process holds open (the connections of every thread)."""
        ...
