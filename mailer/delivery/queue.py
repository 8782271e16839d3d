"""The delivery side of the outbox: claim rows under a lease, then mark them sent, retried or
failed, through the store (sysnotify.mailer.store)."""

from __future__ import annotations

from collections.abc import Sequence

from sysnotify.mailer import counters
from sysnotify.mailer.store import OutboxRow, Store


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

    def mark_sent(self, row: OutboxRow, now: float, latency_buckets: Sequence[float]) -> bool:
        """Records SMTP acceptance, the sent counter and the latency, in one transaction."""
        latency = max(0.0, now - row.received_at)
        return self.store.mark_sent(
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
        )

    def retry_later(self, row: OutboxRow, now: float, next_attempt_at: float, error: str) -> None:
        self.store.retry_later(row, next_attempt_at, error)

    def release(self, row: OutboxRow) -> None:
        """Gives a claimed row back untouched (e.g. on shutdown before sending)."""
        self.store.release(row, self.worker_id)

    def mark_failed(self, row: OutboxRow, now: float, error: str, smtp_kind: str | None) -> None:
        """Gives up on a row; `smtp_kind` counts the last SMTP attempt (None: not an SMTP error)."""
        self.store.mark_failed(row, now, error, smtp_kind)


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
