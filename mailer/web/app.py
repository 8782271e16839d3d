"""The Flask application factory: `gunicorn 'sysnotify.mailer.web.app:create_app()'`.

The factory loads and validates the config (SYSNOTIFY_MAILER_CONFIG), migrates the store,
checks that every template renders, registers the blueprints and starts the delivery
thread(s) of this process. Each gunicorn worker calls it after the fork (do not use
`--preload`, or the delivery threads would be started in the master and die at fork).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.config import MailerConfig, load_config
from sysnotify.mailer.delivery.worker import DeliveryWorker, RendererLike, SenderLike
from sysnotify.mailer.delivery.message import sender_domain
from sysnotify.mailer.metrics import registry_for
from sysnotify.mailer.intake.transaction import Intake
from sysnotify.mailer.web.preview import create_preview_blueprint
from sysnotify.mailer.recipients import Registry
from sysnotify.mailer.rendering.renderer import Renderer
from sysnotify.mailer.delivery.smtp import SmtpSender
from sysnotify.mailer.store.sqlite import Store
from sysnotify.mailer.web import admin, health, webhook
from sysnotify.mailer.delivery.wakeup import Waker, socket_path


class Mailer:
    """Everything a request needs, kept in `app.extensions["sysnotify"]`."""

    def __init__(self, config: MailerConfig, renderer: RendererLike,
                 sender_factory: Callable[[], SenderLike], clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.catalog: Catalog = config.catalog()
        self.store = Store(config.store.path)
        self.store.migrate()
        self.renderer = renderer
        self.intake = Intake(self.store, self.catalog, sender_domain(config.brand),
                             config.dedup.window_for, config.operators.addresses,
                             clock)
        self.registry_api = Registry(self.store)
        self.registry = registry_for(self.store, self.catalog)
        self.delivering = False
        self.wake_socket = socket_path(config.store.path)
        self.waker = Waker(self.wake_socket)
        self.workers = [
            DeliveryWorker(self.store, self.catalog, renderer, sender_factory(), config.brand,
                           config.delivery, config.dedup.state_retention_seconds, clock,
                           send_budget=2 * config.smtp.timeout_seconds)
            for _ in range(config.delivery.threads)
        ]

    def start_delivery(self) -> None:
        self.delivering = True
        for worker in self.workers:
            worker.start()

    def stop_delivery(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.delivering = False

    def wake_delivery(self) -> None:
        """Lets delivery pick new rows up without waiting a poll: this process's threads,
        or, when this process does not deliver, a `deliver --watch` process (mailer.wakeup)."""
        if self.delivering:
            for worker in self.workers:
                worker.wakeup.set()
        else:
            self.waker.notify()


def _use_gunicorn_logging(app: Flask) -> None:
    gunicorn_logger = logging.getLogger("gunicorn.error")
    if gunicorn_logger.handlers:
        app.logger.handlers = gunicorn_logger.handlers
        app.logger.setLevel(gunicorn_logger.level)


def create_app(config: MailerConfig | None = None, *, renderer: RendererLike | None = None,
               sender_factory: Callable[[], SenderLike] | None = None,
               clock: Callable[[], float] = time.time,
               start_delivery: bool | None = None) -> Flask:
    """Builds the mailer app.

    :param config: the validated config; default: loaded from $SYSNOTIFY_MAILER_CONFIG, which
        is how gunicorn builds a worker's one app, whose start-up objects are then frozen
        (freeze_startup_objects).
    :param renderer: default: mailer.render.Renderer with the config's brand (checked now).
    :param sender_factory: builds one SMTP sender per delivery thread (default: SmtpSender).
    :param clock: Unix time source, injectable for tests.
    :param start_delivery: default: `delivery.enabled` from the config.
    :raise ConfigError: for an invalid config; RenderError for a broken template.
    """
    long_lived = config is None  # gunicorn's `sysnotify.mailer.web.app:create_app()`: one app per process
    config = config or load_config()
    app = Flask(__name__)
    _use_gunicorn_logging(app)
    app.config["MAX_CONTENT_LENGTH"] = config.webhook.max_body_bytes
    if renderer is None:
        real = Renderer(config.brand, config.templates_dir)
        real.check(config.catalog())
        renderer = real
    mailer = Mailer(config, renderer,
                    sender_factory or (lambda: SmtpSender(config.smtp)), clock)
    app.extensions["sysnotify"] = mailer

    app.register_blueprint(webhook.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(health.bp)
    if isinstance(renderer, Renderer):  # a test double has no templates to preview
        app.register_blueprint(create_preview_blueprint(renderer, mailer.catalog))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 500
        if request.path.endswith("/webhook"):
            webhook.count_answer(code)
        return jsonify({"status": "error", "code": code, "name": error.name,
                        "error": error.description}), code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[Response, int]:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.endswith("/webhook"):
            webhook.count_answer(500)
        return jsonify({"status": "error", "code": 500, "error": "internal error"}), 500

    if long_lived:
        freeze_startup_objects()
    if config.delivery.enabled if start_delivery is None else start_delivery:
        mailer.start_delivery()
    return app


def freeze_startup_objects() -> None:
    """Moves everything built so far (Flask, the compiled templates, the catalog) out of the
    garbage collector's sight: it lives as long as the process, and a full collection then
    walks only the objects of recent requests and emails instead of pausing a delivery for
    tens of milliseconds. Only for a process that serves one app until it exits; frozen
    objects are never collected, so apps created and dropped again (tests) must not be."""
    gc.freeze()


def mailer_of(app: Flask) -> Any:
    """The app's Mailer (for tests and tools)."""
    return app.extensions["sysnotify"]
