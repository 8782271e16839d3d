"""Names of the counters kept in the store's `counters` table.

Each maps to one `sysnotify_mailer_*` metric (docs/contracts.md); the `label` column holds the
metric's single label value (notification, code or kind), or the bucket bound for the latency
histogram. They are updated in the same transaction as the state change they count, except
the webhook's non-2xx answers, which change no state: those are counted in memory and added in
batches (sysnotify.mailer.deferred_counters).
"""

from __future__ import annotations

from collections.abc import Sequence

WEBHOOK_REQUESTS = "webhook_requests"  # label: HTTP status code
NOTIFICATIONS_RECEIVED = "notifications_received"  # label: notification
NOTIFICATIONS_DEDUPLICATED = "notifications_deduplicated"
EMAILS_QUEUED = "emails_queued"
EMAILS_SENT = "emails_sent"
EMAILS_FAILED = "emails_failed"
EMAILS_UNDELIVERABLE = "emails_undeliverable"
SMTP_ERRORS = "smtp_errors"  # label: transient or permanent
# Alerts Alertmanager left out of an accepted webhook (`truncatedAlerts`, from `max_alerts`);
# label: the webhook it came to, customer (/alertmanager/webhook) or operator
# (/operators/webhook). Not "audience": alert rules set that label for routing.
TRUNCATED_ALERTS = "truncated_alerts"
# A delivery thread's change of an outbox row refused because the row was claimed again since
# the thread's own claim (its lease ran out while it was stalled); label: the action.
DELIVERY_FENCED = "delivery_fenced"
FENCED_ACTIONS = ("extend", "failed", "release", "retry", "sent")
# The latency histogram's buckets. Each delivery adds 1 to the one bucket its latency falls
# in (label: that bucket's upper bound, the repr of a float, or +Inf); /metrics sums them into
# Prometheus's cumulative buckets. One row per delivery instead of thirteen keeps the "sent"
# transaction short. LATENCY_BUCKET holds cumulative counts written by older mailers: they
# are added as they are.
LATENCY_IN_BUCKET = "delivery_latency_in_bucket"
LATENCY_BUCKET = "delivery_latency_bucket"
LATENCY_SUM = "delivery_latency_sum"
LATENCY_COUNT = "delivery_latency_count"

# Bucket bounds of the delivery latency histogram, in seconds (received → SMTP accepted).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)


def latency_bucket_label(latency: float, bounds: Sequence[float]) -> str:
    """The label of the one bucket that `latency` falls in: the smallest bound >= it."""
    for bound in bounds:
        if latency <= bound:
            return repr(float(bound))
    return "+Inf"
