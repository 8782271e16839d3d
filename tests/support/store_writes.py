"""Noticing any write to a SQLite file, by any connection of any process."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class StoreWrites:
    """Watches one database file through a connection of its own: SQLite changes that
    connection's `PRAGMA data_version` whenever another connection commits a change, so
    nothing written to the file can pass unseen (a transaction that changes nothing is not a
    write and goes unseen)."""

    def __init__(self, path: Path | str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.start = self._version()

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def seen(self) -> bool:
        """Whether anything was committed to the file since this watch began."""
        return self._version() != self.start

    def close(self) -> None:
        self.conn.close()
