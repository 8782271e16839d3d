"""The objects one exporter app works with, kept together in `app.extensions`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from prometheus_client import CollectorRegistry

from sysnotify.exporter.collector import IngestStats
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.exposition import ExpositionCache
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store import FactStore
from sysnotify.sqlite import StoreError

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

    def prune_once_a_day(self) -> None:
        """Drops facts older than `retention_days`, at the first applied batch of each UTC day.

        A failure is logged, not raised: the batch is already applied and answered as such.
        """
        today = utc_day(self.clock())
        if self.pruned_day == today:
            return
        self.pruned_day = today
        try:
            self.store.prune(today - self.config.retention_days)
        except StoreError:
            log.exception("pruning old facts failed")


def exporter_of(app: Flask | None = None) -> ExporterState:
    """The ExporterState of `app`, by default of the app handling the current request."""
    state = (current_app if app is None else app).extensions[EXTENSION]
    if not isinstance(state, ExporterState):
        raise TypeError(f"app.extensions[{EXTENSION!r}] is not an ExporterState")
    return state
