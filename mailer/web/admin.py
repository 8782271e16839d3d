"""The admin API: recipients per account, lifecycle (integrations disconnected, accounts
offboarded), undeliverable notifications, failed emails.

Protected by its own bearer token (SYSNOTIFY_ADMIN_TOKEN); without one configured the API
answers 403 to everything, so it is never open by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sysnotify.auth import bearer_token_matches
from sysnotify.mailer.lifecycle import LifecycleError, LifecycleResult
from sysnotify.mailer.recipients import NotFound, RecipientError, Registry
from sysnotify.mailer.web.context import current_mailer

bp = Blueprint("admin", __name__, url_prefix="/api/v1")


def _registry() -> Registry:
    return current_mailer().registry_api


def _fail(code: int, message: str) -> tuple[Response, int]:
    return jsonify({"status": "error", "error": message}), code


@bp.before_request
def require_admin_token() -> tuple[Response, int] | None:
    token = current_mailer().config.admin.token
    if not token:
        return _fail(403, "the admin API is disabled: set SYSNOTIFY_ADMIN_TOKEN")
    if not bearer_token_matches(token):
        return _fail(401, "missing or wrong bearer token")
    return None


def _json_body() -> dict[str, Any]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than json.loads can recurse: not a valid body
        body = None
    if not isinstance(body, dict):
        abort(400, description="the body must be a JSON object")
    return body


@bp.get("/accounts/<account>/recipients")
def list_recipients(account: str) -> tuple[Response, int]:
    """The account's recipients, primary first."""
    try:
        recipients = _registry().list(account)
    except RecipientError as error:
        return _fail(400, str(error))
    return jsonify({"account": account, "recipients": [r.as_dict() for r in recipients]}), 200


@bp.post("/accounts/<account>/recipients")
def add_recipient(account: str) -> tuple[Response, int]:
    """Adds a subscriber: {"address": "...", "categories": ["credentials", ...]}."""
    body = _json_body()
    categories = body.get("categories")
    if not isinstance(categories, list):
        return _fail(400, "categories: required (a list of categories)")
    try:
        recipient = _registry().add(account, body.get("address"), categories)  # type: ignore[arg-type]
    except RecipientError as error:
        return _fail(400 if not isinstance(error, NotFound) else 404, str(error))
    return jsonify(recipient.as_dict()), 201


@bp.delete("/accounts/<account>/recipients/<address>")
def remove_recipient(account: str, address: str) -> tuple[Response, int]:
    """Removes a subscriber; removing the primary administrator is refused (409)."""
    try:
        _registry().remove(account, address)
    except NotFound as error:
        return _fail(404, str(error))
    except RecipientError as error:
        status = 409 if "primary administrator" in str(error) else 400
        return _fail(status, str(error))
    return jsonify({"status": "removed", "address": address}), 200


@bp.put("/accounts/<account>/primary")
def set_primary(account: str) -> tuple[Response, int]:
    """Makes {"address": "..."} the primary administrator."""
    body = _json_body()
    try:
        recipient = _registry().set_primary(account, body.get("address"))  # type: ignore[arg-type]
    except RecipientError as error:
        return _fail(400, str(error))
    return jsonify(recipient.as_dict()), 200


def _lifecycle_command(command: Callable[[], LifecycleResult]) -> tuple[Response, int]:
    try:
        result = command()
    except LifecycleError as error:
        return _fail(400, str(error))
    return jsonify(result.as_dict()), 200


@bp.get("/accounts/<account>/lifecycle")
def lifecycle_status(account: str) -> tuple[Response, int]:
    """Whether the account is offboarded, and its disconnected integrations."""
    try:
        return jsonify(current_mailer().lifecycle.status(account)), 200
    except LifecycleError as error:
        return _fail(400, str(error))


@bp.post("/accounts/<account>/integrations/<system>/disconnect")
def disconnect_integration(account: str, system: str) -> tuple[Response, int]:
    """Ends the integration's episodes silently and withdraws its unsent emails."""
    return _lifecycle_command(lambda: current_mailer().lifecycle.disconnect(account, system))


@bp.post("/accounts/<account>/integrations/<system>/connect")
def connect_integration(account: str, system: str) -> tuple[Response, int]:
    """Lifts the disconnect: a problem that starts from now on is mailed again."""
    return _lifecycle_command(lambda: current_mailer().lifecycle.connect(account, system))


@bp.post("/accounts/<account>/offboard")
def offboard_account(account: str) -> tuple[Response, int]:
    """No email of any kind for the account from now on; its recipients are removed."""
    return _lifecycle_command(lambda: current_mailer().lifecycle.offboard(account))


@bp.post("/accounts/<account>/onboard")
def onboard_account(account: str) -> tuple[Response, int]:
    """Lifts the offboarding: new problems are mailed to the recipients registered again."""
    return _lifecycle_command(lambda: current_mailer().lifecycle.onboard(account))


def _limit() -> int:
    try:
        return max(1, min(1000, int(request.args.get("limit", "100"))))
    except ValueError:
        abort(400, description="limit: must be an integer")


@bp.get("/undeliverable")
def undeliverable() -> tuple[Response, int]:
    """Notifications kept because nobody could receive them, newest first."""
    return jsonify({"undeliverable": current_mailer().store.undeliverable(_limit())}), 200


@bp.get("/emails")
def emails() -> tuple[Response, int]:
    """Outbox rows by status (?status=failed|pending|sent, default failed), newest first."""
    status = request.args.get("status", "failed")
    if status not in ("failed", "pending", "sent"):
        return _fail(400, "status: must be failed, pending or sent")
    emails = current_mailer().store.emails(status, _limit())
    return jsonify({"status": status, "emails": emails}), 200
