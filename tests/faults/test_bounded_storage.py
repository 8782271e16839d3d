"""Thirty simulated days of steady traffic: both stores stay within a stated bound.

The clocks are fake and nothing waits. The mailer is driven through its app (webhooks through
the test client), its delivery worker (a fake SMTP sender that refuses one address) and the
pruning its delivery threads run every hour. The exporter is driven through its store: a
simulated platform (exporter/simulate.py) reports each day, 42 days of history to start
with, plus accounts that are announced and never heard of again; the daily prune runs each
simulated midnight.

The bound: rows per table at most the daily flow times (retention + 1 day) plus what is kept
whatever its age, and a database file (with its WAL) that stops growing once the retention
is reached. docs/reliability.md gives the figures the last run measured.
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.events import validate_events
from sysnotify.exporter.retention import prune
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.simulate import Simulator
from sysnotify.exporter.store import DAY
from sysnotify.exporter.store.sqlite import SqliteFactStore
from sysnotify.mailer.config import config_from_mapping
from sysnotify.mailer.delivery.message import OutgoingMessage
from sysnotify.mailer.delivery.smtp import KeepClaim, PermanentSendError
from sysnotify.mailer.web.app import create_app, mailer_of
from tests.support.clocks import FakeClock
from tests.support.exporter import FACT_TABLES
from tests.support.faults import notification, report
from tests.support.mailer_app import post
from tests.support.mailer_config import TOKENS_ENV, config_mapping

DAYS = 30
HOUR = 3600.0

# -- the mailer ----------------------------------------------------------------------------

ACCOUNTS = 10  # acc-0000 .. acc-0009
WITHOUT_RECIPIENTS = ("acc-0008", "acc-0009")  # their notifications are undeliverable
REFUSED = "it@acc-0001.example"  # the SMTP server refuses it: those emails fail
NOTIFICATIONS_PER_DAY = 20
MAILER_RETENTION = {"sent_emails": "7d", "failed_emails": "10d", "undeliverable": "5d"}
STATE_RETENTION_DAYS = 6


class RefusingSender:
    """Accepts every email at once, but for REFUSED's, which it refuses permanently."""

    def __init__(self) -> None:
        self.sent = 0

    def send(
        self, message: OutgoingMessage, sender: str, recipient: str, keep_claim: KeepClaim
    ) -> None:
        keep_claim()
        if recipient == REFUSED:
            raise PermanentSendError(f"RCPT TO <{recipient}>: 550 5.1.1 no such user")
        self.sent += 1

    def close(self) -> None:
        pass


def mailer_rows(app: Any) -> dict[str, int]:
    conn = mailer_of(app).store.db.connection()
    rows = {f"outbox_{status}": 0 for status in ("pending", "sent", "failed")}
    for status, count in conn.execute("SELECT status, count(*) FROM outbox GROUP BY status"):
        rows[f"outbox_{status}"] = count
    for table in ("undeliverable", "alert_state", "counters", "recipients"):
        rows[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return rows


def file_bytes(path: Path) -> dict[str, int]:
    """The sizes of the database file and its write-ahead log, and their sum."""
    wal = path.with_name(path.name + "-wal")
    sizes = {
        "db_bytes": path.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
    }
    return {**sizes, "bytes": sum(sizes.values())}


def test_thirty_days_of_notifications_keep_the_mailer_store_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    mapping = config_mapping(
        tmp_path,
        25,
        retention=MAILER_RETENTION,
        dedup={"state_retention": f"{STATE_RETENTION_DAYS}d"},
    )
    config = config_from_mapping(mapping, TOKENS_ENV, base_dir=tmp_path)
    sender = RefusingSender()
    app = create_app(config, sender_factory=lambda: sender, clock=clock, start_delivery=False)
    mailer = mailer_of(app)
    for number in range(ACCOUNTS):
        account = f"acc-{number:04d}"
        if account not in WITHOUT_RECIPIENTS:
            mailer.registry_api.set_primary(account, f"admin@{account}.example")
            mailer.registry_api.add(account, f"it@{account}.example", ["credentials"])
    client = app.test_client()
    worker = mailer.workers[0]
    # Delivery runs in a thread of its own, set up as a delivery thread is (its commits
    # checkpoint the write-ahead log); the webhooks come from this one.
    delivery = ThreadPoolExecutor(max_workers=1)
    delivery.submit(mailer.store.tune_for_delivery).result()

    def deliver_and_prune() -> None:
        worker.drain()
        worker.pruner.prune_if_due()  # what each delivery thread does between emails

    start = clock()

    # Each notification fires (a problem email per recipient), is re-sent by an HA peer
    # 10 seconds later (nothing), repeats 4 hours later (a reminder) and resolves a day
    # after it fired (a recovery email).
    events: dict[int, list[tuple[int, str]]] = collections.defaultdict(list)
    for day in range(DAYS):
        for i in range(NOTIFICATIONS_PER_DAY):
            number = day * NOTIFICATIONS_PER_DAY + i
            hour = day * 24 + i  # one an hour, for 20 hours a day
            events[hour] += [(number, "firing"), (number, "firing")]
            events[hour + 4].append((number, "firing"))
            events[hour + 24].append((number, "resolved"))
    daily: list[dict[str, int]] = []
    try:
        for hour in range(DAYS * 24):
            for offset, (number, status) in enumerate(events.get(hour, [])):
                clock.now = start + hour * HOUR + offset * 10
                payload = notification(number, ACCOUNTS, status)
                assert post(client, payload).status_code == 200
            delivery.submit(deliver_and_prune).result()
            if hour % 24 == 23:
                daily.append({**mailer_rows(app), **file_bytes(config.store.path)})
    finally:
        delivery.shutdown()
        mailer.store.close()
    day_rows = daily[-1]
    report("bounded_storage_mailer", days=DAYS, emails_sent=sender.sent, **day_rows)
    # The daily flow: 16 notifications with recipients (2 each, one of acc-0001's refused),
    # 4 without; 3 emails or notes each (problem, reminder, recovery).
    sent_per_day = (16 * 2 - 2) * 3
    failed_per_day = 2 * 3
    notes_per_day = 4 * 3
    assert sender.sent >= sent_per_day * (DAYS - 1)
    assert day_rows["outbox_pending"] == 0
    steady = daily[11:]  # past the longest retention (10 days) and a day of slack
    for rows in steady:
        assert rows["outbox_sent"] <= sent_per_day * (7 + 1)
        assert rows["outbox_failed"] <= failed_per_day * (10 + 1)
        assert rows["undeliverable"] <= notes_per_day * (5 + 1)
        # The last sighting is the recovery, a day after the problem.
        assert rows["alert_state"] <= NOTIFICATIONS_PER_DAY * (STATE_RETENTION_DAYS + 2)
    # Freed pages are reused: the file stops growing once rows are deleted as fast as added.
    assert max(rows["bytes"] for rows in steady) <= daily[11]["bytes"] * 1.1


# -- the exporter --------------------------------------------------------------------------

PLATFORM_ACCOUNTS = 100
WARM_UP_DAYS = 42
ANNOUNCED_PER_DAY = 3  # accounts named once and never heard of again
EXPORTER_CONFIG = ExporterConfig(
    retention_days=42, sync_run_retention_days=14, idle_account_retention_days=7
)


def exporter_rows(store: SqliteFactStore) -> dict[str, int]:
    conn = store.connection()
    return {
        table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in FACT_TABLES
    }


def apply(store: SqliteFactStore, events: list[dict[str, Any]]) -> None:
    valid, errors = validate_events(events, EXPORTER_CONFIG.event_window(store.clock()))
    assert not errors, errors[:3]
    store.apply(valid)


def test_thirty_days_of_platform_events_keep_the_exporter_store_bounded(tmp_path: Path) -> None:
    first_day = utc_day(1_795_800_000.0)
    clock = FakeClock(first_day * DAY)
    store = SqliteFactStore(tmp_path / "facts.db", clock=clock)
    daily: list[dict[str, int]] = []
    # 42 days first: an exporter that has run for the retention, with its store full.
    for day in range(-WARM_UP_DAYS, DAYS):
        today = first_day + day
        clock.now = today * DAY
        prune(store, EXPORTER_CONFIG, clock(), pause=lambda seconds: None)  # at midnight
        # The platform's report at 23:00: visits of yesterday and today, yesterday's and
        # today's syncs, credential checks, API usage, privacy requests.
        clock.now = today * DAY + 23 * HOUR
        events = list(Simulator(accounts=PLATFORM_ACCOUNTS, days=1, now=clock()).events())
        events += [
            {"type": "account", "account": f"trial-{day + WARM_UP_DAYS:03d}-{n}", "name": "Trial"}
            for n in range(ANNOUNCED_PER_DAY)
        ]
        apply(store, events)
        if day >= 0:
            daily.append({**exporter_rows(store), **file_bytes(Path(store.path))})
    store.close()

    report("bounded_storage_exporter", days=DAYS, **daily[-1])
    first = daily[0]
    for rows in daily:
        # The platform's accounts, and the announced ones for idle_account_retention_days
        # (and the day the prune runs).
        assert rows["accounts"] <= PLATFORM_ACCOUNTS + ANNOUNCED_PER_DAY * (7 + 2)
        # Every day's run for sync_run_retention_days, and today's.
        assert rows["sync_runs"] <= PLATFORM_ACCOUNTS * (14 + 2)
        # 42 days of per-page visits and daily totals, and today's.
        assert rows["web_visits"] <= first["web_visits"] * 1.05
        assert rows["web_daily"] <= PLATFORM_ACCOUNTS * (42 + 2)
        for table in ("credentials", "api_usage", "web_accounts", "privacy_requests"):
            assert rows[table] <= PLATFORM_ACCOUNTS * 5  # current state: no history kept
    assert max(rows["bytes"] for rows in daily) <= first["bytes"] * 1.1
