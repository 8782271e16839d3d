"""Counts kept in memory and added to the store's counters in batches.

For events that must not each cost a durable write: the webhook's refused answers (401, 400,
413, 422, 404, 405, and the 5xx of a failed store). Anyone who can reach the port can send
those, and one fsynced transaction each would make every valid webhook wait behind a flood of
them for the store's write lock. Counting them in memory costs no write at all.

Each process keeps its own counts and adds them to the store in one transaction every
`interval` seconds (none while there is nothing to add), and once more when it stops (a
gunicorn worker's graceful exit). /metrics reads the store only, so every worker still
answers the same totals and a total never goes down whichever worker answers a scrape; a
count shows up there at most `interval` seconds late. The trade-off: a process killed
without its exit (SIGKILL, the OOM killer, a power loss) loses the counts of its last
`interval` seconds. Counts of what the store keeps (a webhook's 200, emails queued, sent or
failed) are never deferred: they stay in the transaction of the state they count.
"""

from __future__ import annotations

import logging
import threading

from sysnotify.mailer.store import Store, StoreError

log = logging.getLogger("gunicorn.error")

# Prometheus scrapes every 15 s or more: a count is in /metrics by the next scrape but one.
FLUSH_INTERVAL_SECONDS = 5.0


class DeferredCounters:
    """Counter increments of one process, written to `store` by flush()."""

    def __init__(self, store: Store, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self._lock = threading.Lock()
        # (counter name, label) -> amount; as many keys as distinct labels (status codes),
        # however many requests were counted.
        self._pending: dict[tuple[str, str], float] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, label: str, amount: float = 1) -> None:
        """Counts in memory; never touches the store."""
        with self._lock:
            self._pending[name, label] = self._pending.get((name, label), 0) + amount

    def flush(self) -> None:
        """Adds the counts kept so far to the store, in one transaction.

        The store's write happens outside the lock, so add() never waits for it.

        :raise StoreError: nothing was added; the counts are kept for the next flush.
        """
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            self.store.count([(name, label, amount) for (name, label), amount in batch.items()])
        except StoreError:
            with self._lock:
                for key, amount in batch.items():
                    self._pending[key] = self._pending.get(key, 0) + amount
            raise

    def start(self) -> None:
        """Flushes every `interval` seconds in a daemon thread, until stop()."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._flush_periodically, name="sysnotify-counters", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ends the thread and adds what is left to the store (a failure is logged: the
        process is exiting, so those counts are lost)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._flush_logged()

    def _flush_periodically(self) -> None:
        while not self._stopping.wait(self.interval):
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except StoreError as error:
            log.error("counters: add the deferred counts to the store: %s", error)
