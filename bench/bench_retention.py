"""Retention benchmark: how long one prune call holds the store, so how long a webhook or an
ingest batch can wait behind it.

    .venv/bin/python -m bench --only retention                # make bench
    .venv/bin/python -m bench --only retention -- --emails 5000 --accounts 200

Steps, in temporary files:

1. A mailer store holding `--emails` sent and as many failed emails finished 100 days ago
   (each with a stored request of `--request-bytes`, about what a real one takes) and as many
   undeliverable notes: the pruner's calls timed until nothing is left, with the connection
   set up as a delivery thread's is.
2. An exporter store with `--accounts` simulated accounts, 60 days of per-page visits and a
   sync run a day: the daily prune's calls timed.

Each call is at most one write transaction (the exporter's sync-run call reads its candidates
first, without the lock); the benchmark times the transactions, from BEGIN IMMEDIATE to
COMMIT, which is how long a webhook or a batch may wait behind one. The verdict compares each
kind's median with its store's target: about a webhook's own transaction for the mailer, about
one 1,000-event ingest batch for the exporter. The longest are the commits that checkpoint the
log, whose fsync the disk sometimes stalls, as it does any delivery commit's.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sysnotify.exporter import retention as exporter_retention
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.events import day_to_iso, validate_events
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.simulate import Simulator, iso
from sysnotify.exporter.store import DAY
from sysnotify.exporter.store.sqlite import SqliteFactStore
from sysnotify.mailer import retention as mailer_retention
from sysnotify.mailer.store.sqlite import SqliteStore
from sysnotify.sqlite import Database

MAILER_TARGET_MS = 5.0
EXPORTER_TARGET_MS = 25.0


def held(db: Database, call: Callable[[], int], done: Callable[[int], bool]) -> list[float]:
    """Seconds each write transaction of `db` lasted while `call` ran, again and again until
    `done` says its last call finished the job."""
    times: list[float] = []
    write = db.write

    @contextmanager
    def timed_write() -> Iterator[sqlite3.Connection]:
        started = time.perf_counter()
        try:
            with write() as conn:
                yield conn
        finally:
            times.append(time.perf_counter() - started)

    db.write = timed_write  # type: ignore[method-assign]
    try:
        while not done(call()):
            pass
    finally:
        del db.write
    return times


def summary(name: str, times: list[float], target_ms: float) -> bool:
    """Prints the transactions' times; whether their median meets the target."""
    ordered = sorted(times)
    median = statistics.median(ordered) * 1000
    ok = median <= target_ms
    print(
        f"{name:<28} {len(times):>5} transactions  median {median:6.1f} ms"
        f"  p99 {ordered[int(len(ordered) * 0.99)] * 1000:6.1f} ms"
        f"  max {ordered[-1] * 1000:6.1f} ms"
        f"  (target: median under {target_ms:.0f} ms: {'ok' if ok else 'MISSED'})",
        flush=True,
    )
    return ok


def mailer_store(path: Path, emails: int, request_bytes: int, finished_at: float) -> SqliteStore:
    store = SqliteStore(path)
    store.migrate()
    request = json.dumps({"format": 1, "padding": "x" * request_bytes})
    conn = store.db.connection()
    conn.execute("BEGIN")
    for status in ("sent", "failed"):
        conn.executemany(
            "INSERT INTO outbox (notification_key, recipient, notification, phase, account,"
            " message_id, request, received_at, queued_at, status, next_attempt_at,"
            " finished_at) VALUES (?, ?, 'credential_expired', 'problem', ?, ?, ?, ?, ?, ?,"
            " ?, ?)",
            (
                (
                    f"{status}-{i}",
                    f"admin{i % 7}@acc-{i % 1000}.example",
                    f"acc-{i % 1000}",
                    f"<{status}-{i}@example.com>",
                    request,
                    finished_at,
                    finished_at,
                    status,
                    finished_at,
                    finished_at + i / 1000,
                )
                for i in range(emails)
            ),
        )
    conn.executemany(
        "INSERT INTO undeliverable (received_at, receiver, account, notification, phase,"
        " reason, alerts) VALUES (?, 'mailer', ?, 'generic', 'problem', 'no_recipients', ?)",
        ((finished_at + i / 1000, f"acc-{i}", request) for i in range(emails)),
    )
    conn.execute("COMMIT")
    return store


def history(accounts: int, days: int, now: float) -> Iterator[dict[str, Any]]:
    """The simulated platform's events, plus a finished sync run a day for each account."""
    yield from Simulator(accounts=accounts, days=days, now=now).events()
    today = utc_day(now)
    for index in range(1, accounts + 1):
        account = f"acc-{index:05d}"
        for day in range(today - days, today - 8):
            run_id = f"{account}-history-{day_to_iso(day)}"
            started = day * DAY + 3600
            yield {"type": "sync_started", "account": account, "run_id": run_id, "at": iso(started)}
            yield {
                "type": "sync_finished",
                "account": account,
                "run_id": run_id,
                "at": iso(started + 1800),
                "status": "success",
            }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench --only retention --")
    parser.add_argument("--emails", type=int, default=50_000, help="sent (and failed) emails")
    parser.add_argument("--request-bytes", type=int, default=2_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args(argv)
    now = time.time()
    ok = True
    with tempfile.TemporaryDirectory(prefix="sysnotify-bench-") as tmp:
        workdir = Path(tmp)
        print(f"mailer: {args.emails} sent, failed and undeliverable each", flush=True)
        store = mailer_store(
            workdir / "mailer.db", args.emails, args.request_bytes, now - 100 * DAY
        )
        store.tune_for_delivery()
        batch = mailer_retention.PRUNE_BATCH
        for status in ("sent", "failed"):
            times = held(
                store.db,
                lambda status=status: store.prune_emails(status, now, batch),
                lambda count: count < batch,
            )
            ok &= summary(f"{status} emails ({batch} a call)", times, MAILER_TARGET_MS)
        times = held(
            store.db, lambda: store.prune_undeliverable(now, batch), lambda count: count < batch
        )
        ok &= summary(f"undeliverable ({batch} a call)", times, MAILER_TARGET_MS)
        store.close()

        print(f"exporter: {args.accounts} accounts, {args.days} days", flush=True)
        facts = SqliteFactStore(workdir / "facts.db")
        config = ExporterConfig()
        events = list(history(args.accounts, args.days, now))
        for start in range(0, len(events), 1000):
            valid, errors = validate_events(events[start : start + 1000], config.event_window(now))
            if errors:
                raise SystemExit(f"invalid simulated events: {errors[:3]}")
            facts.apply(valid)
        today = utc_day(now)
        limit = exporter_retention.PRUNE_BATCH
        calls: list[tuple[str, Callable[[], int]]] = [
            ("web visits", lambda: facts.prune_web_visits(today - config.retention_days, limit)),
            (
                "sync runs",
                lambda: facts.prune_sync_runs(
                    (today - config.sync_run_retention_days) * DAY, limit
                ),
            ),
        ]
        for name, call in calls:
            times = held(facts.db, call, lambda count: count == 0)
            ok &= summary(f"{name} ({limit} a call)", times, EXPORTER_TARGET_MS)
        facts.close()
    return 0 if ok else 1
