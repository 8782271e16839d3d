"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sysnotify.mailer.store import StoreError
from sysnotify.mailer.web.context import current_mailer

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """The process is up and serving."""
    return jsonify({"status": "ok"}), 200


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready when the store accepts a write and the SMTP settings are usable.

    SMTP reachability is not required: the outbox keeps emails while the server is down,
    so the webhook can (and should) keep accepting.
    """
    mailer = current_mailer()
    problems = []
    try:
        # A write proves the disk is writable (not read-only, not full for this page).
        mailer.store.probe_write()
    except StoreError as error:
        problems.append(f"store: {error}")
    smtp = mailer.config.smtp
    if not smtp.host or not (0 < smtp.port < 65536):
        problems.append("smtp: host and port must be set")
    if smtp.username and not smtp.password:
        problems.append("smtp: username without password")
    if problems:
        return jsonify({"status": "unavailable", "problems": problems}), 503
    return jsonify({"status": "ok"}), 200


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition of the sysnotify_mailer_* metrics, read from the store."""
    registry = current_mailer().registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
