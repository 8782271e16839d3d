"""Pieces the mailer benchmark starts: alerts, Alertmanager configs, the mailer under gunicorn.

Everything listens on 127.0.0.1 on ports from stack.process.free_port() and is stopped by the
caller's `with` blocks.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from stack import servers
from stack.local import DEMO_BRAND
from stack.process import Service, free_port, http_ready
from sysnotify.gunicorn import bind_address, mailer_argv
from sysnotify.mailer.store.sqlite import SqliteStore

BIN = Path(sys.executable).parent
WEBHOOK_TOKEN = "bench-webhook-token-0123456789"
ADMIN_TOKEN = "bench-admin-token-0123456789"
# Request time in milliseconds last: gunicorn measures it from reading the request to
# writing the response, i.e. the mailer's own answer time without Alertmanager's side.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(M)s"


def account_id(number: int) -> str:
    return f"bench-{number:05d}"


def recipient_of(account: str) -> str:
    return f"admin@{account}.customers.example"


def expired_credential_alerts(accounts: Sequence[str], now: datetime) -> list[dict[str, Any]]:
    """One firing CredentialExpired alert per account, shaped like the shipped rule's."""
    return [
        {
            "labels": {
                "alertname": "CredentialExpired",
                "account": account,
                "audience": "customer",
                "category": "credentials",
                "severity": "critical",
                "system": "salesforce",
            },
            "annotations": {
                "account_name": f"Customer {account}",
                "summary": "An integration password has expired.",
                "description": f"The salesforce password of {account} expired.",
                "reason": "expired",
                "expired_at": now.isoformat(),
            },
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
        }
        for account in accounts
    ]


def _route(receiver: str) -> dict[str, Any]:
    # One aggregation group per alert (grouped by account), flushed at once, never repeated
    # during the run.
    return {
        "receiver": receiver,
        "group_by": ["account"],
        "group_wait": "0s",
        "group_interval": "1h",
        "repeat_interval": "24h",
    }


def alertmanager_email_config(smtp_port: int) -> dict[str, Any]:
    """Alertmanager's own email notifier, one email per group to the account's address."""
    return {
        "global": {
            "smtp_smarthost": f"127.0.0.1:{smtp_port}",
            "smtp_from": "alerts@acme-abm.example",
            "smtp_require_tls": False,
        },
        "route": _route("email"),
        "receivers": [
            {
                "name": "email",
                "email_configs": [
                    {
                        "to": "admin@{{ .CommonLabels.account }}.customers.example",
                        "send_resolved": False,
                    }
                ],
            }
        ],
    }


def alertmanager_webhook_config(mailer_port: int, token_file: Path) -> dict[str, Any]:
    """Alertmanager posting each group to the mailer, configured as the shipped file does."""
    return {
        "route": _route("mailer"),
        "receivers": [
            {
                "name": "mailer",
                "webhook_configs": [
                    {
                        "url": f"http://127.0.0.1:{mailer_port}/alertmanager/webhook",
                        "send_resolved": True,
                        "max_alerts": 0,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                        },
                    }
                ],
            }
        ],
    }


def alertmanager(config: dict[str, Any], workdir: Path, name: str) -> Service:
    path = workdir / f"{name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return servers.alertmanager(path, workdir, name=name)


def post_alerts(am_url: str, alerts: list[dict[str, Any]], batch: int = 500) -> None:
    for start in range(0, len(alerts), batch):
        response = requests.post(
            f"{am_url}/api/v2/alerts", json=alerts[start : start + batch], timeout=30
        )
        response.raise_for_status()


def write_mailer_config(
    workdir: Path,
    smtp_port: int,
    delivery: dict[str, Any] | None = None,
) -> Path:
    config = {
        "store": {"path": str(workdir / "mailer.db")},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": "10s"},
        "delivery": delivery or {},
        "brand": dict(DEMO_BRAND),
    }
    path = workdir / "mailer.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def seed_recipients(db: Path, accounts: Iterable[str]) -> int:
    """Registers each account's primary administrator in one transaction.

    The admin API would take one fsynced transaction per account; the rows are the same.
    """
    store = SqliteStore(db)
    store.migrate()
    now = time.time()
    rows = [(account, recipient_of(account), "primary", "", now) for account in accounts]
    try:
        with store.db.write() as tx:
            tx.executemany(
                "INSERT INTO recipients (account, address, role, categories, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
    finally:
        store.close()
    return len(rows)


def mailer_service(
    workdir: Path, config: Path, workers: int, extra_args: Sequence[str] = ()
) -> Service:
    """The mailer under gunicorn with an access log that records each request's time."""
    port = free_port()
    argv = mailer_argv(
        bind_address("127.0.0.1", port),
        workers,
        (
            "--graceful-timeout",
            "5",
            "--access-logfile",
            str(workdir / "mailer-access.log"),
            "--access-logformat",
            ACCESS_LOG_FORMAT,
            *extra_args,
        ),
    )
    service = Service(
        "mailer",
        argv,
        workdir / "mailer.log",
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
        env={
            "SYSNOTIFY_MAILER_CONFIG": str(config),
            "SYSNOTIFY_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "SYSNOTIFY_ADMIN_TOKEN": ADMIN_TOKEN,
        },
        ready_timeout=60,
    )
    service.port = port  # type: ignore[attr-defined]
    service.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return service


def delivery_service(workdir: Path, config: Path) -> Service:
    """`sysnotify-mailer deliver --watch` on the same store: the delivery process that takes
    the work of gunicorn workers configured with `delivery.enabled: false`."""
    wake_socket = Path(f"{workdir / 'mailer.db'}.wake")
    return Service(
        "delivery",
        [str(BIN / "sysnotify-mailer"), "--config", str(config), "deliver", "--watch"],
        workdir / "delivery.log",
        ready=wake_socket.exists,
        env={"SYSNOTIFY_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "SYSNOTIFY_ADMIN_TOKEN": ADMIN_TOKEN},
        ready_timeout=60,
    )


def webhook_answers(access_log: Path) -> list[tuple[str, float]]:
    """(status, request time in ms) of each webhook answer in a gunicorn access log
    (ACCESS_LOG_FORMAT), in the order they were written."""
    answers = []
    for line in access_log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1] == "/alertmanager/webhook":
            answers.append((parts[2], float(parts[3])))
    return answers


def webhook_times_ms(access_log: Path) -> list[float]:
    """Request times (ms) of the webhook answers in a gunicorn access log (ACCESS_LOG_FORMAT)."""
    return [ms for _, ms in webhook_answers(access_log)]


def outbox_latencies(db: Path) -> list[tuple[str, float, float]]:
    """(account, received_at, finished_at) of every sent outbox row, read-only."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [
            (row[0], row[1], row[2])
            for row in conn.execute(
                "SELECT account, received_at, finished_at FROM outbox WHERE status = 'sent'"
            )
        ]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 2,000 values is the 1,980th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def utc_now() -> datetime:
    return datetime.now(UTC)
