"""Closing a store never pulls a connection from under a thread still using it."""

from __future__ import annotations

import threading
from pathlib import Path

from sysnotify.sqlite import Database


def test_close_leaves_a_running_threads_connection_and_closes_it_once_the_thread_ended(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "store.db", synchronous="NORMAL", busy_timeout_ms=1000)
    db.connection().execute("CREATE TABLE t (n INTEGER)")
    opened, closed, used_after_close = threading.Event(), threading.Event(), []

    def background() -> None:  # a prune or delivery thread, still at work
        with db.write() as tx:
            tx.execute("INSERT INTO t VALUES (1)")
        opened.set()
        closed.wait(10)
        with db.write() as tx:
            used_after_close.append(tx.execute("SELECT count(*) FROM t").fetchone()[0])

    thread = threading.Thread(target=background)
    thread.start()
    assert opened.wait(10)
    [(_, theirs)] = [(owner, conn) for owner, conn in db._connections if owner is thread]
    db.close()
    closed.set()
    thread.join(10)
    assert used_after_close == [1]
    theirs.execute("SELECT 1")  # still open: its thread was running at the close
    db.close()
    assert db._connections == []
