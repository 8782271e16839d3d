"""Refused webhooks under real gunicorn (2 workers): each worker counts them in memory and
adds them to the store every few seconds and when it exits, so every worker's /metrics shows
the exact totals, and a graceful stop loses none."""

from __future__ import annotations

import collections
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from stack.process import free_port
from sysnotify.mailer import counters
from tests.support.mailer_config import WEBHOOK_TOKEN, write_mailer_config
from tests.support.mailer_process import mailer_service, scrape
from tests.support.polling import wait_until
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# status -> (method, Authorization header, body)
REFUSALS = {
    401: ("POST", "Bearer wrong-token", b"{}"),
    400: ("POST", f"Bearer {WEBHOOK_TOKEN}", b"{not json"),
    405: ("GET", f"Bearer {WEBHOOK_TOKEN}", None),
}


def refuse(port: int, status: int) -> int:
    method, authorization, body = REFUSALS[status]
    return requests.request(
        method,
        f"http://127.0.0.1:{port}/alertmanager/webhook",
        data=body,
        headers={"Authorization": authorization, "Content-Type": "application/json"},
        timeout=30,
    ).status_code


def send(port: int, wanted: dict[int, int]) -> collections.Counter[int]:
    """Sends `wanted[status]` requests of each kind, four at a time (both workers answer)."""
    kinds = [status for status, times in wanted.items() for _ in range(times)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return collections.Counter(pool.map(lambda status: refuse(port, status), kinds))


def counted(db: Path, code: int) -> float:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT value FROM counters WHERE name = ? AND label = ?",
            (counters.WEBHOOK_REQUESTS, str(code)),
        ).fetchone()
    finally:
        conn.close()
    return float(row[0]) if row else 0.0


def test_every_worker_shows_the_exact_totals_and_a_graceful_stop_loses_none(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config = write_mailer_config(tmp_path, smtp_server.port)
    port = free_port()
    first = {401: 60, 400: 20, 405: 10}
    with mailer_service(tmp_path, config, port):
        assert send(port, first) == first
        expected = {
            f'sysnotify_mailer_webhook_requests_total{{code="{code}"}}': float(times)
            for code, times in first.items()
        }

        def every_count_exact() -> bool:
            samples = scrape(port)
            return all(samples.get(name) == value for name, value in expected.items())

        # Once each worker has flushed (every few seconds), any scrape shows the totals.
        assert wait_until(every_count_exact, timeout=30)
        for _ in range(6):  # scrapes land on both workers
            assert every_count_exact()
        assert send(port, {401: 40}) == {401: 40}
    # Stopped (SIGTERM) right after: each worker added what it still held on its way out.
    assert counted(tmp_path / "mailer.db", 401) == 100
    assert counted(tmp_path / "mailer.db", 400) == 20
