"""Bounded storage: the exporter's daily prune, a short transaction at a time.

Once a day (on the day's first applied batch, in a thread of its own so that batch is answered
at once) the store drops, in this order:

- per-page visits and their daily totals older than `retention_days` (the windows look back
  35 days at most);
- handled privacy requests received before then (pending ones stay: they are the metric);
- sync runs started more than `sync_run_retention_days` ago, except each account's latest
  started, latest successful and latest finished run, which the sync metrics show;
- accounts offboarded more than `retention_days` ago (all their facts went at the
  offboarding; what remains is the last-event series that lets their alerts resolve);
- accounts with none of those facts left, no credential or API usage, and no event for
  `idle_account_retention_days`.

Each store call deletes at most `PRUNE_BATCH` rows in one transaction, found through an index
or read before the write lock is taken, so it holds the lock for milliseconds; between calls
the prune waits `PAUSE_SECONDS`, so a batch being posted (in this process or by
`sysnotify-exporter ingest` in another) takes the lock first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.store import DAY, FactStore

log = logging.getLogger("gunicorn.error")

PRUNE_BATCH = 1000  # fact rows are small: about a millisecond of deleting per batch
PAUSE_SECONDS = 0.05  # longer than SQLite's busy handler waits between its first polls


@dataclass(frozen=True)
class Pruned:
    web_visits: int = 0  # per-page visits and daily totals
    privacy_requests: int = 0
    sync_runs: int = 0
    offboarded_accounts: int = 0
    idle_accounts: int = 0


def prune(
    store: FactStore,
    config: ExporterConfig,
    now: float,
    pause: Callable[[float], None] = time.sleep,
) -> Pruned:
    """Drops what the retention settings let go of at `now`; returns what it deleted.

    Cut-offs are UTC midnights: "older than N days" is "before the start of day today-N".

    :raise StoreError: the prune stops there; the next day's goes on.
    """
    today = utc_day(now)
    facts_before = today - config.retention_days

    def batches(delete: Callable[[int], int]) -> int:
        removed = 0
        while count := delete(PRUNE_BATCH):
            removed += count
            pause(PAUSE_SECONDS)
        return removed

    pruned = Pruned(
        web_visits=batches(lambda limit: store.prune_web_visits(facts_before, limit)),
        privacy_requests=batches(
            lambda limit: store.prune_privacy_requests(facts_before * DAY, limit)
        ),
        sync_runs=batches(
            lambda limit: store.prune_sync_runs(
                (today - config.sync_run_retention_days) * DAY, limit
            )
        ),
        offboarded_accounts=batches(
            lambda limit: store.prune_offboarded_accounts(facts_before * DAY, limit)
        ),
        # Last: the facts pruned above may have been an account's last ones.
        idle_accounts=batches(
            lambda limit: store.prune_idle_accounts(
                (today - config.idle_account_retention_days) * DAY, limit
            )
        ),
    )
    log.info(
        "retention: deleted %d web-visit rows, %d handled privacy requests, %d sync runs, "
        "%d offboarded and %d idle accounts",
        pruned.web_visits,
        pruned.privacy_requests,
        pruned.sync_runs,
        pruned.offboarded_accounts,
        pruned.idle_accounts,
    )
    return pruned
