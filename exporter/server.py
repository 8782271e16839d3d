"""Serving the exporter with gunicorn, embedded: one gthread worker, a few threads.

One worker because the exposition cache and the ingest counters live in the process; the
threads share them, and SQLite's WAL lets /metrics read while a batch is being applied.
The app is built in the worker (not before the fork), so no SQLite connection crosses a fork.
The settings are sysnotify.gunicorn.exporter_settings.
"""

from __future__ import annotations

from flask import Flask
from gunicorn.app.base import BaseApplication

from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.web.app import create_app
from sysnotify.gunicorn import exporter_settings


class ExporterServer(BaseApplication):
    def __init__(self, config: ExporterConfig) -> None:
        self.config_ = config
        super().__init__()

    def load_config(self) -> None:
        host, port = self.config_.host_port
        settings = exporter_settings(
            host, port, threads=self.config_.threads, access_log=self.config_.access_log
        )
        for key, value in settings.items():
            if key in self.cfg.settings:  # older gunicorn releases lack some settings
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app(self.config_)


def serve(config: ExporterConfig) -> None:
    """Runs until SIGTERM/SIGINT."""
    ExporterServer(config).run()
