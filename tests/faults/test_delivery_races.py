"""Delivery under a slow SMTP server, a locked store and broken connections: no email twice,
none lost, counted per Message-ID at the SMTP server.

- A slow server answers every command within `smtp.timeout`, but a whole send takes longer
  than `delivery.lease`; two `sysnotify-mailer deliver --watch` processes share the store.
- Another process holds the store's write lock past the busy timeout just as the SMTP server
  accepts a message, so its "sent" mark cannot be written for a while.
- The server breaks the connection right after accepting each message, or on QUIT.

Leases, timeouts and the busy timeout are shortened so each test takes seconds.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import sysnotify.mailer.store.sqlite
from sysnotify.mailer.config import config_from_mapping
from sysnotify.mailer.web.app import create_app, mailer_of
from tests.support.faults import account_of, notification, outbox_rows, primary_of, report, tally
from tests.support.mailer_config import TOKENS_ENV, WEBHOOK_TOKEN, write_mailer_config
from tests.support.paths import BIN
from tests.support.polling import wait_until
from tests.support.smtp import SmtpServer

NOTIFICATIONS = 6
SLOW_NOTIFICATIONS = 4  # each takes the slow server 4.5 s or more


def queue_notifications(config_path: Path, count: int) -> Any:
    """An app on the config's store, not delivering yet, with `count` notifications posted:
    one email each."""
    mapping = yaml.safe_load(config_path.read_text())
    config = config_from_mapping(mapping, TOKENS_ENV, base_dir=config_path.parent)
    app = create_app(config, start_delivery=False)
    registry = mailer_of(app).registry_api
    for n in range(count):
        registry.set_primary(account_of(n, count), primary_of(account_of(n, count)))
    client = app.test_client()
    for n in range(count):
        answer = client.post(
            "/alertmanager/webhook",
            json=notification(n, count),
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
        assert answer.status_code == 200, answer.json
    return app


def close_app(app: Any) -> None:
    mailer = mailer_of(app)
    mailer.stop_delivery()
    for worker in mailer.workers:
        worker.sender.close()
    mailer.store.close()


def fenced_counts(db: Path) -> dict[str, float]:
    conn = sqlite3.connect(db)
    try:
        return dict(
            conn.execute("SELECT label, value FROM counters WHERE name = 'delivery_fenced'")
        )
    finally:
        conn.close()


@pytest.fixture
def delivery_processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_two_delivery_processes_and_a_server_slower_than_the_lease_send_each_email_once(
    tmp_path: Path, smtp_server: SmtpServer, delivery_processes: list[subprocess.Popen[bytes]]
) -> None:
    # Each reply 0.5 s within the 2 s timeout; a send (EHLO on a new connection, MAIL, RCPT,
    # end of data) 4.5-6 s against a 4.1 s lease (the config wants more than twice the timeout).
    smtp_server.handler.command_delay = 1.5
    config = write_mailer_config(
        tmp_path,
        smtp_server.port,
        smtp={"timeout": "2s"},
        delivery={"enabled": False, "lease": "4.1s", "poll_interval": "0.1s"},
    )
    app = queue_notifications(config, 0)  # migrates the store before the processes start
    logs = [tmp_path / f"deliver-{n}.log" for n in (1, 2)]
    for log in logs:
        with log.open("ab") as out:
            delivery_processes.append(
                subprocess.Popen(
                    [str(BIN / "sysnotify-mailer"), "--config", str(config), "deliver", "--watch"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**TOKENS_ENV, "PATH": str(BIN)},
                )
            )
    for log in logs:
        assert wait_until(lambda log=log: "delivering with" in log.read_text(), 30)
    close_app(app)
    app = queue_notifications(config, SLOW_NOTIFICATIONS)
    db = tmp_path / "mailer.db"
    try:
        assert wait_until(
            lambda: all(r["status"] == "sent" for r in outbox_rows(db)), timeout=60
        ), [dict(r) for r in outbox_rows(db)]
        wait_until(lambda: False, timeout=4.5)  # one more lease: a late copy would arrive now
    finally:
        close_app(app)
    for process in delivery_processes:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    rows = outbox_rows(db)
    counted = tally(
        (r["message_id"] for r in rows), (m.message["Message-ID"] for m in smtp_server.messages)
    )
    fenced_log_lines = [log.read_text().count("fenced off") for log in logs]
    report(
        "slow_smtp_two_processes",
        **counted.__dict__,
        fenced=fenced_counts(db),
        fenced_log_lines=fenced_log_lines,
        sessions=smtp_server.handler.sessions,
    )
    assert len(rows) == SLOW_NOTIFICATIONS
    assert counted.delivered == SLOW_NOTIFICATIONS
    assert (counted.lost, counted.doubled, counted.unexpected) == (0, 0, 0)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_store_locked_past_the_busy_timeout_when_the_sent_mark_is_due_sends_nothing_twice(
    tmp_path: Path,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two delivery threads share the store. When the SMTP server accepts the first message,
    another connection takes SQLite's write lock and keeps it for 2.5 s, five times the
    (shortened) 0.5 s busy timeout: the "sent" mark fails, and so does every claim meanwhile.
    The lease (4 s) outlasts the lock, as the shipped 120 s lease outlasts a 15 s busy
    timeout."""
    monkeypatch.setattr(sysnotify.mailer.store.sqlite, "BUSY_TIMEOUT_MS", 500)
    db = tmp_path / "mailer.db"
    config = write_mailer_config(
        tmp_path,
        smtp_server.port,
        smtp={"timeout": "1s"},
        delivery={"threads": 2, "lease": "4s", "poll_interval": "0.05s"},
    )
    first = threading.Lock()
    locked = threading.Event()

    def lock_the_store() -> None:
        if not first.acquire(blocking=False):
            return  # only at the first message
        locker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN IMMEDIATE")
        locked.set()
        threading.Timer(2.5, lambda: (locker.execute("ROLLBACK"), locker.close())).start()

    smtp_server.handler.hooks["DATA"] = lock_the_store
    app = queue_notifications(config, NOTIFICATIONS)
    mailer_of(app).start_delivery()
    try:
        assert wait_until(
            lambda: locked.is_set() and all(r["status"] == "sent" for r in outbox_rows(db)),
            timeout=30,
        ), [dict(r) for r in outbox_rows(db)]
        wait_until(lambda: False, timeout=4.5)  # one more lease: a late copy would arrive now
    finally:
        close_app(app)
    rows = outbox_rows(db)
    counted = tally(
        (r["message_id"] for r in rows), (m.message["Message-ID"] for m in smtp_server.messages)
    )
    failed_marks = caplog.text.count("not recorded as sent yet")
    report(
        "store_locked_at_sent_mark",
        **counted.__dict__,
        failed_sent_marks=failed_marks,
        fenced=fenced_counts(db),
    )
    assert failed_marks >= 1, "the lock did not stop a sent mark: the fault was not simulated"
    assert counted.delivered == NOTIFICATIONS
    assert (counted.lost, counted.doubled, counted.unexpected) == (0, 0, 0)


@pytest.mark.parametrize("break_at", ["after the final 250", "on QUIT"])
def test_a_connection_broken_after_the_server_accepted_sends_nothing_again(
    tmp_path: Path, smtp_server: SmtpServer, break_at: str
) -> None:
    """The server accepts each message, then sends only the first line of a two-line 250
    reply and closes the connection (or breaks it when the client says QUIT)."""
    if break_at == "on QUIT":
        smtp_server.handler.drop_on_quit = True
    else:
        smtp_server.handler.drop_after_accept = True
    config = write_mailer_config(tmp_path, smtp_server.port)
    app = queue_notifications(config, NOTIFICATIONS)
    worker = mailer_of(app).workers[0]
    try:
        outcomes = worker.drain()
        worker.sender.close()  # QUIT
        again = worker.drain()
    finally:
        close_app(app)
    rows = outbox_rows(tmp_path / "mailer.db")
    counted = tally(
        (r["message_id"] for r in rows), (m.message["Message-ID"] for m in smtp_server.messages)
    )
    report(
        f"connection_broken_{break_at.replace(' ', '_')}",
        **counted.__dict__,
        outcomes=outcomes,
        sessions=smtp_server.handler.sessions,
    )
    assert (outcomes, again) == ({"sent": NOTIFICATIONS}, {})
    assert {r["status"] for r in rows} == {"sent"}
    assert counted.delivered == NOTIFICATIONS
    assert (counted.lost, counted.doubled, counted.unexpected) == (0, 0, 0)
