"""SMTP outage: the server is down while 1,000 notifications arrive; when it returns, every
email is delivered exactly once.

The real mailer (gunicorn, two workers, two delivery threads each) takes the webhooks while the
SMTP server refuses connections; the webhook keeps answering 200 (the outbox holds the emails)
and the delivery threads back off. After the server comes back on the same port, every queued
email arrives once: none lost, none doubled, none failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.process import free_port
from stack.smtp_sink import MailSink
from tests.support.faults import account_of, notification, outbox_rows, primary_of, report, tally
from tests.support.mailer_config import write_mailer_config
from tests.support.mailer_process import mailer_service, post_all, set_primaries
from tests.support.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NOTIFICATIONS = 1000
ACCOUNTS = 50


def test_smtp_down_while_1000_notifications_arrive(tmp_path: Path) -> None:
    smtp_port, port = free_port(), free_port()
    sink = MailSink(tmp_path / "mail", port=smtp_port)  # created, but down: nothing listens
    config = write_mailer_config(tmp_path, smtp_port, delivery={"threads": 2})
    set_primaries(
        config,
        {account_of(n, ACCOUNTS): primary_of(account_of(n, ACCOUNTS)) for n in range(ACCOUNTS)},
    )
    with mailer_service(tmp_path, config, port):
        statuses = post_all(port, [notification(n, ACCOUNTS) for n in range(NOTIFICATIONS)])
        assert statuses == [200] * NOTIFICATIONS  # stored: the outage is the outbox's job
        rows = outbox_rows(tmp_path / "mailer.db")
        assert len(rows) == NOTIFICATIONS
        # The delivery threads have been trying (and failing) all along.
        assert wait_until(
            lambda: any(r["attempts"] for r in outbox_rows(tmp_path / "mailer.db")), timeout=30
        )
        during = outbox_rows(tmp_path / "mailer.db")
        assert {r["status"] for r in during} == {"pending"}
        assert sink.messages() == []
        sink.start()  # the server returns on the same port
        try:
            assert wait_until(lambda: len(sink.messages()) >= NOTIFICATIONS, timeout=180)
            # Whatever would be sent twice is sent by now: the outbox has nothing left.
            assert wait_until(
                lambda: all(r["status"] != "pending" for r in outbox_rows(tmp_path / "mailer.db")),
                timeout=30,
            )
            received = sink.messages()
        finally:
            sink.stop()
    rows = outbox_rows(tmp_path / "mailer.db")
    counted = tally((r["message_id"] for r in rows), (m.header("Message-ID") for m in received))
    report(
        "smtp_outage",
        **counted.__dict__,
        failed_attempts_during_outage=sum(r["attempts"] for r in during),
        max_attempts_of_one_email=max(r["attempts"] for r in rows),
    )
    assert {r["status"] for r in rows} == {"sent"}
    assert counted.expected == counted.delivered == NOTIFICATIONS
    assert (counted.lost, counted.doubled, counted.unexpected) == (0, 0, 0)
    # Each email went to its own account's primary administrator, alone.
    for mail in received:
        assert mail.rcpt_tos == (primary_of(mail.header("X-Sysnotify-Account")),)
