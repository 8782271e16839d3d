"""Serving the exporter with gunicorn, embedded: one gthread worker, a few threads.

One worker because the exposition cache and the ingest counters live in the process; the
threads share them, and SQLite's WAL lets /metrics read while a batch is being applied.
The app is built in the worker (not before the fork), so no SQLite connection crosses a fork.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from sysnotify.exporter.app import create_app
from sysnotify.exporter.config import ExporterConfig


class ExporterServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: ExporterConfig) -> None:
        self.config_ = config
        super().__init__()

    def load_config(self) -> None:
        host, port = self.config_.host_port
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        settings: dict[str, Any] = {
            "bind": [bind],
            "workers": 1,
            "worker_class": "gthread",
            "threads": self.config_.threads,
            "timeout": 120,
            "graceful_timeout": 10,
            "keepalive": 5,
            "errorlog": "-",
            "accesslog": "-" if self.config_.access_log else None,
            "proc_name": "sysnotify-exporter",
            "preload_app": False,
            # Several exporters (tests, demo) may run at once: no shared control socket.
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            if key in self.cfg.settings:  # older gunicorn releases lack some settings
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app(self.config_)


def serve(config: ExporterConfig) -> None:
    """Runs until SIGTERM/SIGINT."""
    ExporterServer(config).run()
