"""How a request reaches what its app serves with, typed: the one Mailer, and the counts the
web layer keeps in memory (sysnotify.mailer.deferred_counters)."""

from __future__ import annotations

from flask import Flask, current_app

from sysnotify.mailer.build import Mailer
from sysnotify.mailer.deferred_counters import DeferredCounters

EXTENSION = "sysnotify"
DEFERRED_COUNTERS = "sysnotify.deferred_counters"


def mailer_of(app: Flask) -> Mailer:
    """The app's Mailer (for tools and tests)."""
    mailer: Mailer = app.extensions[EXTENSION]
    return mailer


def current_mailer() -> Mailer:
    """The Mailer of the app handling the current request."""
    return mailer_of(current_app)


def deferred_counters_of(app: Flask) -> DeferredCounters:
    """The counts the app keeps in memory until they are added to the store (for tools and
    tests, which flush them when they want them in /metrics)."""
    deferred: DeferredCounters = app.extensions[DEFERRED_COUNTERS]
    return deferred


def current_deferred_counters() -> DeferredCounters:
    """The deferred counts of the app handling the current request."""
    return deferred_counters_of(current_app)
