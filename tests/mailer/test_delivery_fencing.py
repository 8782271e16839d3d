"""Delivery fencing: a row is changed only under the claim it was taken with, and an email is
sent only while its claim is held.

A claim is (worker, generation): every claim of a row counts up its generation, so a holder
whose lease expired and whose row was claimed again (by another worker, or by itself) can no
longer mark it sent, retried or failed, give it back, or send it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from sysnotify.mailer import counters
from sysnotify.mailer.delivery.lease import ClaimLost, LeaseKeeper
from sysnotify.mailer.delivery.queue import Queue
from sysnotify.mailer.store import OutboxRow, StoreError
from sysnotify.mailer.web.app import mailer_of
from tests.support.clocks import FakeClock
from tests.support.mailer_app import deliver, metric, queue_three
from tests.support.smtp import SmtpServer

LEASE = 30


def row_state(app: Any, row_id: int) -> tuple[str, str | None, int, str]:
    found = (
        mailer_of(app)
        .store.db.connection()
        .execute(
            "SELECT status, claimed_by, attempts, last_error FROM outbox WHERE id = ?", (row_id,)
        )
        .fetchone()
    )
    return (found[0], found[1], found[2], found[3])


CHANGES: dict[str, Callable[[Queue, OutboxRow, float], object]] = {
    "sent": lambda queue, row, now: queue.mark_sent(row, now, counters.LATENCY_BUCKETS),
    "retry": lambda queue, row, now: queue.retry_later(row, now, now + 5, "451 try later"),
    "failed": lambda queue, row, now: queue.mark_failed(row, now, "550 no such user", "permanent"),
    "release": lambda queue, row, now: queue.release(row),
    "extend": lambda queue, row, now: queue.extend(row, now),
}
# What the log says each refused change was: an operator's only account of the fence.
FENCED_LOG = {
    "sent": '"sent" mark was fenced off',
    "retry": "retry fenced off",
    "failed": "failure fenced off",
    "release": "release fenced off",
    "extend": "lease extension fenced off",
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("new_holder", ["worker-b", "worker-a"])
def test_a_row_claimed_again_after_its_lease_expired_is_not_changed_by_its_old_claim(
    app: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture, change: str, new_holder: str
) -> None:
    client = queue_three(app)
    store = mailer_of(app).store
    old = Queue(store, "worker-a", LEASE)
    row = old.claim(clock())
    assert row is not None
    clock.advance(LEASE + 1)  # worker-a stalled past its lease; the row is claimed again
    taken = Queue(store, new_holder, LEASE).claim(clock())
    assert taken is not None and taken.id == row.id
    caplog.set_level(logging.WARNING)

    held = CHANGES[change](old, row, clock())

    assert not held  # False, or no new lease end
    assert row_state(app, row.id) == ("pending", new_holder, 0, "")
    assert metric(client, "sysnotify_mailer_delivery_fenced_total", f'action="{change}"') == 1
    assert f"email {row.id}" in caplog.text and FENCED_LOG[change] in caplog.text


def test_changes_under_the_current_claim_go_through_and_count_nothing_fenced(
    app: Any, clock: FakeClock
) -> None:
    client = queue_three(app)
    queue = Queue(mailer_of(app).store, "worker-a", LEASE)
    rows = [queue.claim(clock()) for _ in range(3)]
    assert all(rows)
    clock.advance(LEASE + 1)  # expired, but nobody claimed them since: still worker-a's
    sent, retried, released = (row for row in rows if row is not None)
    assert queue.mark_sent(sent, clock(), counters.LATENCY_BUCKETS)
    assert queue.retry_later(retried, clock(), clock() + 5, "451 try later")
    assert queue.release(released)
    assert row_state(app, sent.id)[0] == "sent"
    assert row_state(app, retried.id) == ("pending", None, 1, "451 try later")
    assert row_state(app, released.id) == ("pending", None, 0, "")
    fenced = client.get("/metrics").text
    assert 'sysnotify_mailer_delivery_fenced_total{action="sent"} 0.0' in fenced


def finished_at(app: Any, row_id: int) -> float | None:
    connection = mailer_of(app).store.db.connection()
    return connection.execute("SELECT finished_at FROM outbox WHERE id = ?", (row_id,)).fetchone()[
        0
    ]


def test_sent_and_failed_marks_record_when_and_the_latency_since_the_webhook(
    app: Any, clock: FakeClock
) -> None:
    client = queue_three(app)  # received now
    queue = Queue(mailer_of(app).store, "worker-a", LEASE)
    sent, failed = queue.claim_batch(clock(), 2)
    clock.advance(7)
    assert queue.mark_sent(sent, clock(), counters.LATENCY_BUCKETS)
    assert queue.mark_failed(failed, clock(), "550 no such user", "permanent")
    assert finished_at(app, sent.id) == finished_at(app, failed.id) == clock()
    assert metric(client, "sysnotify_mailer_delivery_latency_seconds_sum") == 7
    assert metric(client, "sysnotify_mailer_delivery_latency_seconds_count") == 1


def test_a_sent_mark_made_twice_under_one_claim_counts_once(app: Any, clock: FakeClock) -> None:
    """A mark whose commit was reported failed may have committed: making it again under
    the same claim is no fence and counts nothing twice."""
    client = queue_three(app)
    queue = Queue(mailer_of(app).store, "worker-a", LEASE)
    row = queue.claim(clock())
    assert row is not None
    assert queue.mark_sent(row, clock(), counters.LATENCY_BUCKETS)
    assert queue.mark_sent(row, clock(), counters.LATENCY_BUCKETS)
    assert row_state(app, row.id) == ("sent", "worker-a", 1, "")
    sent = 'notification="credential_expired"'
    assert metric(client, "sysnotify_mailer_emails_sent_total", sent) == 1
    assert metric(client, "sysnotify_mailer_delivery_fenced_total", 'action="sent"') == 0


def test_an_email_whose_claim_was_taken_mid_send_is_not_sent(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """The worker stalls between RCPT and DATA past its lease, and another worker claims the
    row meanwhile: the message must not be completed (the other worker sends it)."""
    client = queue_three(app)
    store = mailer_of(app).store
    taken: list[OutboxRow] = []

    def stall_then_claim() -> None:
        if not taken:
            clock.advance(LEASE + 1)
            row = Queue(store, "worker-b", LEASE).claim(clock())
            assert row is not None
            taken.append(row)

    smtp_server.handler.hooks["RCPT"] = stall_then_claim
    outcome = deliver(app)

    assert outcome == {"fenced": 1, "sent": 2}, outcome
    assert len(smtp_server.messages) == 2
    assert taken[0].recipient not in {m.rcpt_tos[0] for m in smtp_server.messages}
    assert row_state(app, taken[0].id) == ("pending", "worker-b", 0, "")
    assert metric(client, "sysnotify_mailer_delivery_fenced_total", 'action="extend"') == 1


def test_a_slow_send_extends_its_lease_so_no_one_else_can_claim_the_row(
    make_app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """Every step of the conversation takes 4 s of the fake clock: the whole send (EHLO, MAIL,
    RCPT, DATA, end of data) lasts longer than the 12 s lease, each reply within the 5 s
    timeout. Another worker tries to claim at every step and never gets the row."""
    app = make_app(delivery={"lease": "12s", "claim_batch": 1})
    queue_three(app)
    store = mailer_of(app).store
    stolen: list[OutboxRow] = []

    def slow_step() -> None:
        clock.advance(4)
        row = Queue(store, "worker-b", 12).claim(clock())
        if row is not None:
            stolen.append(row)
            Queue(store, "worker-b", 12).release(row)

    for command in ("EHLO", "MAIL", "RCPT", "DATA"):
        smtp_server.handler.hooks[command] = slow_step
    worker = mailer_of(app).workers[0]
    assert worker.run_once() == "sent"
    assert len(smtp_server.messages) == 1
    assert smtp_server.messages[0].rcpt_tos[0] not in {row.recipient for row in stolen}


def test_a_store_error_on_the_sent_mark_keeps_the_fact_and_sends_nothing_twice(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """The store refuses the "sent" mark (here: read-only for that moment); the worker keeps
    the SMTP server's acceptance and records it before it sends anything else."""
    client = queue_three(app)
    worker = mailer_of(app).workers[0]
    conn = mailer_of(app).store.db.connection()  # the worker runs in this thread
    smtp_server.handler.hooks["DATA"] = lambda: conn.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreError, match="readonly"):
        worker.run_once()
    del smtp_server.handler.hooks["DATA"]
    conn.execute("PRAGMA query_only = OFF")
    clock.advance(LEASE + 1)  # long enough for the lease to run out meanwhile
    outcomes = worker.drain()
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == len(set(ids)) == 3, ids
    assert outcomes == {"sent": 3}
    assert (
        metric(client, "sysnotify_mailer_emails_sent_total", 'notification="credential_expired"')
        == 3
    )


def test_a_lost_claim_names_its_email() -> None:
    class Refused:
        def extend(self, row: OutboxRow, now: float) -> float | None:
            return None

    row = SimpleNamespace(id=7, claim=SimpleNamespace(lease_until=100.0))
    keeper = LeaseKeeper(cast(Queue, Refused()), cast(OutboxRow, row), 10, lambda: 95.0)
    with pytest.raises(ClaimLost, match="^email 7 was claimed again after its lease ran out$"):
        keeper.keep()
