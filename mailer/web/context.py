"""How a request reaches the mailer it serves: the app keeps one Mailer, typed."""

from __future__ import annotations

from flask import Flask, current_app

from sysnotify.mailer.build import Mailer

EXTENSION = "sysnotify"


def mailer_of(app: Flask) -> Mailer:
    """The app's Mailer (for tools and tests)."""
    mailer: Mailer = app.extensions[EXTENSION]
    return mailer


def current_mailer() -> Mailer:
    """The Mailer of the app handling the current request."""
    return mailer_of(current_app)
