"""The Flask application factory: `gunicorn 'sysnotify.mailer.web.app:create_app()'`.

The factory loads and validates the config (SYSNOTIFY_MAILER_CONFIG), migrates the store,
checks that every template renders, registers the blueprints and starts the delivery
thread(s) of this process, and in a gunicorn worker the thread that adds the webhook's
refused answers to the store's counters (sysnotify.mailer.deferred_counters). Each gunicorn
worker calls it after the fork (do not use `--preload`, or the threads would be started in
the master and die at fork).
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sysnotify.mailer.build import build_mailer, freeze_startup_objects
from sysnotify.mailer.config import MailerConfig, load_config
from sysnotify.mailer.deferred_counters import DeferredCounters
from sysnotify.mailer.delivery.worker import RendererLike, SenderLike
from sysnotify.mailer.rendering.renderer import Renderer
from sysnotify.mailer.web import admin, health, webhook
from sysnotify.mailer.web.context import (
    DEFERRED_COUNTERS,
    EXTENSION,
    deferred_counters_of,
    mailer_of,
)
from sysnotify.mailer.web.preview import create_preview_blueprint

__all__ = ["create_app", "deferred_counters_of", "freeze_startup_objects", "mailer_of"]


def _use_gunicorn_logging(app: Flask) -> None:
    gunicorn_logger = logging.getLogger("gunicorn.error")
    if gunicorn_logger.handlers:
        app.logger.handlers = gunicorn_logger.handlers
        app.logger.setLevel(gunicorn_logger.level)


def create_app(
    config: MailerConfig | None = None,
    *,
    renderer: RendererLike | None = None,
    sender_factory: Callable[[], SenderLike] | None = None,
    clock: Callable[[], float] = time.time,
    start_delivery: bool | None = None,
) -> Flask:
    """Builds the mailer app.

    :param config: the validated config; default: loaded from $SYSNOTIFY_MAILER_CONFIG, which
        is how gunicorn builds a worker's one app, whose start-up objects are then frozen
        (freeze_startup_objects).
    :param renderer: default: the config's templates and brand, checked now.
    :param sender_factory: builds one SMTP sender per delivery thread (default: SmtpSender).
    :param clock: Unix time source, injectable for tests.
    :param start_delivery: default: `delivery.enabled` from the config.
    :raise ConfigError: for an invalid config; RenderError for a broken template.
    """
    long_lived = (
        config is None
    )  # gunicorn's `sysnotify.mailer.web.app:create_app()`: one app per process
    config = config or load_config()
    app = Flask(__name__)
    _use_gunicorn_logging(app)
    app.config["MAX_CONTENT_LENGTH"] = config.webhook.max_body_bytes
    mailer = build_mailer(config, renderer=renderer, sender_factory=sender_factory, clock=clock)
    app.extensions[EXTENSION] = mailer
    deferred = DeferredCounters(mailer.store)
    app.extensions[DEFERRED_COUNTERS] = deferred

    app.register_blueprint(webhook.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(health.bp)
    if isinstance(mailer.renderer, Renderer):  # a test double has no templates to preview
        app.register_blueprint(create_preview_blueprint(mailer.renderer, mailer.catalog))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 500
        if request.path.endswith("/webhook"):
            webhook.count_answer(code)
        return jsonify(
            {"status": "error", "code": code, "name": error.name, "error": error.description}
        ), code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[Response, int]:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.endswith("/webhook"):
            webhook.count_answer(500)
        return jsonify({"status": "error", "code": 500, "error": "internal error"}), 500

    if long_lived:
        # A gunicorn worker adds its deferred counts to the store every few seconds and when
        # it exits; an app built for a test or a tool keeps them until flushed.
        deferred.start()
        atexit.register(deferred.stop)
        freeze_startup_objects()
    if config.delivery.enabled if start_delivery is None else start_delivery:
        mailer.start_delivery()
    return app
