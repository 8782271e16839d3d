"""The objects one exporter app works with, kept together in `app.extensions`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app
from prometheus_client import CollectorRegistry

from sysnotify.exporter.collector import IngestStats
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.exposition import ExpositionCache
from sysnotify.exporter.retention import prune
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store import FactStore

log = logging.getLogger("gunicorn.error")

EXTENSION = "sysnotify_exporter"


@dataclass
class ExporterState:
    """Everything a request needs: one store, its exposition cache (per process, hence one
    gunicorn worker) and the exporter's own metrics."""

    config: ExporterConfig
    store: FactStore
    cache: ExpositionCache
    stats: IngestStats
    registry: CollectorRegistry  # the exporter's own metrics (SelfCollector)
    clock: Callable[[], float]
    pruned_day: int | None = None
    pruning: threading.Thread | None = None  # the latest daily prune
    _prune_lock: threading.Lock = field(default_factory=threading.Lock)

    def prune_once_a_day(self) -> None:
        """Starts the day's prune (sysnotify.exporter.retention) at the first applied batch of
        each UTC day, in a thread of its own: the batch is answered without waiting for it.
        """
        now = self.clock()
        with self._prune_lock:
            if self.pruned_day == utc_day(now):
                return
            self.pruned_day = utc_day(now)
            if self.pruning is not None and self.pruning.is_alive():
                return  # yesterday's is still going; a day's worth more waits for tomorrow's
            thread = self.pruning = threading.Thread(
                target=self._prune, args=(now,), name="sysnotify-exporter-prune", daemon=True
            )
        thread.start()

    def _prune(self, now: float) -> None:
        """A failure is logged, not raised: the next day's prune goes on where this one
        stopped."""
        try:
            prune(self.store, self.config, now)
        except Exception:  # noqa: BLE001 - a thread of its own: nobody else would see it
            log.exception("pruning old facts failed")


def exporter_of(app: Flask | None = None) -> ExporterState:
    """The ExporterState of `app`, by default of the app handling the current request."""
    state = (current_app if app is None else app).extensions[EXTENSION]
    if not isinstance(state, ExporterState):
        raise TypeError(f"app.extensions[{EXTENSION!r}] is not an ExporterState")
    return state
