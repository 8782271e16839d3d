"""The SQLite fact store: migrations, whole-or-nothing batches, idempotent replays, pruning."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sysnotify.exporter.collector import StoreCollector
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store import BatchRejected, StoreError
from sysnotify.exporter.store.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteFactStore
from tests.support.exporter import (
    FACT_TABLES,
    NOW,
    account,
    ago,
    api_usage,
    credential,
    ordinary,
    privacy,
    sync_finished,
    sync_started,
    validated,
    web_visits,
)


def dump(store: SqliteFactStore, skip_last_event: bool = True) -> dict[str, list[tuple]]:
    """Every fact table's rows; last_event_at (when an event was applied) left out."""
    conn = store.connection()
    rows = {}
    for table in FACT_TABLES:
        columns = [
            r[1]
            for r in conn.execute(f"PRAGMA table_info({table})")
            if not (skip_last_event and r[1] == "last_event_at")
        ]
        rows[table] = conn.execute(
            f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns)}"
        ).fetchall()
    return rows


def exposition(store: SqliteFactStore, clock) -> bytes:
    return b"\n".join(
        line for line in ordinary(store, clock).splitlines() if b"last_event_timestamp" not in line
    )


MIXED_BATCH = [
    account(),
    credential(),
    credential(system="marketo", policy="no_rotation", valid=False),
    api_usage(),
    api_usage(used=50),
    web_visits(offset=-3),
    web_visits(offset=-3, visits=4),
    web_visits(offset=-20, page="/pricing"),
    sync_started(run="r1", at=ago(hours=5)),
    sync_finished(run="r1", at=ago(hours=4)),
    sync_started(run="r2", at=ago(hours=1)),
    privacy(request="q1"),
    privacy(request="q2", status="completed"),
]


def test_a_new_file_gets_the_current_schema_in_wal_mode(tmp_path: Path):
    store = SqliteFactStore(tmp_path / "new.db")
    assert store.schema_version() == SCHEMA_VERSION
    assert store.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.version() == 0
    store.close()


def test_an_older_file_is_migrated_and_keeps_its_facts(tmp_path: Path, clock):
    path = tmp_path / "old.db"
    # A release with migration 1 only:
    old = SqliteFactStore(path, clock=clock, migrations=MIGRATIONS[:1])
    assert old.schema_version() == 1
    old.connection().executemany(
        "INSERT INTO web_visits (account, day, page, visits) VALUES (?, ?, ?, ?)",
        [("acc-1", utc_day(NOW) - d, "/", 10) for d in range(1, 36)],
    )
    old.connection().execute("INSERT INTO web_accounts VALUES ('acc-1', ?)", (utc_day(NOW) - 35,))
    old.connection().execute("INSERT INTO accounts VALUES ('acc-1', 'Acme', 0)")
    old.close()

    store = SqliteFactStore(path, clock=clock)  # this release: migrates to the newest version
    assert store.schema_version() == SCHEMA_VERSION
    assert (
        store.connection()
        .execute("SELECT SUM(visits) FROM web_daily WHERE account = 'acc-1'")
        .fetchone()[0]
        == 350
    )
    registry = CollectorRegistry()
    StoreCollector(store, clock, registry=registry)
    assert registry.get_sample_value("abm_web_visits_last_week", {"account": "acc-1"}) == 70
    assert registry.get_sample_value("abm_web_visits_weekly_average", {"account": "acc-1"}) == 70
    # The triggers added by the migration keep totals right for new facts.
    store.apply(validated(web_visits(offset=-1, visits=30)))
    assert registry.get_sample_value("abm_web_visits_last_week", {"account": "acc-1"}) == 90
    store.close()


def test_an_upgrade_removes_the_out_of_bounds_facts_older_releases_stored(tmp_path: Path, clock):
    path = tmp_path / "old.db"
    # A release before the bounds, which stored whatever its API accepted:
    old = SqliteFactStore(path, clock=clock, migrations=[m for m in MIGRATIONS if m.version < 5])
    old.apply(validated(*MIXED_BATCH, *[web_visits("acc-2", offset=-d) for d in range(1, 36)]))
    good = dump(old)
    year_2999 = 32503680000.0
    yesterday = utc_day(NOW) - 1
    conn = old.connection()  # the rows that release's API accepted (its triggers run)
    for sql, args in [
        ("INSERT INTO web_visits VALUES (?, ?, ?, ?)", ("acc-2", yesterday, "/a", 2**62)),
        ("INSERT INTO web_visits VALUES (?, ?, ?, ?)", ("acc-2", yesterday, "/b", 2**62)),
        (
            "INSERT INTO credentials VALUES (?, 'hubspot', 'no_rotation', NULL, 0, ?)",
            ("acc-2", year_2999),
        ),
        ("INSERT INTO api_usage VALUES (?, 'pardot', ?, ?, 10)", ("acc-2", NOW, 2**62)),
        ("INSERT INTO api_usage VALUES (?, 'marketo', ?, 5, 10)", ("acc-2", year_2999)),
        ("INSERT INTO sync_runs VALUES (?, 'future', ?, NULL, NULL)", ("acc-2", year_2999)),
        ("INSERT INTO privacy_requests VALUES (?, 'future', ?, 'pending')", ("acc-2", year_2999)),
    ]:
        conn.execute(sql, args)
    assert conn.execute(  # the day's total overflowed into an inexact float
        "SELECT typeof(visits) FROM web_daily WHERE account = 'acc-2' AND day = ?", (yesterday,)
    ).fetchone() == ("real",)
    registry = CollectorRegistry()
    StoreCollector(old, clock, registry=registry)
    assert registry.get_sample_value("sysnotify_exporter_accounts_skipped") == 1
    old.close()

    store = SqliteFactStore(path, clock=clock)
    assert dump(store) == good
    registry = CollectorRegistry()
    StoreCollector(store, clock, registry=registry)
    assert registry.get_sample_value("sysnotify_exporter_accounts_skipped") == 0
    assert registry.get_sample_value("abm_web_visits_last_week", {"account": "acc-2"}) == 70
    # The credential is no longer frozen by a check dated 2999: today's check wins.
    store.apply(validated(credential("acc-2", system="hubspot", policy="no_rotation")))
    assert (
        registry.get_sample_value("abm_credential_valid", {"account": "acc-2", "system": "hubspot"})
        == 1
    )
    store.close()


def test_a_file_from_a_newer_release_is_refused(tmp_path: Path):
    path = tmp_path / "future.db"
    SqliteFactStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this release"):
        SqliteFactStore(path)


def test_reopening_does_not_migrate_again(tmp_path: Path):
    SqliteFactStore(tmp_path / "x.db").close()
    store = SqliteFactStore(tmp_path / "x.db")
    assert store.schema_version() == SCHEMA_VERSION
    store.close()


def test_replaying_a_batch_leaves_the_same_state(store, clock):
    events = validated(*MIXED_BATCH)
    store.apply(events)
    before, text = dump(store), exposition(store, clock)
    for _ in range(2):
        store.apply(events)
    assert dump(store) == before
    assert exposition(store, clock) == text


def test_replaying_batches_out_of_order_converges(store, clock, tmp_path):
    first = validated(*MIXED_BATCH[:7])
    second = validated(*MIXED_BATCH[7:], credential(valid=False, checked_at=ago(minutes=1)))
    store.apply(first)
    store.apply(second)
    expected = dump(store)
    other = SqliteFactStore(tmp_path / "other.db", clock=clock)
    other.apply(first)
    other.apply(second)
    other.apply(first)  # a retried older batch
    assert dump(other) == expected
    other.close()


def test_a_rejected_batch_applies_nothing(store):
    store.apply(validated(account()))
    before, version = dump(store, skip_last_event=False), store.version()
    bad = validated(
        account("acc-2"),
        web_visits("acc-2"),
        credential("acc-2"),
        sync_finished("acc-2", run="never-started"),
    )
    with pytest.raises(BatchRejected) as rejected:
        store.apply(bad)
    assert [(e.index, e.field) for e in rejected.value.errors] == [(3, "run_id")]
    assert dump(store, skip_last_event=False) == before
    assert store.version() == version


def test_a_finish_needs_a_start_in_the_store_or_earlier_in_the_batch(store):
    store.apply(validated(sync_started(run="stored")))
    store.apply(validated(sync_finished(run="stored")))
    store.apply(validated(sync_started(run="same-batch"), sync_finished(run="same-batch")))
    with pytest.raises(BatchRejected) as rejected:
        store.apply(validated(sync_finished(run="later"), sync_started(run="later")))
    assert rejected.value.errors[0].index == 0
    with pytest.raises(BatchRejected):  # another account's run does not count
        store.apply(validated(sync_finished("acc-2", run="stored")))


def test_a_finish_before_its_start_is_rejected(store):
    store.apply(validated(sync_started(at=ago(hours=1))))
    with pytest.raises(BatchRejected) as rejected:
        store.apply(validated(sync_finished(at=ago(hours=2))))
    assert rejected.value.errors[0].field == "at"


def test_each_applied_batch_moves_the_version(store):
    assert store.apply(validated(account())).version == 1
    assert store.apply(validated(account())).version == 2
    assert store.apply([]).version == 3
    assert store.version() == 3


def test_apply_reports_counts_and_accounts(store):
    result = store.apply(validated(account("a"), account("b"), web_visits("b")))
    assert result.applied == 3
    assert result.by_type == {"account": 2, "web_visits": 1}
    assert result.accounts == {"a", "b"}


def test_prune_drops_old_facts_without_changing_metrics(store, clock):
    store.apply(
        validated(
            *[web_visits(offset=o, visits=5) for o in range(-60, 0)],
            privacy(request="old", received_at=ago(days=50), status="completed"),
            privacy(request="open", received_at=ago(days=50)),
        )
    )
    text = exposition(store, clock)
    cutoff = utc_day(NOW) - 42
    assert store.prune_web_visits(cutoff, 1000) == 18 * 2  # visits and daily totals
    assert store.prune_web_visits(cutoff, 1000) == 0
    assert store.prune_privacy_requests(cutoff * 86400, 1000) == 1
    assert exposition(store, clock) == text
    conn = store.connection()
    assert conn.execute("SELECT MIN(day) FROM web_visits").fetchone()[0] == utc_day(NOW) - 42
    assert conn.execute("SELECT COUNT(*) FROM privacy_requests").fetchone()[0] == 1


def test_concurrent_readers_see_whole_batches(store, tmp_path):
    reader = SqliteFactStore(store.path)
    store.apply(validated(*[web_visits(offset=-1, page=f"/{i}") for i in range(100)]))
    facts = reader.facts(utc_day(NOW))
    assert facts["acc-1"].web_pages_last_week == 100
    reader.close()
