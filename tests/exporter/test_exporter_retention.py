"""Retention: old sync runs and idle accounts without facts are pruned, in short transactions,
once a day in the background; what the metrics show stays."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.exposition import ExpositionCache
from sysnotify.exporter.retention import Pruned, prune
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store import DAY
from sysnotify.exporter.store.sqlite import SqliteFactStore
from sysnotify.exporter.web.state import exporter_of
from tests.support.exporter import (
    AUTH,
    NOW,
    NOW_DT,
    Clock,
    account,
    credential,
    privacy,
    sync_finished,
    sync_started,
    ts,
    validated,
    web_visits,
)

CONFIG = ExporterConfig()  # retention_days 42, sync runs 42, idle accounts 90


def at(days: float) -> str:
    """RFC 3339 time `days` days from NOW (negative: before)."""
    return ts(NOW_DT + timedelta(days=days))


def run(acc: str, day: int, status: str | None = "success") -> list[dict[str, Any]]:
    """A sync run of `acc` starting `day` days from NOW, lasting an hour (None: running)."""
    events = [sync_started(acc, f"{acc}-{day}", at=at(day))]
    if status is not None:
        events.append(sync_finished(acc, f"{acc}-{day}", at=at(day + 1 / 24), status=status))
    return events


def runs_of(store: SqliteFactStore, acc: str) -> list[str]:
    rows = store.connection().execute(
        "SELECT run_id FROM sync_runs WHERE account = ? ORDER BY started_at", (acc,)
    )
    return [row[0] for row in rows]


def accounts(store: SqliteFactStore) -> list[str]:
    rows = store.connection().execute("SELECT account FROM accounts ORDER BY account")
    return [row[0] for row in rows]


def no_pause(seconds: float) -> None:
    pass


def test_sync_runs_are_pruned_but_the_ones_the_metrics_show(store: SqliteFactStore) -> None:
    events = []
    # Daily runs for 60 days, one failure among the old ones, today's still running.
    for day in range(-60, 0):
        events += run("daily", day, "failed" if day == -50 else "success")
    events += run("daily", 0, None)
    # Quiet for months: its three shown runs are all old, and different.
    events += run("quiet", -100) + run("quiet", -99, "failed") + run("quiet", -98, None)
    events += run("twice", -80) + run("twice", -79)
    store.apply(validated(*events))
    clock = Clock()
    before = ExpositionCache(store, clock).render()

    assert prune(store, CONFIG, NOW, no_pause).sync_runs == 18 + 1
    assert runs_of(store, "daily") == [f"daily-{day}" for day in range(-42, 1)]
    assert runs_of(store, "quiet") == ["quiet--100", "quiet--99", "quiet--98"]
    assert runs_of(store, "twice") == ["twice--79"]
    assert ExpositionCache(store, clock).render() == before
    assert prune(store, CONFIG, NOW, no_pause) == Pruned()


def test_a_run_finishing_while_the_prune_chose_it_is_kept(
    store: SqliteFactStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old run still open when the prune reads it, finished (by another process) before
    the prune deletes: it became the latest finished run, which the metrics show."""
    store.apply(validated(*run("acc-1", -60, None), *run("acc-1", -1, None)))
    other = SqliteFactStore(store.path, clock=clock)
    write = store.db.write

    @contextmanager
    def finish_first() -> Iterator[Any]:
        other.apply(validated(sync_finished("acc-1", "acc-1--60", at=at(-59))))
        with write() as conn:
            yield conn

    monkeypatch.setattr(store.db, "write", finish_first)
    assert store.prune_sync_runs(NOW - 42 * DAY, 100) == 0
    assert runs_of(store, "acc-1") == ["acc-1--60", "acc-1--1"]
    other.close()


def test_idle_accounts_without_facts_are_forgotten_and_leave_the_metrics(
    store: SqliteFactStore, clock: Clock
) -> None:
    clock.now = NOW - 100 * DAY
    store.apply(
        validated(
            account("named-only"),
            account("web-only"),
            web_visits("web-only", offset=-100),
            account("with-credential"),
            credential("with-credential", checked_at=at(-100)),
            account("privacy-pending"),
            privacy("privacy-pending", received_at=at(-100)),
        )
    )
    clock.now = NOW - 10 * DAY
    store.apply(validated(account("recent")))
    clock.now = NOW
    cache = ExpositionCache(store, clock)
    assert b'account="named-only"' in cache.render()

    pruned = prune(store, CONFIG, NOW, no_pause)
    assert (pruned.web_visits, pruned.idle_accounts) == (2, 2)
    assert accounts(store) == ["privacy-pending", "recent", "with-credential"]
    text = cache.render()
    assert b'account="named-only"' not in text and b'account="web-only"' not in text
    assert b'account="recent"' in text
    conn = store.connection()
    assert conn.execute("SELECT count(*) FROM web_accounts").fetchone()[0] == 0


def test_an_account_named_while_the_prune_chose_it_is_kept(
    store: SqliteFactStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.now = NOW - 100 * DAY
    store.apply(validated(account("acc-1")))
    clock.now = NOW
    other = SqliteFactStore(store.path, clock=clock)
    write = store.db.write

    @contextmanager
    def named_first() -> Iterator[Any]:
        other.apply(validated(account("acc-1", name="Acme Corp (renamed)")))
        with write() as conn:
            yield conn

    monkeypatch.setattr(store.db, "write", named_first)
    assert store.prune_idle_accounts(NOW - 90 * DAY, 100) == 0
    assert accounts(store) == ["acc-1"]
    other.close()


def test_web_visits_go_in_transactions_of_at_most_the_batch(
    store: SqliteFactStore, clock: Clock
) -> None:
    store.apply(
        validated(
            *[
                web_visits(offset=offset, page=f"/{page}")
                for offset in (-50, -49, -48)
                for page in range(30)
            ],
            web_visits(offset=-1),
        )
    )
    before = ExpositionCache(store, clock).render()
    cutoff = utc_day(NOW) - 42
    # 40 visits a call; a day's total goes with the day's last visits.
    assert [store.prune_web_visits(cutoff, 40) for _ in range(4)] == [41, 41, 11, 0]
    assert ExpositionCache(store, clock).render() == before


def test_the_days_first_batch_starts_the_prune_without_waiting_for_it(
    app: Any, store: SqliteFactStore, clock: Clock
) -> None:
    clock.now = NOW - 100 * DAY
    store.apply(validated(account("gone"), *run("acc-1", -100), *run("acc-1", -99)))
    clock.now = NOW
    client = app.test_client()
    assert b'account="gone"' in client.get("/metrics").data

    answer = client.post("/api/v1/events", json={"events": run("acc-1", -1)}, headers=AUTH)
    assert answer.status_code == 200
    deadline = time.monotonic() + 20
    while "gone" in accounts(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert accounts(store) == ["acc-1"]
    assert runs_of(store, "acc-1") == ["acc-1--1"]
    assert b'account="gone"' not in client.get("/metrics").data
    pruning = exporter_of(app).pruning
    assert pruning is not None
    pruning.join()
