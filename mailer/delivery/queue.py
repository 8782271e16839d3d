"""The delivery side of the outbox: claim rows under a lease, extend it while sending, then mark
them sent, retried or failed, through the store (sysnotify.mailer.store).

Each change names the claim the row was taken under (`OutboxRow.claim`). When the row was
claimed again since (this thread's lease ran out while it was stalled), the change is fenced
off: the store leaves the row to its new holder and counts it, and the queue logs it here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sysnotify.mailer import counters
from sysnotify.mailer.store import OutboxRow, Store

log = logging.getLogger("gunicorn.error")


def _fenced_off(row: OutboxRow, change: str) -> None:
    log.warning(
        "email %d: %s fenced off: it was claimed again after this thread's lease ran out "
        "(claim %s/%d); its new holder delivers it",
        row.id,
        change,
        row.claim.worker_id,
        row.claim.generation,
    )


class Queue:
    """One delivery thread's view of the outbox: its claims carry `worker_id`."""

    def __init__(self, store: Store, worker_id: str, lease_seconds: float) -> None:
        self.store = store
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds

    def claim(self, now: float) -> OutboxRow | None:
        """Atomically takes the next due row (unclaimed, or with an expired lease)."""
        rows = self.claim_batch(now, 1)
        return rows[0] if rows else None

    def claim_batch(self, now: float, limit: int) -> list[OutboxRow]:
        """Atomically takes up to `limit` due rows, oldest first, under one lease: one
        transaction for many emails instead of one each."""
        return self.store.claim_batch(self.worker_id, now, now + self.lease_seconds, limit)

    def extend(self, row: OutboxRow, now: float) -> float | None:
        """Renews the row's lease from `now`; returns its new end, or None when fenced off."""
        lease_until = now + self.lease_seconds
        if self.store.extend_lease(row, lease_until):
            return lease_until
        _fenced_off(row, "lease extension")
        return None

    def mark_sent(self, row: OutboxRow, now: float, latency_buckets: Sequence[float]) -> bool:
        """Records SMTP acceptance at `now`, the sent counter and the latency, in one
        transaction; False when fenced off."""
        latency = max(0.0, now - row.received_at)
        if self.store.mark_sent(
            row,
            now,
            (
                (counters.EMAILS_SENT, row.notification, 1),
                (
                    counters.LATENCY_IN_BUCKET,
                    counters.latency_bucket_label(latency, latency_buckets),
                    1,
                ),
                (counters.LATENCY_SUM, "", latency),
                (counters.LATENCY_COUNT, "", 1),
            ),
        ):
            return True
        log.error(
            'email %d: accepted by the SMTP server, but its "sent" mark was fenced off: it '
            "was claimed again after this thread's lease ran out (claim %s/%d), and its new "
            "holder may send it a second time",
            row.id,
            row.claim.worker_id,
            row.claim.generation,
        )
        return False

    def retry_later(self, row: OutboxRow, now: float, next_attempt_at: float, error: str) -> bool:
        """Counts a failed attempt; the row is due again at `next_attempt_at`."""
        if self.store.retry_later(row, next_attempt_at, error):
            return True
        _fenced_off(row, "retry")
        return False

    def release(self, row: OutboxRow) -> bool:
        """Gives a claimed row back untouched (e.g. on shutdown before sending)."""
        if self.store.release(row):
            return True
        _fenced_off(row, "release")
        return False

    def mark_failed(self, row: OutboxRow, now: float, error: str, smtp_kind: str | None) -> bool:
        """Gives up on a row; `smtp_kind` counts the last SMTP attempt (None: not an SMTP error)."""
        if self.store.mark_failed(row, now, error, smtp_kind):
            return True
        _fenced_off(row, "failure")
        return False


def tracking_headers(row: OutboxRow) -> dict[str, str]:
    """X-Sysnotify-* headers that let tools and tests identify an email without parsing its
    wording: the notification (`operators` for the pipeline's own alerts), phase and account."""
    if row.request.get("audience") == "operator":
        return {"X-Sysnotify-Notification": "operators", "X-Sysnotify-Phase": row.phase}
    return {
        "X-Sysnotify-Notification": row.notification,
        "X-Sysnotify-Phase": row.phase,
        "X-Sysnotify-Account": row.request.get("account", ""),
    }
