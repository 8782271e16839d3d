"""Assembling a mailer from its config: the one place that wires the parts together.

`build_mailer(config)` is shared by the web app (sysnotify.mailer.web.app), the CLI's
`deliver` command and the delivery process, so each gets the same store, catalog, checked
renderer, intake and delivery workers.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.config import MailerConfig
from sysnotify.mailer.delivery.message import sender_domain
from sysnotify.mailer.delivery.smtp import SmtpSender
from sysnotify.mailer.delivery.wakeup import Waker, socket_path
from sysnotify.mailer.delivery.worker import DeliveryWorker, RendererLike, SenderLike
from sysnotify.mailer.intake.transaction import Intake
from sysnotify.mailer.lifecycle import Lifecycle
from sysnotify.mailer.metrics import registry_for
from sysnotify.mailer.recipients import Registry
from sysnotify.mailer.rendering.check import check_templates
from sysnotify.mailer.rendering.renderer import Renderer
from sysnotify.mailer.store.backends import open_store


class Mailer:
    """Everything the webhook, the admin API and delivery need, built once per process."""

    def __init__(
        self,
        config: MailerConfig,
        renderer: RendererLike,
        sender_factory: Callable[[], SenderLike],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.clock = clock
        self.catalog: Catalog = config.catalog()
        self.store = open_store(config.store)
        self.store.migrate()
        self.renderer = renderer
        self.intake = Intake(
            self.store,
            self.catalog,
            sender_domain(config.brand),
            config.dedup.window_for,
            config.operators.addresses,
            clock,
        )
        self.registry_api = Registry(self.store)
        self.lifecycle = Lifecycle(self.store, clock)
        self.registry = registry_for(self.store, self.catalog)
        self.delivering = False
        self.wake_socket = socket_path(config.store.path)
        self.waker = Waker(self.wake_socket)
        self.workers = [
            DeliveryWorker(
                self.store,
                self.catalog,
                renderer,
                sender_factory(),
                config.brand,
                config.delivery,
                config.dedup.state_retention_seconds,
                clock,
                lease_margin=2 * config.smtp.timeout_seconds,
                retention=config.retention,
            )
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
        or, when this process does not deliver, a `deliver --watch` process
        (sysnotify.mailer.delivery.wakeup)."""
        if self.delivering:
            for worker in self.workers:
                worker.wakeup.set()
        else:
            self.waker.notify()


def checked_renderer(config: MailerConfig) -> Renderer:
    """The config's renderer, with every template rendered once (rendering.check).

    :raise RenderError: for a brand the layout cannot use or a template that fails.
    """
    renderer = Renderer(config.brand, config.templates_dir)
    check_templates(renderer, config.catalog())
    return renderer


def build_mailer(
    config: MailerConfig,
    *,
    renderer: RendererLike | None = None,
    sender_factory: Callable[[], SenderLike] | None = None,
    clock: Callable[[], float] = time.time,
) -> Mailer:
    """A mailer for `config`; its delivery threads are not started.

    :param renderer: default: the config's templates and brand, checked now.
    :param sender_factory: builds one SMTP sender per delivery thread (default: SmtpSender).
    :param clock: Unix time source, injectable for tests.
    :raise RenderError: for a broken template; StoreError when the store cannot be opened.
    """
    return Mailer(
        config,
        renderer if renderer is not None else checked_renderer(config),
        sender_factory or (lambda: SmtpSender(config.smtp)),
        clock,
    )


def freeze_startup_objects() -> None:
    """Moves everything built so far (Flask, the compiled templates, the catalog) out of the
    garbage collector's sight: it lives as long as the process, and a full collection then
    walks only the objects of recent requests and emails instead of pausing a delivery for
    tens of milliseconds. Only for a process that serves one app until it exits; frozen
    objects are never collected, so apps created and dropped again (tests) must not be."""
    gc.freeze()
