"""The exporter's app factory: the ingest API, /metrics, /healthz.

``create_app()`` builds one Flask app around one :class:`sysnotify.exporter.store.FactStore`, one
:class:`sysnotify.exporter.exposition.ExpositionCache` and the per-process ingest counters, kept
in one :class:`sysnotify.exporter.web.state.ExporterState` that views reach through
``exporter_of()``. It is served by gunicorn with one worker (the cache is per process); see
:mod:`sysnotify.exporter.server`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from sysnotify.exporter.collector import IngestStats, SelfCollector
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.exposition import ExpositionCache
from sysnotify.exporter.store import FactStore
from sysnotify.exporter.store.backends import open_fact_store
from sysnotify.exporter.web import health, ingest
from sysnotify.exporter.web.responses import json_response
from sysnotify.exporter.web.state import EXTENSION, ExporterState

log = logging.getLogger("gunicorn.error")


def create_app(
    config: ExporterConfig, store: FactStore | None = None, clock: Callable[[], float] = time.time
) -> Flask:
    """The exporter app; `store` and `clock` are injectable for tests.

    :raise ValueError: when neither `store` nor `config.db` is given.
    """
    if store is None:
        if config.db is None:
            raise ValueError("config.db is required when no store is given")
        store = open_fact_store(config.db)
    app = Flask(__name__)
    stats = IngestStats()
    cache = ExpositionCache(store, clock)
    registry = CollectorRegistry()
    SelfCollector(stats, lambda: (cache.store_up, cache.last_duration), registry=registry)
    app.extensions[EXTENSION] = ExporterState(
        config=config, store=store, cache=cache, stats=stats, registry=registry, clock=clock
    )
    app.register_blueprint(ingest.bp)
    app.register_blueprint(health.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    return app


def _http_error(error: HTTPException) -> Response:
    """Every HTTP error (unknown paths and methods included) answers JSON like the API does,
    with the error's own headers (such as Allow)."""
    headers = {name: value for name, value in error.get_headers() if name != "Content-Type"}
    return json_response(error.code or 500, {"error": error.name}, headers)


def _internal_error(error: Exception) -> Response:
    """A bug answers a JSON 500, never Flask's HTML page, and is logged with its traceback.

    The ingest API applies a batch in one transaction, so a 500 has applied nothing, and the
    platform's sender may retry it like a 503.
    """
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return json_response(500, {"error": "internal server error"})
