"""Opening the fact store a location names.

Apart from the interface (sysnotify.exporter.store) so that the interface never imports a
backend, and a backend may import the interface's value types without a cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sysnotify.exporter.store import FactStore
from sysnotify.exporter.store.sqlite import SqliteFactStore

__all__ = ["open_fact_store"]


def open_fact_store(location: str | Path, *, clock: Callable[[], float] = time.time) -> FactStore:
    """The fact store at `location`, created when missing and migrated when older.

    Every location is a SQLite file path today. `clock` gives the time recorded as "when an
    event was applied".

    :raise StoreError: when the store cannot be opened or migrated (e.g. a newer schema).
    """
    return SqliteFactStore(location, clock=clock)
