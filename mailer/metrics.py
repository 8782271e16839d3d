"""The mailer's /metrics: a custom collector reading the counters and outbox from the store.

Counters live in the store (updated in the same transaction as what they count; the webhook's
non-2xx answers in batches every few seconds, see sysnotify.mailer.deferred_counters), so
every gunicorn worker exposes the same totals and they survive restarts; no multiprocess mode
is needed. Sample lines:

    sysnotify_mailer_emails_sent_total{notification="credential_expired"} 3.0
    sysnotify_mailer_outbox_pending_emails 0.0
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sysnotify.mailer import counters
from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.store import Store, StoreError

log = logging.getLogger("gunicorn.error")

# (counter name, metric name without _total, HELP, label name, label values always shown)
_COUNTERS = (
    (
        counters.WEBHOOK_REQUESTS,
        "sysnotify_mailer_webhook_requests",
        "Webhook answers by HTTP status.",
        "code",
        (),
    ),
    (
        counters.NOTIFICATIONS_RECEIVED,
        "sysnotify_mailer_notifications_received",
        "Alerts received in webhook payloads.",
        "notification",
        None,
    ),
    (
        counters.NOTIFICATIONS_DEDUPLICATED,
        "sysnotify_mailer_notifications_deduplicated",
        "Alerts that were re-deliveries and sent nothing.",
        "notification",
        None,
    ),
    (
        counters.EMAILS_QUEUED,
        "sysnotify_mailer_emails_queued",
        "Emails written to the outbox.",
        "notification",
        None,
    ),
    (
        counters.EMAILS_SENT,
        "sysnotify_mailer_emails_sent",
        "Emails accepted by the SMTP server.",
        "notification",
        None,
    ),
    (
        counters.EMAILS_FAILED,
        "sysnotify_mailer_emails_failed",
        "Emails given up on (permanent SMTP failure or attempts exhausted).",
        "notification",
        None,
    ),
    (
        counters.EMAILS_UNDELIVERABLE,
        "sysnotify_mailer_emails_undeliverable",
        "Notifications for an account with no recipients.",
        "notification",
        None,
    ),
    (
        counters.SMTP_ERRORS,
        "sysnotify_mailer_smtp_errors",
        "Failed SMTP attempts.",
        "kind",
        ("transient", "permanent"),
    ),
    (
        counters.TRUNCATED_ALERTS,
        "sysnotify_mailer_truncated_alerts",
        "Alerts Alertmanager left out of accepted webhooks (max_alerts); they get no email.",
        "webhook",
        ("customer", "operator"),
    ),
    (
        counters.DELIVERY_FENCED,
        "sysnotify_mailer_delivery_fenced",
        "Outbox changes refused because another delivery thread claimed the email since "
        "(action sent: accepted by SMTP, possibly sent twice).",
        "action",
        counters.FENCED_ACTIONS,
    ),
)


class MailerCollector(Collector):
    """Yields fresh metric families from one consistent read of the store per scrape."""

    def __init__(self, store: Store, catalog: Catalog) -> None:
        self.store = store
        self.catalog = catalog

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self.store.metrics()
        except StoreError as error:
            # A scrape never fails because of the store; the families are just absent.
            log.error("metrics: read store: %s", error)
            return
        values = snapshot.counters
        notification_names = tuple(kind.name for kind in self.catalog.kinds())
        for counter, metric, doc, label_name, always in _COUNTERS:
            family = CounterMetricFamily(metric, doc, labels=[label_name])
            shown = dict.fromkeys(notification_names if always is None else always, 0.0)
            shown.update(values.get(counter, {}))
            for label, value in sorted(shown.items()):
                family.add_metric([label], value)
            yield family

        yield GaugeMetricFamily(
            "sysnotify_mailer_outbox_pending_emails",
            "Emails waiting to be sent.",
            value=snapshot.pending_emails,
        )
        oldest = GaugeMetricFamily(
            "sysnotify_mailer_outbox_oldest_pending_timestamp_seconds",
            "When the oldest waiting email was queued.",
        )
        if snapshot.oldest_pending_queued_at is not None:
            oldest.add_metric([], snapshot.oldest_pending_queued_at)
        yield oldest

        cumulative = values.get(counters.LATENCY_BUCKET, {})
        per_bucket = values.get(counters.LATENCY_IN_BUCKET, {})
        buckets, running = [], 0.0
        for label in [repr(float(bound)) for bound in counters.LATENCY_BUCKETS] + ["+Inf"]:
            running += per_bucket.get(label, 0.0)
            buckets.append((label, cumulative.get(label, 0.0) + running))
        yield HistogramMetricFamily(
            "sysnotify_mailer_delivery_latency_seconds",
            "Time from webhook received to SMTP accepted.",
            buckets=buckets,
            sum_value=values.get(counters.LATENCY_SUM, {}).get("", 0.0),
        )


def registry_for(store: Store, catalog: Catalog) -> CollectorRegistry:
    """A registry with only the mailer's collector (no process/platform collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MailerCollector(store, catalog))
    return registry
