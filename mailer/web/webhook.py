"""The Alertmanager webhooks: customer notifications and operator alerts.

A view only authenticates, decodes, stores (sysnotify.mailer.intake.transaction) and maps the
outcome to HTTP, following Alertmanager's retry rules: 2xx once stored; 5xx only when storing failed
(Alertmanager retries 5xx); 4xx for a request it must not retry (bad token, bad JSON,
oversize, wrong shape). Every answer is counted by status code: a 200 in the intake's own
transaction, any other answer in memory, added to the store in batches
(sysnotify.mailer.deferred_counters), so a refused request writes nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from sysnotify.auth import bearer_token_matches
from sysnotify.mailer import counters
from sysnotify.mailer.intake.decide import Audience
from sysnotify.mailer.intake.payload import PayloadError, parse
from sysnotify.mailer.store import StoreError
from sysnotify.mailer.web.context import current_deferred_counters, current_mailer

bp = Blueprint("webhook", __name__)


def count_answer(code: int) -> None:
    """Counts a non-2xx answer in memory: no write for a request anyone can send, and a 503
    is counted even while the store is what fails."""
    current_deferred_counters().add(counters.WEBHOOK_REQUESTS, str(code))


def _error(code: int, message: str, **details: Any) -> tuple[Response, int]:
    count_answer(code)
    return jsonify({"status": "error", "error": message, **details}), code


def _handle(audience: Audience) -> tuple[Response, int]:
    received_at = time.time()
    mailer = current_mailer()
    if not bearer_token_matches(mailer.config.webhook.token):
        return _error(401, "missing or wrong bearer token")
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _error(413, f"payload larger than {mailer.config.webhook.max_body_bytes} bytes")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return _error(400, f"malformed JSON: {error}")
    except RecursionError:
        # json.loads recurses per nesting level: '[' * 5000 must be refused, not crash to 500.
        return _error(400, "malformed JSON: nested too deeply")
    try:
        data = parse(body)
    except PayloadError as error:
        return _error(
            422, "payload is not an Alertmanager webhook (version 4)", problems=error.problems
        )
    try:
        result = mailer.intake.accept(data, audience, received_at=mailer.clock())
    except StoreError as error:
        current_app.logger.error(
            "webhook %s group %s: store: %s", data.receiver, data.group_key, error
        )
        return _error(503, "could not store the notification; retry later")
    mailer.wake_delivery()
    # The idempotency key is the same for every retry and HA peer copy of one notification,
    # so the log shows re-deliveries at a glance.
    current_app.logger.info(
        "webhook %s: receiver=%s key=%s alerts=%d queued=%d undeliverable=%d deduplicated=%d "
        "in %.1fms",
        audience,
        data.receiver,
        data.idempotency_key()[:16],
        len(data.alerts),
        result.queued,
        result.undeliverable,
        result.deduplicated,
        (time.time() - received_at) * 1000,
    )
    return jsonify({"status": "ok", **result.as_dict()}), 200


@bp.post("/alertmanager/webhook")
def alertmanager_webhook() -> tuple[Response, int]:
    """Customer notifications: emails go to each account's registered recipients."""
    return _handle("customer")


@bp.post("/operators/webhook")
def operators_webhook() -> tuple[Response, int]:
    """Operator alerts about the pipeline: emails go only to `operators.addresses`."""
    return _handle("operator")
