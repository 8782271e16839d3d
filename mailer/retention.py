"""Bounded storage: the mailer forgets what nobody needs any more, a little at a time.

Delivery threads run a `Pruner` every `PRUNE_EVERY_SECONDS`. It forgets alert state not seen
for `dedup.state_retention`, then deletes sent emails, failed emails and undeliverable notes
older than their `retention.*` setting. Each delete is one transaction of at most
`PRUNE_BATCH` rows found through an index, a few milliseconds of the write lock; between two
batches it waits `PAUSE_SECONDS`, so a webhook waiting for the lock (in this process or
another one, whose SQLite busy handler polls) gets it first. A run stops after
`MAX_BATCHES_PER_RUN` batches of one kind so its thread goes back to sending emails; the rest
is pruned by the next run, `BACKLOG_DELAY_SECONDS` later (after an upgrade of a store that
was never pruned, say).

A pending email is never deleted. A finished email's row is kept longer than the alert state
(the config checks it): its unique (notification key, recipient) backs up the state against
re-delivered webhooks, see docs/mailer.md#how-long-what-is-kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sysnotify.mailer.config import RetentionConfig
from sysnotify.mailer.store import Store

log = logging.getLogger("gunicorn.error")

PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 200  # outbox rows hold their email request: a batch frees about 100-200 pages
PAUSE_SECONDS = 0.05  # longer than SQLite's busy handler waits between its first polls
MAX_BATCHES_PER_RUN = 50
BACKLOG_DELAY_SECONDS = 5.0


@dataclass(frozen=True)
class Pruned:
    """What one run deleted, and whether it got through everything that was due."""

    alert_states: int = 0
    sent_emails: int = 0
    failed_emails: int = 0
    undeliverable: int = 0
    finished: bool = True

    def total(self) -> int:
        return self.alert_states + self.sent_emails + self.failed_emails + self.undeliverable


class Pruner:
    """Deletes what the retention settings let go of; `prune_if_due` is called by delivery
    threads between emails."""

    def __init__(
        self,
        store: Store,
        retention: RetentionConfig,
        state_retention: float,
        clock: Callable[[], float],
        pause: Callable[[float], bool],
    ) -> None:
        """:param pause: waits that many seconds between batches; True stops the run (the
        thread is stopping)."""
        self.store = store
        self.retention = retention
        self.state_retention = state_retention
        self.clock = clock
        self.pause = pause
        self.next_run = 0.0

    def prune_if_due(self) -> Pruned | None:
        """Runs when due; None when it was not.

        :raise StoreError: the run stops there; the next one is due an interval later.
        """
        now = self.clock()
        if now < self.next_run:
            return None
        self.next_run = now + PRUNE_EVERY_SECONDS  # first, so a failing store is not hammered
        pruned = self.run(now)
        if not pruned.finished:
            self.next_run = now + BACKLOG_DELAY_SECONDS
        return pruned

    def run(self, now: float) -> Pruned:
        retention = self.retention
        states = self.store.forget_alert_states(now - self.state_retention)
        sent, sent_done = self._batches(
            lambda limit: self.store.prune_emails(
                "sent", now - retention.sent_emails_seconds, limit
            )
        )
        failed, failed_done = self._batches(
            lambda limit: self.store.prune_emails(
                "failed", now - retention.failed_emails_seconds, limit
            )
        )
        notes, notes_done = self._batches(
            lambda limit: self.store.prune_undeliverable(
                now - retention.undeliverable_seconds, limit
            )
        )
        pruned = Pruned(states, sent, failed, notes, sent_done and failed_done and notes_done)
        if pruned.total():
            log.info(
                "retention: deleted %d sent emails, %d failed emails, %d undeliverable notes "
                "and %d alert states%s",
                sent,
                failed,
                notes,
                states,
                "" if pruned.finished else "; more next run",
            )
        return pruned

    def _batches(self, delete: Callable[[int], int]) -> tuple[int, bool]:
        """Deletes batch after batch until one comes back short; (rows, all done)."""
        removed = 0
        for batch in range(MAX_BATCHES_PER_RUN):
            if batch and self.pause(PAUSE_SECONDS):
                return removed, False
            count = delete(PRUNE_BATCH)
            removed += count
            if count < PRUNE_BATCH:
                return removed, True
        return removed, False
