"""The delivery worker: claims outbox rows, renders them, sends them by SMTP.

Every gunicorn worker runs its own delivery thread(s), each with its own SMTP connection (or,
with `delivery.enabled: false`, a `sysnotify-mailer deliver --watch` process runs them).
They never send the same row at the same time:

- Rows are claimed atomically under a lease (claimed_by, lease_until, and a claim generation
  counted up by every claim), a batch of up to `claim_batch` in one transaction. A claimed row
  is only started while at least `lease_margin` (twice the SMTP timeout) of its lease is
  left; later rows of the batch are given back.
- While an email is sent, its lease is kept at least `lease_margin` ahead, extended under its
  claim at each SMTP step (delivery.lease): the end of data goes out only while the claim
  outlasts the message and the answer to it. A row another worker claimed meanwhile is not
  sent.
- Every change of a row (sent, retry, failed, given back) names the claim it was taken under;
  a stale claim changes nothing, and that is logged and counted (delivery.queue).
- Once the SMTP server has accepted an email, that fact is kept until the store records it:
  when the "sent" mark fails (the store locked past its busy timeout, a disk error), it is
  tried again before anything else is sent, and the email is never sent again by this thread.

A worker killed at any moment leaves at most its claimed rows behind; their lease expires and
another worker (or the restarted one) sends them. The only possible duplicate is the email
that the SMTP server had accepted when the kill came, before its "sent" mark was committed:
at most one message per delivery thread.

Transient failures (connection, timeout, 4xx) are retried with exponential backoff and full
jitter, capped; after `max_attempts` or `max_age` the row is failed. Permanent failures (5xx,
a template that cannot render, a header that cannot be built) fail the row at once. Failed
rows stay visible in the admin API and are counted.

Between emails each thread also runs the store's pruning when it is due
(sysnotify.mailer.retention).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from sysnotify.mailer import counters
from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.config import DeliveryConfig, RetentionConfig
from sysnotify.mailer.delivery.lease import ClaimLost, LeaseKeeper
from sysnotify.mailer.delivery.message import OutgoingMessage, build_message
from sysnotify.mailer.delivery.queue import Queue, tracking_headers
from sysnotify.mailer.delivery.smtp import KeepClaim, PermanentSendError, SendError
from sysnotify.mailer.model import Brand, EmailRequest, RenderedEmail
from sysnotify.mailer.retention import Pruner
from sysnotify.mailer.store import OutboxRow, Store, StoreError
from sysnotify.mailer.stored_request import email_request

log = logging.getLogger("gunicorn.error")

RENDER_CACHE_SIZE = 64  # notifications x roles; a claim batch spans a few notifications


class RendererLike(Protocol):
    def render(self, request: EmailRequest) -> RenderedEmail: ...


class SenderLike(Protocol):
    def send(
        self, message: OutgoingMessage, sender: str, recipient: str, keep_claim: KeepClaim
    ) -> None:
        """Sends the message, calling `keep_claim` before every SMTP step; whatever that
        raises stops the send before the end of data and passes through."""
        ...

    def close(self) -> None: ...


def backoff_delay(
    attempts: int, initial: float, maximum: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds before retry number `attempts` (1 = the first retry): capped exponential
    growth with jitter in [50 %, 100 %] of the step, so retries of many rows spread out."""
    step = min(maximum, initial * (2 ** max(0, attempts - 1)))
    return step * (0.5 + 0.5 * rng())


def redacted(error: object, recipient: str) -> str:
    """The error's text without the recipient's address, for the log.

    SMTP errors name the recipient (ours: "RCPT TO <address>"; servers echo it in their
    replies); logs are read by more people than the outbox is, and the email id already
    leads to the row and its recipient in the admin API.
    """
    return re.sub(re.escape(recipient), "<recipient>", str(error), flags=re.IGNORECASE)


class DeliveryWorker:
    """Sends due outbox rows; `run_once` is one step, `start` runs steps in a thread."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        renderer: RendererLike,
        sender: SenderLike,
        brand: Brand,
        config: DeliveryConfig,
        state_retention: float,
        clock: Callable[[], float] = time.time,
        worker_id: str | None = None,
        lease_margin: float | None = None,
        retention: RetentionConfig | None = None,
    ) -> None:
        """:param lease_margin: the lease a send must have left before each SMTP step, the
        longest stretch between two of them (default: half the lease); a claimed row
        is not started with less than this left, and a send extends its lease to keep it.
        :param retention: how long finished emails and undeliverable notes are kept
        (default: the declared defaults)."""
        self.store = store
        self.catalog = catalog
        self.renderer = renderer
        self.sender = sender
        self.brand = brand
        self.config = config
        self.clock = clock
        self.worker_id = worker_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.queue = Queue(store, self.worker_id, config.lease_seconds)
        self.wakeup = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consecutive_failures = 0
        self.lease_margin = config.lease_seconds / 2 if lease_margin is None else lease_margin
        self._claimed: deque[OutboxRow] = deque()
        # An email the SMTP server accepted whose "sent" mark the store has not taken yet,
        # with the time it was accepted.
        self._unrecorded: tuple[OutboxRow, float] | None = None
        self._renders: OrderedDict[tuple[str, str], RenderedEmail] = OrderedDict()
        self._start_deadline = 0.0
        self.pruner = Pruner(
            store, retention or RetentionConfig(), state_retention, clock, self._stop.wait
        )

    # -- one step -------------------------------------------------------------------------

    def run_once(self) -> str | None:
        """Handles one due row, claiming a batch when none is left over from the last one;
        returns "sent", "retry", "failed", "fenced" (the row was claimed again by another
        worker meanwhile: it has it now) or None (idle).

        :raise StoreError: the store failed; an email already accepted by the SMTP server is
            then recorded by the next call, before anything else is sent.
        """
        if self._unrecorded is not None:
            return self._record_sent()
        row = self._next_row()
        if row is None:
            return None
        return self._deliver(row)

    def _next_row(self) -> OutboxRow | None:
        now = self.clock()
        if self._claimed and now > self._start_deadline:
            # Too little lease left to start them: claim them afresh.
            self.release_claimed()
        if not self._claimed:
            self._claimed.extend(self.queue.claim_batch(now, self.config.claim_batch))
            self._start_deadline = now + self.config.lease_seconds - self.lease_margin
        return self._claimed.popleft() if self._claimed else None

    def release_claimed(self) -> None:
        """Gives back the claimed rows not yet started (on shutdown or an expiring lease);
        a row whose lease has run out is free already and may be another worker's now."""
        now = self.clock()
        while self._claimed:
            row = self._claimed.popleft()
            if row.claim.lease_until > now:
                self.queue.release(row)

    def drain(self, limit: int = 10_000) -> dict[str, int]:
        """Handles due rows until none is due (or `limit`); returns outcome counts."""
        outcomes: dict[str, int] = {}
        for _ in range(limit):
            outcome = self.run_once()
            if outcome is None:
                break
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        self.release_claimed()
        return outcomes

    def _render(self, row: OutboxRow, request: EmailRequest) -> RenderedEmail:
        """The notification's email for this row's recipient: rendered once per role when
        the templates read the same for every recipient of a role (Renderer.same_per_role).
        The rows of one notification share its key and its stored request but for the
        address, and are claimed together, so the second recipient's email costs no render."""
        if not getattr(self.renderer, "same_per_role", False):
            return self.renderer.render(request)
        key = (row.notification_key, request.recipient.role)
        rendered = self._renders.get(key)
        if rendered is None:
            rendered = self._renders[key] = self.renderer.render(request)
            if len(self._renders) > RENDER_CACHE_SIZE:
                self._renders.popitem(last=False)
        return rendered

    def _deliver(self, row: OutboxRow) -> str:
        try:
            request = email_request(row.request, self.catalog)
            rendered = self._render(row, request)
            message = build_message(
                rendered,
                self.brand,
                row.recipient,
                row.message_id,
                row.thread_ids,
                datetime.fromtimestamp(self.clock(), UTC),
                tracking_headers(row),
            )
        except Exception as error:  # noqa: BLE001 - any render/build error is permanent
            log.error(
                "deliver email %d (%s %s): prepare message: %s",
                row.id,
                row.notification,
                row.phase,
                redacted(error, row.recipient),
            )
            return self._finished(
                self.queue.mark_failed(row, self.clock(), f"prepare message: {error}", None),
                "failed",
            )
        keeper = LeaseKeeper(self.queue, row, self.lease_margin, self.clock)
        try:
            self.sender.send(message, self.brand.sender_address, row.recipient, keeper.keep)
        except ClaimLost as lost:
            log.info("deliver email %d: not sent: %s", row.id, lost)
            return "fenced"
        except PermanentSendError as error:
            log.error(
                "deliver email %d: permanent failure: %s", row.id, redacted(error, row.recipient)
            )
            self._consecutive_failures = 0
            return self._finished(
                self.queue.mark_failed(row, self.clock(), str(error), "permanent"), "failed"
            )
        except SendError as error:
            return self._transient(row, error)
        self._consecutive_failures = 0
        self._unrecorded = (row, self.clock())
        return self._record_sent()

    def _record_sent(self) -> str:
        """Records the SMTP server's acceptance of the email in hand. When the store fails,
        the fact stays in hand and `run_once` records it before anything else is sent."""
        assert self._unrecorded is not None
        row, accepted_at = self._unrecorded
        try:
            recorded = self.queue.mark_sent(row, accepted_at, counters.LATENCY_BUCKETS)
        except StoreError as error:
            log.error(
                "deliver email %d: accepted by the SMTP server, but not recorded as sent yet "
                "(%s); recording it comes before any other email",
                row.id,
                error,
            )
            raise
        self._unrecorded = None
        return self._finished(recorded, "sent")

    @staticmethod
    def _finished(held: bool, outcome: str) -> str:
        """The outcome of a row's change: `outcome`, or "fenced" when another worker had
        claimed the row meanwhile (the change was refused, logged and counted)."""
        return outcome if held else "fenced"

    def _transient(self, row: OutboxRow, error: SendError) -> str:
        now = self.clock()
        attempts = row.attempts + 1
        self._consecutive_failures += 1
        too_old = now - row.queued_at >= self.config.max_age_seconds
        if attempts >= self.config.max_attempts or too_old:
            why = "too old" if too_old else f"{attempts} attempts"
            log.error(
                "deliver email %d: giving up (%s): %s", row.id, why, redacted(error, row.recipient)
            )
            return self._finished(
                self.queue.mark_failed(row, now, f"gave up after {why}: {error}", "transient"),
                "failed",
            )
        delay = backoff_delay(
            attempts, self.config.backoff_initial_seconds, self.config.backoff_max_seconds
        )
        log.warning(
            "deliver email %d: %s; retry in %.1fs", row.id, redacted(error, row.recipient), delay
        )
        return self._finished(self.queue.retry_later(row, now, now + delay, str(error)), "retry")

    # -- the thread -----------------------------------------------------------------------

    def idle_delay(self) -> float:
        """How long to wait before the next claim: the poll interval, or longer while the
        SMTP server keeps failing, so a down server does not burn every row's attempts."""
        if self._consecutive_failures:
            return backoff_delay(
                self._consecutive_failures,
                self.config.backoff_initial_seconds,
                self.config.backoff_max_seconds,
            )
        return self.config.poll_interval_seconds

    def _loop(self) -> None:
        try:
            self.store.tune_for_delivery()
        except StoreError as error:  # it still works, with an fsync per commit
            log.error("delivery: %s", error)
        while not self._stop.is_set():
            outcome: str | None = None
            try:
                outcome = self.run_once()
                self.pruner.prune_if_due()
            except StoreError as error:
                log.error("delivery: store: %s", error)
                outcome = None
            except Exception:  # noqa: BLE001 - the thread must survive any bug in one row
                log.exception("delivery: unexpected error")
                outcome = None
            if outcome in ("sent", "fenced") or (
                outcome == "failed" and not self._consecutive_failures
            ):
                continue  # more may be due right away
            delay = (
                self.idle_delay()
                if outcome in ("retry", "failed")
                else self.config.poll_interval_seconds
            )
            self.wakeup.wait(delay)
            self.wakeup.clear()
        if self._unrecorded is not None:
            try:
                self._record_sent()
            except StoreError:
                log.error(
                    "delivery stops with email %d accepted by the SMTP server but not recorded "
                    "as sent: it is sent again once its lease runs out",
                    self._unrecorded[0].id,
                )
        try:
            self.release_claimed()
        except StoreError as error:  # their lease expires; another worker sends them then
            log.error("delivery: give back claimed emails: %s", error)
        self.sender.close()

    def start(self) -> None:
        """Starts the delivery thread (a daemon: it never holds a process up)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="sysnotify-delivery", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
