"""Resident memory of the mailer and the exporter at 10,000 accounts (see bench.proc_stats)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import requests

from bench import mailer_stack as ms
from bench.mail_counter import CountingSmtpServer
from bench.proc_stats import Memory, memory_of
from stack.process import Service, free_port, http_ready

INGEST_TOKEN = "bench-ingest-token-0123456789"


def webhook_body(account: str, now: str) -> bytes:
    """One Alertmanager webhook payload (version 4) for one account's expired credential."""
    alert = ms.expired_credential_alerts([account], ms.utc_now())[0]
    labels = alert["labels"]
    return json.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "mailer",
            "truncatedAlerts": 0,
            "groupKey": f'{{}}:{{account="{account}"}}',
            "groupLabels": {"account": account},
            "commonLabels": labels,
            "commonAnnotations": alert["annotations"],
            "externalURL": "http://127.0.0.1:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": alert["annotations"],
                    "startsAt": now,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": hashlib.sha256(account.encode()).hexdigest()[:16],
                }
            ],
        }
    ).encode()


def mailer(
    accounts: int, notifications: int, workers: int, timeout: float
) -> tuple[Memory, Memory, int]:
    """(memory when ready, memory after `notifications` webhooks were delivered, emails)."""
    ids = [ms.account_id(n) for n in range(1, accounts + 1)]
    with (
        tempfile.TemporaryDirectory(prefix="sysnotify-bench-memory-") as tmp,
        CountingSmtpServer(free_port()) as smtp,
    ):
        workdir = Path(tmp)
        config = ms.write_mailer_config(workdir, smtp.port)
        ms.seed_recipients(workdir / "mailer.db", ids)
        with ms.mailer_service(workdir, config, workers) as service:
            idle = memory_of(service.process.pid)  # type: ignore[union-attr]
            now = ms.utc_now().isoformat()
            session = requests.Session()
            headers = {
                "Authorization": f"Bearer {ms.WEBHOOK_TOKEN}",
                "Content-Type": "application/json",
            }
            url = f"{service.url}/alertmanager/webhook"  # type: ignore[attr-defined]
            for account in itertools.islice(ids, notifications):
                session.post(
                    url, data=webhook_body(account, now), headers=headers, timeout=30
                ).raise_for_status()
            smtp.wait_for(min(notifications, accounts), timeout)
            # Scrapes build the metrics from the store: include what that costs too.
            session.get(f"{service.url}/metrics", timeout=30)  # type: ignore[attr-defined]
            loaded = memory_of(service.process.pid)  # type: ignore[union-attr]
        return idle, loaded, smtp.count()


def exporter(accounts: int, days: int, seed: int = 42) -> tuple[Memory, Memory, int, float]:
    """(memory when ready, memory after two /metrics scrapes, events, load seconds)."""
    from sysnotify.exporter.config import ExporterConfig
    from sysnotify.exporter.events import validate_events
    from sysnotify.exporter.simulate import Simulator
    from sysnotify.exporter.store.backends import open_fact_store

    with tempfile.TemporaryDirectory(prefix="sysnotify-bench-memory-") as tmp:
        db = Path(tmp) / "exporter.db"
        store = open_fact_store(db)
        started = time.perf_counter()
        events = 0
        now = time.time()
        window = ExporterConfig().event_window(now)
        simulated = Simulator(seed=seed, accounts=accounts, days=days, now=now).events()
        while batch := list(itertools.islice(simulated, 5000)):
            valid, errors = validate_events(batch, window)
            if errors:
                raise SystemExit(f"simulator produced invalid events: {errors[:3]}")
            store.apply(valid)
            events += len(batch)
        store.close()
        load_seconds = time.perf_counter() - started
        port = free_port()
        exe = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "sysnotify-exporter"
        exe = exe if exe.exists() else ms.BIN / "sysnotify-exporter"
        service = Service(
            "exporter",
            [str(exe), "serve", "--listen", f"127.0.0.1:{port}", "--db", str(db)],
            Path(tmp) / "exporter.log",
            ready=http_ready(f"http://127.0.0.1:{port}/healthz"),
            env={"SYSNOTIFY_INGEST_TOKEN": INGEST_TOKEN},
            ready_timeout=60,
        )
        with service:
            idle = memory_of(service.process.pid)  # type: ignore[union-attr]
            for _ in range(2):
                requests.get(f"http://127.0.0.1:{port}/metrics", timeout=60).raise_for_status()
            loaded = memory_of(service.process.pid)  # type: ignore[union-attr]
        return idle, loaded, events, load_seconds


def mib(memory: Memory) -> str:
    return (
        f"RSS {memory.rss_bytes / 2**20:,.0f} MiB, PSS {memory.pss_bytes / 2**20:,.0f} MiB "
        f"({memory.processes} processes)"
    )
