"""Latency from a fact changing in the exporter to the email arriving, on the whole stack.

The stack is stack.local.LocalStack with its default scale (shipped timings divided by 60, as
in the end-to-end tests). Each sample account first gets healthy facts; then, one account at
a time and a little more than one rule evaluation apart (so the mailer is idle when each
notification comes), its daily API allowance is used up. The shipped rule fires
ApiDailyLimitReached after its scaled `for:`, Alertmanager posts the group to the mailer,
and the mailer emails the account's administrator.

Total = the ingest POST returned -> the SMTP sink stored the email. The mailer's share =
webhook received -> SMTP accepted, from the outbox row's timestamps (the same interval as
sysnotify_mailer_delivery_latency_seconds).
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import mailer_stack as ms
from stack import scenario
from stack.local import LocalStack
from stack.scenario import DemoAccount, Event


@dataclass(frozen=True)
class LatencyResult:
    samples: int
    total_seconds: tuple[float, ...]
    mailer_seconds: tuple[float, ...]
    missing: int
    fsync_seconds: tuple[float, ...] = ()  # durable commits on the same disk, right after
    webhook_seconds: tuple[float, ...] = ()  # the mailer's own handling of each webhook


_WEBHOOK_LOG = re.compile(r"webhook customer: receiver=\S+ .* queued=[1-9]\d* .* in ([\d.]+)ms$")


def webhook_handling_times(mailer_log: Path) -> tuple[float, ...]:
    """Seconds each webhook that queued an email took inside the mailer (read to answered,
    its durable commit included), from the mailer's own log line."""
    return tuple(
        float(match.group(1)) / 1000
        for line in mailer_log.read_text(errors="replace").splitlines()
        if (match := _WEBHOOK_LOG.search(line))
    )


def durable_commit_times(
    directory: Path, commits: int = 200, gap: float = 0.01
) -> tuple[float, ...]:
    """Seconds per SQLite commit with synchronous=FULL (an fsync of the WAL), one every
    `gap` seconds, on the disk under `directory`: each webhook pays one such commit before
    its 2xx, so the disk's slow fsyncs show up in the mailer's share as they are."""
    conn = sqlite3.connect(directory / "fsync-probe.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
        times = []
        for n in range(commits):
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO probe VALUES (?)", (n,))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - started)
            time.sleep(gap)
        return tuple(times)
    finally:
        conn.close()


def _healthy(account: str, now: datetime) -> list[Event]:
    events: list[Event] = [
        {"type": "account", "account": account, "name": f"Customer {account}"},
        {
            "type": "sync_started",
            "account": account,
            "run_id": f"{account}-ok",
            "at": scenario.iso(now - timedelta(hours=20)),
        },
        {
            "type": "sync_finished",
            "account": account,
            "run_id": f"{account}-ok",
            "at": scenario.iso(now - timedelta(hours=19)),
            "status": "success",
        },
    ]
    return events + scenario.web_visits(account, now, pages=8, weekly_norm=1400, last_week=1400)


def _limit_reached(account: str, now: datetime) -> Event:
    window = scenario.iso(now.replace(hour=0, minute=0, second=0, microsecond=0))
    return {
        "type": "api_usage",
        "account": account,
        "platform": "pardot",
        "used": 100_000,
        "limit": 100_000,
        "window_start": window,
    }


def measure(samples: int, spacing: float, timeout: float) -> LatencyResult:
    """Runs the whole stack once and takes `samples` measurements, `spacing` seconds apart."""
    accounts = [f"lat-{n:03d}" for n in range(1, samples + 1)]
    with (
        tempfile.TemporaryDirectory(prefix="sysnotify-bench-latency-") as tmp,
        LocalStack(Path(tmp)) as stack,
    ):
        stack.add_recipients(
            DemoAccount(a, f"Customer {a}", ms.recipient_of(a), ()) for a in accounts
        )
        now = datetime.now(UTC)
        stack.post_events([e for a in accounts for e in _healthy(a, now)])
        # Healthy facts raise nothing; give Prometheus a few evaluations to see them.
        time.sleep(3.0)
        posted: dict[str, float] = {}
        for account in accounts:
            stack.post_events([_limit_reached(account, datetime.now(UTC))])
            posted[account] = time.time()
            time.sleep(spacing)

        def arrived() -> dict[str, float]:
            found = {}
            for mail in stack.customer_mails():
                account = mail.header("X-Sysnotify-Account")
                if account in posted and account not in found:
                    found[account] = datetime.fromisoformat(mail.received_at).timestamp()
            return found

        deadline = time.monotonic() + timeout
        while len(found := arrived()) < len(accounts) and time.monotonic() < deadline:
            time.sleep(0.5)
        outbox = {
            account: done - received
            for account, received, done in ms.outbox_latencies(stack.workdir / "mailer.db")
            if account in posted
        }
        webhooks = webhook_handling_times(stack.workdir / "mailer.log")
        fsyncs = durable_commit_times(stack.workdir)
    total = tuple(found[a] - posted[a] for a in accounts if a in found)
    mailer = tuple(outbox[a] for a in accounts if a in outbox)
    return LatencyResult(len(accounts), total, mailer, len(accounts) - len(found), fsyncs, webhooks)


def describe(result: LatencyResult) -> list[tuple[str, str]]:
    def spread(values: tuple[float, ...]) -> str:
        if not values:
            return "no samples"
        return (
            f"p50 {ms.percentile(values, 0.5) * 1000:,.0f} ms, "
            f"p99 {ms.percentile(values, 0.99) * 1000:,.0f} ms, "
            f"max {max(values) * 1000:,.0f} ms ({len(values)} samples)"
        )

    return [
        ("fact posted -> email stored by the sink", spread(result.total_seconds)),
        ("  mailer's share: webhook received -> SMTP accepted", spread(result.mailer_seconds)),
        (
            "    of it, the webhook answer (its durable commit included)",
            spread(result.webhook_seconds),
        ),
        ("  emails missing after the wait", f"{result.missing}"),
        ("  the disk: one durable SQLite commit (fsync)", spread(result.fsync_seconds)),
    ]
