"""The cached exposition equals the ordinary collector path byte for byte, and is rebuilt when
facts change (in this process or another) and when time crosses a boundary."""

from __future__ import annotations

import sqlite3

import pytest

from sysnotify.exporter.exposition import ExpositionCache
from sysnotify.exporter.store import DAY, FactStore
from sysnotify.exporter.store.backends import open_fact_store
from tests.support.exporter import (
    NOW,
    NOW_DT,
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


@pytest.fixture
def cache(store, clock) -> ExpositionCache:
    return ExpositionCache(store, clock)


def apply_noted(store: FactStore, cache: ExpositionCache, *events: dict) -> None:
    cache.note_applied(store.apply(validated(*events)))


RICH = [
    account(name='Quote " back\\slash\nnewline ünïcödé'),
    account("acc-2", name="Beta"),
    credential(),
    credential(system="eloqua", policy="never_expire", valid=False),
    credential("acc-2", system="pardot", policy="no_rotation", password_changed_at=None),
    api_usage(),
    api_usage(platform="marketo", window_start=ago(hours=30)),
    *[web_visits(offset=o, page=f"/p{o % 3}", visits=o % 7) for o in range(-36, 1)],
    sync_started(run="r1", at=ago(hours=26)),
    sync_finished(run="r1", at=ago(hours=25)),
    sync_started(run="r2", at=ago(hours=1)),
    privacy(),
    privacy("acc-3", request="z"),
]


def test_cache_bytes_equal_generate_latest(store, cache, clock):
    apply_noted(store, cache, *RICH)
    assert cache.render() == ordinary(store, clock)


def test_an_empty_store(store, cache, clock):
    assert cache.render() == ordinary(store, clock)
    assert b"sysnotify_exporter_accounts 0.0" in cache.render()


def test_a_cache_hit_does_not_read_facts(store, cache, monkeypatch):
    apply_noted(store, cache, *RICH)
    first = cache.render()
    monkeypatch.setattr(store, "facts", lambda *a, **k: pytest.fail("facts read on a hit"))
    assert cache.render() is first


def test_a_batch_of_this_process_recomputes_only_its_accounts(store, cache, clock):
    apply_noted(store, cache, *RICH)
    cache.render()
    apply_noted(store, cache, api_usage("acc-2", used=5), account("acc-new", name="New"))
    apply_noted(store, cache, web_visits("acc-2", offset=-2, visits=99))
    assert cache.render() == ordinary(store, clock)
    assert (cache.full_rebuilds, cache.partial_rebuilds) == (1, 1)
    apply_noted(store, cache, privacy(request="y"))
    assert cache.render() == ordinary(store, clock)
    assert (cache.full_rebuilds, cache.partial_rebuilds) == (1, 2)


def test_a_batch_of_another_process_rebuilds_everything(store, cache, clock, tmp_path):
    apply_noted(store, cache, *RICH)
    cache.render()
    other = open_fact_store(
        store.path, clock=clock
    )  # e.g. `sysnotify-exporter ingest` on the same file
    other.apply(validated(credential(valid=False, checked_at=ago(minutes=1))))
    other.close()
    text = cache.render()
    assert text == ordinary(store, clock)
    assert b'abm_credential_valid{account="acc-1",system="salesforce"} 0.0' in text
    assert cache.full_rebuilds == 2


def test_a_missed_note_falls_back_to_a_full_rebuild(store, cache, clock):
    apply_noted(store, cache, *RICH)
    cache.render()
    store.apply(validated(api_usage(used=7)))  # applied, but not noted
    apply_noted(store, cache, api_usage("acc-2", used=8))
    assert cache.render() == ordinary(store, clock)
    assert cache.full_rebuilds == 2


def test_the_end_of_an_api_window_is_a_boundary(store, cache, clock):
    apply_noted(store, cache, account(), api_usage(used=500, window_start=ago(hours=23)))
    assert b'abm_api_daily_calls_used{account="acc-1",platform="salesforce"} 500.0' in (
        cache.render()
    )
    clock.now = NOW + 3600  # the window has ended; no event arrived
    text = cache.render()
    assert b'abm_api_daily_calls_used{account="acc-1",platform="salesforce"} 0.0' in text
    assert text == ordinary(store, clock)
    assert cache.partial_rebuilds == 1  # only the accounts whose window ended


def test_utc_midnight_is_a_boundary(store, cache, clock):
    apply_noted(store, cache, web_visits(offset=-40, visits=0), web_visits(offset=0, visits=9))
    assert b'abm_web_visits_last_week{account="acc-1"} 0.0' in cache.render()
    clock.now = NOW_DT.replace(hour=0).timestamp() + DAY
    text = cache.render()
    assert b'abm_web_visits_last_week{account="acc-1"} 9.0' in text
    assert text == ordinary(store, clock)
    assert cache.full_rebuilds == 2


def test_a_store_failure_drops_the_store_families_and_recovers(store, cache, clock, monkeypatch):
    apply_noted(store, cache, *RICH)
    cache.render()
    calls = {"n": 0}
    real = store.version

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        return real()

    monkeypatch.setattr(store, "version", flaky)
    assert cache.render() == b""
    assert cache.store_up is False
    assert cache.render() == ordinary(store, clock)
    assert cache.store_up is True
