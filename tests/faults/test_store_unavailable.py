"""The mailer's store unavailable: a full disk, a read-only store, a store locked by another
process. The webhook answers 503 (Alertmanager retries 5xx) and writes nothing half; whatever
it acknowledged with 200 is delivered, once.

A full disk is simulated with SQLite's `max_page_count` (the database cannot grow: SQLITE_FULL,
exactly what a full file system gives), a read-only store with `query_only` (SQLITE_READONLY);
both are set on the app's own connection, since the tests run as root, for whom file modes do
not stop writes. The locked store is real: another process holds SQLite's write lock while a
real Alertmanager keeps notifying a gunicorn mailer.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from stack import servers
from stack.process import free_port
from sysnotify.mailer import counters
from sysnotify.mailer.config import config_from_mapping
from sysnotify.mailer.web.app import create_app, deferred_counters_of, mailer_of
from tests.support.alertmanager import ALERTMANAGER_WEBHOOK_CONFIG, alerts_for
from tests.support.faults import (
    account_of,
    notification,
    outbox_rows,
    phases,
    primary_of,
    report,
)
from tests.support.mailer_config import (
    ADMIN_TOKEN,
    TOKENS_ENV,
    WEBHOOK_TOKEN,
    config_mapping,
    write_mailer_config,
)
from tests.support.mailer_process import mailer_service, set_primaries
from tests.support.polling import wait_until
from tests.support.smtp import SmtpServer

ACCOUNTS = 10
BATCH = 60


@pytest.fixture
def app(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Any]:
    config = config_from_mapping(
        config_mapping(tmp_path, smtp_server.port), TOKENS_ENV, base_dir=tmp_path
    )
    flask_app = create_app(config, start_delivery=False)
    client = flask_app.test_client()
    for n in range(ACCOUNTS):
        account = account_of(n, ACCOUNTS)
        assert (
            client.put(
                f"/api/v1/accounts/{account}/primary",
                json={"address": primary_of(account)},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ).status_code
            == 200
        )
    yield flask_app
    for worker in mailer_of(flask_app).workers:
        worker.sender.close()
    mailer_of(flask_app).store.close()


def post(client: Any, payload: dict[str, Any]) -> int:
    return int(
        client.post(
            "/alertmanager/webhook",
            json=payload,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        ).status_code
    )


def stored_groups(app: Any) -> set[str]:
    conn = mailer_of(app).store.db.connection()
    return {r[0] for r in conn.execute("SELECT DISTINCT group_key FROM alert_state")}


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_unwritable_store_answers_503_and_loses_nothing_acknowledged(
    app: Any, smtp_server: SmtpServer, fault: str
) -> None:
    client = app.test_client()
    conn = mailer_of(app).store.db.connection()  # the test client runs requests in this thread
    payloads = [notification(n, ACCOUNTS) for n in range(3 * BATCH)]
    statuses: dict[int, int] = {}
    for n in range(BATCH):  # healthy
        statuses[n] = post(client, payloads[n])
    if fault == "disk full":
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
    else:
        conn.execute("PRAGMA query_only = ON")
        # Readiness writes one existing row: that still fits a full disk, not a read-only one.
        assert client.get("/readyz").status_code == 503
    for n in range(BATCH, 2 * BATCH):  # the fault
        statuses[n] = post(client, payloads[n])
    refused = [n for n, status in statuses.items() if status != 200]
    if fault == "disk full":
        conn.execute("PRAGMA max_page_count = 1073741823")
    else:
        conn.execute("PRAGMA query_only = OFF")
    assert client.get("/readyz").status_code == 200
    for n in range(2 * BATCH, 3 * BATCH):  # healthy again
        statuses[n] = post(client, payloads[n])

    assert set(statuses.values()) <= {200, 503}
    assert refused, "the fault refused nothing; it was not simulated"
    # Nothing half-written: a refused notification left no state and no outbox row.
    groups = stored_groups(app)
    assert all(payloads[n]["groupKey"] not in groups for n in refused)
    # Alertmanager retries what got a 5xx.
    retried = [post(client, payloads[n]) for n in refused]
    assert retried == [200] * len(refused)
    outcome = mailer_of(app).workers[0].drain()
    ids = collections.Counter(m.message["Message-ID"] for m in smtp_server.messages)
    report(
        f"store_{fault.replace(' ', '_')}",
        notifications=len(payloads),
        refused_with_503=len(refused),
        delivered=len(ids),
        doubled=sum(c - 1 for c in ids.values()),
    )
    assert outcome == {"sent": len(payloads)}
    assert len(ids) == len(payloads) and set(ids.values()) == {1}
    # The 503s were counted in memory while the store refused writes; the store has them all
    # once it takes writes again.
    deferred_counters_of(app).flush()
    counted = conn.execute(
        "SELECT value FROM counters WHERE name = ? AND label = '503'",
        (counters.WEBHOOK_REQUESTS,),
    ).fetchone()
    assert counted[0] == len(refused)


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_store_locked_by_another_process_while_alertmanager_notifies(
    tmp_path: Path, smtp_server: SmtpServer, binary: Any
) -> None:
    """A real Alertmanager notifies a gunicorn mailer whose store another process keeps
    locked for 25 s (longer than the mailer's 15 s busy timeout and Alertmanager's 10 s
    notification timeout). The mailer answers 503 or times out, Alertmanager retries on
    the next group interval, and after the lock is gone each account gets one email."""
    binary("alertmanager")
    accounts = [f"acc-l{n:02d}" for n in range(8)]
    config = write_mailer_config(tmp_path, smtp_server.port)
    set_primaries(config, {a: primary_of(a) for a in accounts})
    port = free_port()
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(ALERTMANAGER_WEBHOOK_CONFIG.format(port=port, token=WEBHOOK_TOKEN))
    locker = sqlite3.connect(tmp_path / "mailer.db", isolation_level=None)
    released = threading.Event()
    with (
        mailer_service(tmp_path, config, port),
        servers.alertmanager(am_config, tmp_path, name="am") as am,
    ):
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            started = datetime.now(UTC) - timedelta(minutes=1)
            requests.post(
                f"{am.url}/api/v2/alerts",
                json=alerts_for(accounts, started),  # type: ignore[attr-defined]
                timeout=10,
            ).raise_for_status()
            threading.Timer(25, released.set).start()
            released.wait()
            assert smtp_server.messages == []
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert wait_until(
            lambda: all(phases(smtp_server)[(a, "problem")] for a in accounts), timeout=90
        )
        wait_until(lambda: False, timeout=5)  # a duplicate would arrive now
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    rows = outbox_rows(tmp_path / "mailer.db")
    counts = phases(smtp_server)
    failed_answers = [
        line
        for line in metrics.splitlines()
        if line.startswith('sysnotify_mailer_webhook_requests_total{code="5')
    ]
    report(
        "store_locked",
        expected=len(accounts),
        delivered=sum(counts.values()),
        doubled=sum(c - 1 for c in counts.values()),
        answers_5xx=failed_answers,
    )
    assert dict(counts) == {(a, "problem"): 1 for a in accounts}
    assert {r["status"] for r in rows} == {"sent"} and len(rows) == len(accounts)
