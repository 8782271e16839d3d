"""One tenant can never blind every tenant: an account whose stored facts cannot be published
(rows no validation accepts now, written by an older release or by hand) is left out of
/metrics, logged with its id and counted, while every other account is published and
``sysnotify_exporter_store_up`` stays 1."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sysnotify.exporter.exposition import ExpositionCache
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store.sqlite import SqliteFactStore
from sysnotify.exporter.web.state import exporter_of
from tests.support.exporter import (
    NOW,
    account,
    api_usage,
    credential,
    ordinary,
    privacy,
    sync_finished,
    sync_started,
    validated,
    web_visits,
)

GOOD_ACCOUNTS = ("acc-good-1", "acc-good-2", "acc-good-3")
HOSTILE = "acc-hostile"


def good_facts() -> list[dict]:
    events: list[dict] = []
    for acc in GOOD_ACCOUNTS:
        events += [
            account(acc),
            credential(acc),
            api_usage(acc),
            *[web_visits(acc, offset=-d, page=f"/p{d % 6}") for d in range(1, 36)],
            sync_started(acc),
            sync_finished(acc),
            privacy(acc),
        ]
    return events


def write_rows(store: SqliteFactStore, *statements: tuple[str, tuple]) -> None:
    """Rows written straight into the file, as an older release (or a hand) could have, in one
    batch: the version moves, as for any batch applied by another process."""
    conn = store.connection()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT OR IGNORE INTO accounts VALUES (?, 'Hostile Inc', ?)", (HOSTILE, NOW))
    for sql, args in statements:
        conn.execute(sql, args)
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")
    conn.execute("COMMIT")


TODAY = utc_day(NOW)
VISITS = "INSERT INTO web_visits (account, day, page, visits) VALUES (?, ?, ?, ?)"
FIRST_DAY = "INSERT OR REPLACE INTO web_accounts (account, first_day) VALUES (?, ?)"
# Each case: rows no validation accepts now. The first is what a release without bounds
# accepted through its API: two counts of 2^62, whose sum overflows SQLite's integers.
HOSTILE_ROWS = {
    "visits-2^62-twice": [
        (FIRST_DAY, (HOSTILE, TODAY - 40)),
        (VISITS, (HOSTILE, TODAY - 1, "/a", 2**62)),
        (VISITS, (HOSTILE, TODAY - 2, "/a", 2**62)),
    ],
    "daily-total-overflowed-to-a-float": [
        (FIRST_DAY, (HOSTILE, TODAY - 40)),
        (VISITS, (HOSTILE, TODAY - 1, "/a", 2**62)),
        (VISITS, (HOSTILE, TODAY - 1, "/b", 2**62)),
    ],
    "visits-2^62-once": [
        (FIRST_DAY, (HOSTILE, TODAY - 40)),
        (VISITS, (HOSTILE, TODAY - 1, "/a", 2**62)),
    ],
    "visits-as-text": [
        (FIRST_DAY, (HOSTILE, TODAY - 40)),
        (VISITS, (HOSTILE, TODAY - 1, "/a", "lots")),
    ],
    "api-calls-over-the-maximum": [
        (
            "INSERT INTO api_usage VALUES (?, 'hubspot', ?, ?, ?)",
            (HOSTILE, NOW - 60, 2**62, 10**15),
        ),
    ],
    "check-time-as-text": [
        (
            "INSERT INTO credentials VALUES (?, 'hubspot', 'no_rotation', NULL, 1, 'soon')",
            (HOSTILE,),
        ),
    ],
    "infinite-sync-start": [
        ("INSERT INTO sync_runs VALUES (?, 'r', 9e999, NULL, NULL)", (HOSTILE,)),
    ],
}


def metrics(client) -> dict[str, dict[tuple, float]]:
    text = client.get("/metrics").get_data(as_text=True)
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def good_account(labels: tuple) -> bool:
    return dict(labels).get("account") in GOOD_ACCOUNTS


def accounts_in(found: dict[str, dict[tuple, float]], name: str) -> set[str]:
    return {dict(labels)["account"] for labels in found.get(name, {})}


@pytest.mark.parametrize("rows", HOSTILE_ROWS.values(), ids=HOSTILE_ROWS.keys())
def test_a_hostile_row_in_the_store_leaves_out_only_its_account(client, app, store, rows, caplog):
    store.apply(validated(*good_facts(), account(HOSTILE, name="Hostile Inc")))
    before = metrics(client)
    caplog.set_level(logging.WARNING)
    write_rows(store, *rows)

    found = metrics(client)
    assert found["sysnotify_exporter_store_up"][()] == 1
    assert found["sysnotify_exporter_accounts_skipped"][()] == 1
    assert found["sysnotify_exporter_accounts"][()] == len(GOOD_ACCOUNTS) + 1
    for name, series in before.items():  # every good account's series, unchanged
        good = {labels: value for labels, value in series.items() if good_account(labels)}
        assert {k: v for k, v in found[name].items() if good_account(k)} == good, name
    assert accounts_in(found, "abm_account_info") == set(GOOD_ACCOUNTS)
    assert HOSTILE not in accounts_in(
        found, "sysnotify_exporter_account_last_event_timestamp_seconds"
    )
    assert f"account '{HOSTILE}' left out of /metrics" in caplog.text


def test_the_cache_and_the_ordinary_collector_agree_on_a_skipped_account(store, clock):
    store.apply(validated(*good_facts()))
    write_rows(store, *HOSTILE_ROWS["visits-2^62-twice"])
    cache = ExpositionCache(store, clock)
    assert cache.render() == ordinary(store, clock)
    assert b"sysnotify_exporter_accounts_skipped 1.0\n" in cache.render()


def test_a_skipped_account_comes_back_once_its_facts_are_fixed(client, app, store):
    store.apply(validated(*good_facts()))
    write_rows(store, *HOSTILE_ROWS["visits-2^62-once"])
    assert metrics(client)["sysnotify_exporter_accounts_skipped"][()] == 1
    # A correct count through the API replaces the hostile one (a batch of this process:
    # only the accounts it touched are recomputed).
    response = client.post(
        "/api/v1/events",
        json={"events": [web_visits(HOSTILE, offset=-1, page="/a", visits=12)]},
        headers={"Authorization": f"Bearer {exporter_of(app).config.ingest_token}"},
    )
    assert response.status_code == 200, response.get_json()
    found = metrics(client)
    assert found["sysnotify_exporter_accounts_skipped"][()] == 0
    assert found["abm_web_visits_last_week"][(("account", HOSTILE),)] == 12
    assert exporter_of(app).cache.partial_rebuilds >= 1


def test_an_account_gone_bad_in_a_partial_rebuild_is_left_out(client, app, store):
    store.apply(validated(*good_facts()))
    cache = exporter_of(app).cache
    cache.render()
    # An account this process touched, then spoiled in the file by hand.
    cache.note_applied(store.apply(validated(account(HOSTILE))))
    store.connection().execute(
        "INSERT INTO api_usage VALUES (?, 'hubspot', ?, ?, ?)", (HOSTILE, NOW, -5, 0)
    )
    found = metrics(client)
    assert found["sysnotify_exporter_accounts_skipped"][()] == 1
    assert accounts_in(found, "abm_account_info") == set(GOOD_ACCOUNTS)
    assert cache.partial_rebuilds == 1
