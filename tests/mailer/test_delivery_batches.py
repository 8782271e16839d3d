"""Delivery claims due emails in batches: one transaction for many, never a row sent under a
lease that could run out mid-send, unstarted rows given back."""

from __future__ import annotations

import dataclasses
import email
from typing import Any

import pytest

from sysnotify.mailer.delivery.message import OutgoingMessage
from sysnotify.mailer.delivery.queue import Queue
from sysnotify.mailer.delivery.smtp import (
    KeepClaim,
    PermanentSendError,
    SendError,
    TransientSendError,
)
from sysnotify.mailer.delivery.worker import DeliveryWorker
from sysnotify.mailer.store import OutboxRow
from sysnotify.mailer.web.app import mailer_of
from tests.support.clocks import FakeClock
from tests.support.mailer_app import pending, queue_three
from tests.support.smtp import SmtpServer


def claimed_by(app: Any) -> list[str | None]:
    return [
        row[0]
        for row in mailer_of(app)
        .store.db.connection()
        .execute("SELECT claimed_by FROM outbox WHERE status = 'pending' ORDER BY id")
    ]


def test_a_batch_claims_up_to_its_limit_oldest_first_and_no_one_else_gets_them(
    app: Any, clock: FakeClock
) -> None:
    queue_three(app)
    store = mailer_of(app).store
    first, second = Queue(store, "worker-a", 30), Queue(store, "worker-b", 30)
    batch = first.claim_batch(clock(), 2)
    assert [row.id for row in batch] == sorted(row.id for row in batch)
    assert len(batch) == 2
    rest = second.claim_batch(clock(), 10)
    assert len(rest) == 1 and rest[0].id not in {row.id for row in batch}
    assert second.claim_batch(clock(), 10) == []
    clock.advance(31)  # every lease has expired: all three are due again, to anyone
    assert {row.id for row in second.claim_batch(clock(), 10)} == {
        row.id for row in (*batch, *rest)
    }


def worker_with(app: Any, clock: FakeClock, sender: Any, **delivery: Any) -> DeliveryWorker:
    mailer = mailer_of(app)
    config = dataclasses.replace(mailer.config.delivery, **delivery)
    return DeliveryWorker(
        mailer.store,
        mailer.catalog,
        mailer.renderer,
        sender,
        mailer.config.brand,
        config,
        86400,
        clock,
        worker_id="batch-worker",
        lease_margin=10,
    )


class SlowSender:
    """Checks, as each send starts, that the row's lease outlasts the lease margin; each send
    then takes `seconds` of the fake clock."""

    def __init__(self, app: Any, clock: FakeClock, seconds: float) -> None:
        self.app, self.clock, self.seconds = app, clock, seconds
        self.sent: list[str] = []
        self.lease_left: list[float] = []

    def send(
        self, message: OutgoingMessage, sender: str, recipient: str, keep_claim: KeepClaim
    ) -> None:
        keep_claim()
        lease_until = (
            mailer_of(self.app)
            .store.db.connection()
            .execute(
                "SELECT lease_until FROM outbox WHERE message_id = ?",
                (email.message_from_bytes(message.data)["Message-ID"],),
            )
            .fetchone()[0]
        )
        self.lease_left.append(lease_until - self.clock())
        self.sent.append(recipient)
        self.clock.advance(self.seconds)

    def close(self) -> None:
        pass


def test_every_email_of_a_batch_is_sent_once(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    queue_three(app)
    worker = worker_with(app, clock, mailer_of(app).workers[0].sender, claim_batch=2)
    assert worker.drain() == {"sent": 3}
    assert len({m.rcpt_tos[0] for m in smtp_server.messages}) == len(smtp_server.messages) == 3
    assert pending(app) == 0


def test_rows_left_with_too_little_lease_are_claimed_afresh_before_sending(
    app: Any, clock: FakeClock
) -> None:
    queue_three(app)
    sender = SlowSender(app, clock, seconds=25)
    # Lease 30 s, margin 10 s: only the first 20 s after a claim may start a send.
    worker = worker_with(app, clock, sender, claim_batch=10, lease_seconds=30)
    assert worker.drain() == {"sent": 3}
    assert len(sender.sent) == len(set(sender.sent)) == 3
    assert all(left >= 10 for left in sender.lease_left), sender.lease_left


def test_unstarted_rows_are_given_back(app: Any, clock: FakeClock) -> None:
    queue_three(app)
    sender = SlowSender(app, clock, seconds=0)
    worker = worker_with(app, clock, sender, claim_batch=10)
    assert worker.run_once() == "sent"
    assert claimed_by(app) == ["batch-worker", "batch-worker"]
    worker.release_claimed()
    assert claimed_by(app) == [None, None]
    assert worker.drain(limit=1) == {"sent": 1}
    assert claimed_by(app) == [None]  # drain gives back what it did not get to


def counting_claims(worker: DeliveryWorker) -> list[int]:
    """The size of every batch the worker claims from now on."""
    sizes: list[int] = []
    claim_batch = worker.queue.claim_batch

    def counted(now: float, limit: int) -> list[OutboxRow]:
        rows = claim_batch(now, limit)
        sizes.append(len(rows))
        return rows

    worker.queue.claim_batch = counted  # type: ignore[method-assign]
    return sizes


def test_a_batch_is_claimed_once_while_its_lease_lasts(app: Any, clock: FakeClock) -> None:
    queue_three(app)
    worker = worker_with(app, clock, SlowSender(app, clock, seconds=0), claim_batch=10)
    claims = counting_claims(worker)
    assert worker.drain() == {"sent": 3}
    assert claims == [3, 0]


@pytest.mark.parametrize(
    ("seconds", "claims", "lease_left"),
    [
        # Exactly the margin left at the start deadline is enough: sent without an extension.
        (20, [3, 1, 0], [30, 10, 30]),
        # Past it, the rest are claimed afresh (a new lease), not started and extended.
        (25, [3, 2, 1, 0], [30, 30, 30]),
    ],
)
def test_rows_are_started_until_the_margin_is_left_then_claimed_afresh(
    app: Any, clock: FakeClock, seconds: float, claims: list[int], lease_left: list[float]
) -> None:
    queue_three(app)
    sender = SlowSender(app, clock, seconds=seconds)
    # Lease 30 s, margin 10 s: a send may start up to 20 s after its claim.
    worker = worker_with(app, clock, sender, claim_batch=10, lease_seconds=30)
    sizes = counting_claims(worker)
    assert worker.drain() == {"sent": 3}
    assert (sizes, sender.lease_left) == (claims, lease_left)


class TakenThenFailing:
    """A send that stalls past the lease while another worker claims the row, then fails."""

    def __init__(self, app: Any, clock: FakeClock, error: SendError) -> None:
        self.app, self.clock, self.error = app, clock, error

    def send(
        self, message: OutgoingMessage, sender: str, recipient: str, keep_claim: KeepClaim
    ) -> None:
        keep_claim()
        self.clock.advance(31)
        assert Queue(mailer_of(self.app).store, "worker-b", 30).claim_batch(self.clock(), 10)
        raise self.error

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "error", [TransientSendError("451 try later"), PermanentSendError("550 no such user")]
)
def test_a_failure_under_a_claim_taken_meanwhile_is_fenced(
    app: Any, clock: FakeClock, error: SendError
) -> None:
    queue_three(app)
    sender = TakenThenFailing(app, clock, error)
    worker = worker_with(app, clock, sender, claim_batch=1, lease_seconds=30)
    assert worker.run_once() == "fenced"
    assert claimed_by(app) == ["worker-b"] * 3
