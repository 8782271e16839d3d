"""The exporter's HTTP interface: the ingest API, /metrics, /healthz.

``create_app()`` builds one Flask app around one :class:`sysnotify.exporter.store.Store`, one
:class:`sysnotify.exporter.exposition.ExpositionCache` and the per-process ingest counters. It is served
by gunicorn with one worker (the cache is per process); see :mod:`sysnotify.exporter.server`.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, generate_latest

from sysnotify.exporter.collector import IngestStats, SelfCollector
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.events import validate_events
from sysnotify.exporter.exposition import CONTENT_TYPE, ExpositionCache
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store import BatchRejected, Store

log = logging.getLogger("gunicorn.error")

LANDING = """<!doctype html>
<html><head><title>sysnotify exporter</title></head><body>
<h1>sysnotify exporter</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a> &middot;
POST /api/v1/events (bearer token)</p>
</body></html>
"""


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers=headers)


def create_app(config: ExporterConfig, store: Store | None = None,
               clock: Callable[[], float] = time.time) -> Flask:
    """The exporter app; `store` and `clock` are injectable for tests."""
    if store is None:
        if config.db is None:
            raise ValueError("config.db is required when no store is given")
        store = Store(config.db)
    app = Flask(__name__)
    stats = IngestStats()
    cache = ExpositionCache(store, clock)
    registry = CollectorRegistry()
    SelfCollector(stats, lambda: (cache.store_up, cache.last_duration), registry=registry)
    token = (config.ingest_token or "").encode()
    pruned_day: list[int] = []
    app.extensions["sysnotify_exporter"] = {"store": store, "cache": cache, "stats": stats}

    def unauthorized(error: str | None) -> Response:
        stats.rejected("auth")
        challenge = 'Bearer realm="sysnotify-exporter"'
        if error:
            challenge += f', error="{error}"'
        return _json(401, {"error": "a valid bearer token is required"},
                     {"WWW-Authenticate": challenge})

    def bad_request(message: str) -> Response:
        stats.rejected("malformed")
        return _json(400, {"error": message})

    def too_large() -> Response:
        stats.rejected("too_large")
        return _json(413, {"error": f"request body over {config.max_body_bytes} bytes"})

    @app.post("/api/v1/events")
    def ingest() -> Response:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return unauthorized(None if not header else "invalid_request")
        # Constant-time, and false for every token when none is configured.
        if not token or not hmac.compare_digest(given.strip().encode(), token):
            return unauthorized("invalid_token")
        length = request.content_length
        if length is not None and length > config.max_body_bytes:
            return too_large()
        if request.mimetype != "application/json":
            stats.rejected("malformed")
            return _json(415, {"error": "Content-Type must be application/json"})
        body = request.stream.read(config.max_body_bytes + 1)
        if len(body) > config.max_body_bytes:
            return too_large()
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            return bad_request(f"body is not valid JSON: {error}")
        except RecursionError:  # json.loads recurses per level: '[' * 5000 is a 400, not a 500
            return bad_request("body is not valid JSON: nested too deeply")
        if not isinstance(payload, dict):
            return bad_request('body must be a JSON object: {"events": [...]}')
        objs = payload.get("events")
        if not isinstance(objs, list):
            return bad_request('"events" must be a list of event objects')
        events, errors = validate_events(objs)
        try:
            if errors:
                raise BatchRejected(errors)
            result = store.apply(events)
        except BatchRejected as rejected:
            stats.rejected("invalid", len(objs))
            return _json(422, {"error": f"{len(rejected.errors)} problem(s); nothing applied",
                               "errors": [e.as_dict() for e in rejected.errors]})
        except sqlite3.Error:
            log.exception("applying a batch of %d events failed", len(events))
            return _json(503, {"error": "the fact store is unavailable; retry later"},
                         {"Retry-After": "5"})
        cache.note_applied(result)
        stats.applied(result.by_type)
        maybe_prune()
        return _json(200, {"applied": result.applied, "by_type": result.by_type,
                           "version": result.version})

    def maybe_prune() -> None:
        today = utc_day(clock())
        if pruned_day and pruned_day[0] == today:
            return
        pruned_day[:] = [today]
        try:
            store.prune(today - config.retention_days)
        except sqlite3.Error:
            log.exception("pruning old facts failed")

    @app.get("/metrics")
    def metrics() -> Response:
        body = cache.render() + generate_latest(registry)
        return Response(body, status=200, content_type=CONTENT_TYPE)

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            store.check()
        except sqlite3.Error as error:
            return _json(503, {"status": "unavailable", "error": str(error)})
        return _json(200, {"status": "ok"})

    @app.get("/")
    def index() -> Response:
        return Response(LANDING, mimetype="text/html")

    @app.errorhandler(404)
    @app.errorhandler(405)
    def http_error(error: Any) -> Response:
        return _json(error.code, {"error": error.name})

    return app
