"""The mailer killed (SIGKILL of gunicorn's master and workers) in the middle of delivering.

600 emails are queued, then the whole process group is killed three times while delivery is
under way, each time restarted on the same store. After the last restart everything arrives.
The duplicate window is measured, not assumed: an email the SMTP server accepted just before
the kill, whose "sent" commit never happened, is sent again after its lease expires. That can
only be an email in flight, so at most one per delivery thread per kill.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.process import free_port
from tests.support.faults import account_of, notification, outbox_rows, primary_of, report, tally
from tests.support.mailer_config import write_mailer_config
from tests.support.mailer_process import mailer_service, post_all, set_primaries
from tests.support.polling import wait_until
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NOTIFICATIONS = 600
ACCOUNTS = 20
WORKERS = 2
THREADS = 2
KILLS = 3


def test_sigkill_mid_delivery_loses_nothing_and_doubles_at_most_the_in_flight(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.data_delay = 0.05  # a realistic server keeps every thread mid-send
    config = write_mailer_config(tmp_path, smtp_server.port, delivery={"threads": THREADS})
    set_primaries(
        config,
        {account_of(n, ACCOUNTS): primary_of(account_of(n, ACCOUNTS)) for n in range(ACCOUNTS)},
    )
    port = free_port()
    received_at_kill = []
    with mailer_service(tmp_path, config, port, workers=WORKERS) as service:
        assert (
            post_all(port, [notification(n, ACCOUNTS) for n in range(NOTIFICATIONS)])
            == [200] * NOTIFICATIONS
        )
        for _ in range(KILLS):
            # Kill only once this incarnation is delivering: some emails more since the last.
            target = len(smtp_server.messages) + NOTIFICATIONS // (KILLS + 3)
            assert wait_until(
                lambda t=target: len(smtp_server.messages) >= t, timeout=120, interval=0.02
            )
            service.kill()  # SIGKILL to the process group: master and every worker
            received_at_kill.append(len(smtp_server.messages))
            assert received_at_kill[-1] < NOTIFICATIONS, "delivery finished before the kill"
            service.start()
        assert wait_until(
            lambda: all(r["status"] == "sent" for r in outbox_rows(tmp_path / "mailer.db")),
            timeout=180,
        )
    rows = outbox_rows(tmp_path / "mailer.db")
    counted = tally(
        (r["message_id"] for r in rows), (m.message["Message-ID"] for m in smtp_server.messages)
    )
    in_flight_bound = KILLS * WORKERS * THREADS
    report(
        "mailer_sigkill",
        **counted.__dict__,
        kills=KILLS,
        received_at_kills=received_at_kill,
        duplicate_bound=in_flight_bound,
    )
    assert len(rows) == NOTIFICATIONS
    assert (counted.lost, counted.unexpected) == (0, 0)
    assert counted.delivered == NOTIFICATIONS
    assert counted.doubled <= in_flight_bound
