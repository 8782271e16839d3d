"""Opening the store the config names: one branch per backend module."""

from __future__ import annotations

from sysnotify.mailer.config import StoreConfig
from sysnotify.mailer.store import Store
from sysnotify.mailer.store.sqlite import SqliteStore


def open_store(config: StoreConfig) -> Store:
    """The store the config names (SQLite at `store.path`)."""
    return SqliteStore(config.path)
