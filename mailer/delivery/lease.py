"""Holding a claimed row's lease while its email is sent.

A send can outlast the lease: every SMTP reply may take up to `smtp.timeout`, and a send has
up to ten of them (connect, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA, the message, the
final reply). The SMTP sender calls `LeaseKeeper.keep` before each step; whenever less than
`margin` of the lease is left, it extends the lease, checked against the claim. The margin
covers the longest stretch between two calls, the message and the final reply (each bounded
by `smtp.timeout`), so the end of data only goes out while the claim is sure to outlast the
answer to it: no other worker can claim the row and send it too.

Why not a budget checked once before the send: the worst case of one send is ten timeouts
(five minutes with the default 30 s), so the lease would have to be at least that long, and
every email of a killed worker would wait that long. Why not a heartbeat thread: the check
that matters is the one just before the end of data, and it is made there, in the thread that
sends; a fast send (under `lease - margin`) writes nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable

from sysnotify.mailer.delivery.queue import Queue
from sysnotify.mailer.store import OutboxRow


class ClaimLost(Exception):
    """The row was claimed again by another worker (or this one) after this claim's lease ran
    out: this thread must not send it."""


class LeaseKeeper:
    """Keeps one claimed row's lease at least `margin` seconds ahead while it is sent."""

    def __init__(
        self, queue: Queue, row: OutboxRow, margin: float, clock: Callable[[], float]
    ) -> None:
        self.queue = queue
        self.row = row
        self.margin = margin
        self.clock = clock
        self.held_until = row.claim.lease_until

    def keep(self) -> None:
        """Makes sure the claim holds for at least `margin` more.

        :raise ClaimLost: the row was claimed again since (counted and logged by the queue).
        :raise StoreError: the lease could not be extended; do not send.
        """
        now = self.clock()
        if self.held_until - now >= self.margin:
            return
        lease_until = self.queue.extend(self.row, now)
        if lease_until is None:
            raise ClaimLost(f"email {self.row.id} was claimed again after its lease ran out")
        self.held_until = lease_until
