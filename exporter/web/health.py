"""The landing page, /healthz and /metrics."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import generate_latest

from sysnotify.exporter.exposition import CONTENT_TYPE
from sysnotify.exporter.web.responses import json_response
from sysnotify.exporter.web.state import exporter_of
from sysnotify.sqlite import StoreError

bp = Blueprint("health", __name__)

LANDING = """<!doctype html>
<html><head><title>sysnotify exporter</title></head><body>
<h1>sysnotify exporter</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a> &middot;
POST /api/v1/events (bearer token)</p>
</body></html>
"""


@bp.get("/")
def index() -> Response:
    return Response(LANDING, mimetype="text/html")


@bp.get("/healthz")
def healthz() -> Response:
    """200 while the fact store answers, 503 with the store's error when it does not."""
    try:
        exporter_of().store.check()
    except StoreError as error:
        return json_response(503, {"status": "unavailable", "error": str(error)})
    return json_response(200, {"status": "ok"})


@bp.get("/metrics")
def metrics() -> Response:
    """The store-derived families (from the exposition cache), then the exporter's own."""
    exporter = exporter_of()
    body = exporter.cache.render() + generate_latest(exporter.registry)
    return Response(body, status=200, content_type=CONTENT_TYPE)
