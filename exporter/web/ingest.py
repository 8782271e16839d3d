"""`POST /api/v1/events`: a batch of platform facts, validated whole and applied all or nothing.

Every rejection is counted by reason (IngestStats: auth, malformed, too_large, invalid); a store
error is a 503 with Retry-After, so the platform's sender retries instead of dropping facts.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, request

from sysnotify.auth import BearerCheck, check_bearer_token
from sysnotify.exporter.collector import IngestStats
from sysnotify.exporter.events import validate_events
from sysnotify.exporter.store import BatchRejected
from sysnotify.exporter.web.responses import json_response
from sysnotify.exporter.web.state import exporter_of
from sysnotify.sqlite import StoreError

log = logging.getLogger("gunicorn.error")

bp = Blueprint("ingest", __name__)

CHALLENGE = 'Bearer realm="sysnotify-exporter"'


@bp.post("/api/v1/events")
def ingest() -> Response:
    """Applies `{"events": [...]}` and answers what was applied, or why nothing was."""
    exporter = exporter_of()
    config, stats = exporter.config, exporter.stats
    check = check_bearer_token(config.ingest_token)
    if check is not BearerCheck.MATCH:
        return _unauthorized(stats, check.challenge_error)
    length = request.content_length
    if length is not None and length > config.max_body_bytes:
        return _too_large(stats, config.max_body_bytes)
    if request.mimetype != "application/json":
        stats.rejected("malformed")
        return json_response(415, {"error": "Content-Type must be application/json"})
    body = request.stream.read(config.max_body_bytes + 1)
    if len(body) > config.max_body_bytes:
        return _too_large(stats, config.max_body_bytes)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return _bad_request(stats, f"body is not valid JSON: {error}")
    except RecursionError:  # json.loads recurses per level: '[' * 5000 is a 400, not a 500
        return _bad_request(stats, "body is not valid JSON: nested too deeply")
    if not isinstance(payload, dict):
        return _bad_request(stats, 'body must be a JSON object: {"events": [...]}')
    objs = payload.get("events")
    if not isinstance(objs, list):
        return _bad_request(stats, '"events" must be a list of event objects')
    events, errors = validate_events(objs, config.event_window(exporter.clock()))
    try:
        if errors:
            raise BatchRejected(errors)
        result = exporter.store.apply(events)
    except BatchRejected as rejected:
        stats.rejected("invalid", len(objs))
        return json_response(
            422,
            {
                "error": f"{len(rejected.errors)} problem(s); nothing applied",
                "errors": [e.as_dict() for e in rejected.errors],
            },
        )
    except StoreError:
        log.exception("applying a batch of %d events failed", len(events))
        return json_response(
            503, {"error": "the fact store is unavailable; retry later"}, {"Retry-After": "5"}
        )
    exporter.cache.note_applied(result)
    stats.applied(result.by_type)
    exporter.prune_once_a_day()
    return json_response(
        200, {"applied": result.applied, "by_type": result.by_type, "version": result.version}
    )


def _unauthorized(stats: IngestStats, error: str | None) -> Response:
    stats.rejected("auth")
    challenge = CHALLENGE if error is None else f'{CHALLENGE}, error="{error}"'
    return json_response(
        401, {"error": "a valid bearer token is required"}, {"WWW-Authenticate": challenge}
    )


def _bad_request(stats: IngestStats, message: str) -> Response:
    stats.rejected("malformed")
    return json_response(400, {"error": message})


def _too_large(stats: IngestStats, limit: int) -> Response:
    stats.rejected("too_large")
    return json_response(413, {"error": f"request body over {limit} bytes"})
