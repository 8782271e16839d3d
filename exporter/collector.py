"""prometheus_client collectors: the store's families, and the exporter's own metrics.

:class:`StoreCollector` is the ordinary custom-collector path: each ``collect()`` reads the
store and yields fresh ``GaugeMetricFamily`` objects.
:class:`sysnotify.exporter.exposition.ExpositionCache` produces the same bytes faster for
/metrics; the tests hold the two to byte equality, and the benchmark compares them.
:class:`SelfCollector` yields the small per-process part that /metrics produces fresh on every
scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from sysnotify.exporter.events import EVENT_TYPES
from sysnotify.exporter.exposition import samples_or_skip
from sysnotify.exporter.series import FAMILIES, GLOBAL_FAMILIES, utc_day
from sysnotify.exporter.store import FactStore

log = logging.getLogger(__name__)

REJECT_REASONS = ("auth", "malformed", "too_large", "invalid")


class IngestStats:
    """In-process ingest counters (reset when the process restarts, like any counter)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ingested = dict.fromkeys(EVENT_TYPES, 0)
        self.events_rejected = 0
        self.batches_rejected = dict.fromkeys(REJECT_REASONS, 0)

    def applied(self, by_type: dict[str, int]) -> None:
        with self._lock:
            for kind, count in by_type.items():
                self.ingested[kind] += count

    def rejected(self, reason: str, events: int = 0) -> None:
        with self._lock:
            self.batches_rejected[reason] += 1
            self.events_rejected += events

    def snapshot(self) -> tuple[dict[str, int], int, dict[str, int]]:
        with self._lock:
            return dict(self.ingested), self.events_rejected, dict(self.batches_rejected)


class StoreCollector(Collector):
    """Every store-derived family, read from the store on each collect(); an account whose
    facts cannot be published is left out and counted, as in the exposition cache.

    E.g. ``abm_sync_running{account="acc-0042"} 1.0``.
    """

    def __init__(
        self,
        store: FactStore,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[GaugeMetricFamily]:
        # No collect() at registration: it would read the whole store.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        facts = self.store.facts(utc_day(now))
        families = [GaugeMetricFamily(f.name, f.help, labels=f.labels) for f in FAMILIES]
        skipped = 0
        for account in sorted(facts):
            samples = samples_or_skip(facts[account], now)
            if samples is None:
                skipped += 1
                continue
            for index, labels, value in samples:
                families[index].add_metric(labels, value)
        yield from families
        accounts, skipped_family, last_event = GLOBAL_FAMILIES
        yield GaugeMetricFamily(accounts.name, accounts.help, value=len(facts))
        yield GaugeMetricFamily(skipped_family.name, skipped_family.help, value=skipped)
        last = self.store.last_event_at()
        family = GaugeMetricFamily(last_event.name, last_event.help, labels=())
        if last is not None:
            family.add_metric((), last)
        yield family


class SelfCollector(Collector):
    """The exporter's per-process metrics, fresh on each collect().

    E.g. ``sysnotify_exporter_events_ingested_total{type="web_visits"} 1000.0``.
    """

    def __init__(
        self,
        stats: IngestStats,
        status: Callable[[], tuple[bool, float]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`status` returns (store readable, seconds the last store collection took)."""
        self.stats = stats
        self.status = status
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        ingested, events_rejected, batches_rejected = self.stats.snapshot()
        family = CounterMetricFamily(
            "sysnotify_exporter_events_ingested",
            "Events applied to the fact store, by event type.",
            labels=("type",),
        )
        for kind, count in ingested.items():
            family.add_metric((kind,), count)
        yield family
        yield CounterMetricFamily(
            "sysnotify_exporter_events_rejected",
            "Events in rejected batches.",
            value=events_rejected,
        )
        family = CounterMetricFamily(
            "sysnotify_exporter_batches_rejected",
            "Rejected ingest requests, by reason.",
            labels=("reason",),
        )
        for reason, count in batches_rejected.items():
            family.add_metric((reason,), count)
        yield family
        up, duration = self.status()
        yield GaugeMetricFamily(
            "sysnotify_exporter_store_up",
            "Whether the fact store could be read for this scrape.",
            value=1 if up else 0,
        )
        yield GaugeMetricFamily(
            "sysnotify_exporter_collect_duration_seconds",
            "Time the last collection of the store-derived metrics took.",
            value=duration,
        )
