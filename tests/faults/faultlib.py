"""Helpers of the fault tests: a gunicorn mailer on loopback, generated notifications, counts.

Notifications are Alertmanager version-4 payloads shaped like the captured fixtures in
tests/fixtures/alertmanager/; each generated one has its own group, fingerprint and startsAt,
so it means exactly one problem email per recipient. Emails are told apart by their
Message-ID, which the mailer derives from the notification and the recipient: the same
Message-ID twice in the SMTP server is a duplicate.
"""

from __future__ import annotations

import collections
import sqlite3
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.mailer.conftest import (
    ADMIN_TOKEN,
    BIN,
    TOKENS_ENV,
    WEBHOOK_TOKEN,
    config_mapping,
    mailer_service,
    wait_until,
)

SYSTEMS = ("salesforce", "eloqua", "marketo", "hubspot", "pardot")


def write_mailer_config(workdir: Path, smtp_port: int, **sections: Any) -> Path:
    """The mailer test config (tests/mailer/conftest.py) with short SMTP timeouts and backoff,
    overridden per section; returns the YAML file's path."""
    defaults: dict[str, Any] = {
        "smtp": {"timeout": "2s"},
        "delivery": {"poll_interval": "0.1s", "lease": "5s", "backoff_initial": "0.2s",
                     "backoff_max": "2s"},
    }
    for name, value in sections.items():
        defaults[name] = {**defaults.get(name, {}), **value}
    path = workdir / "mailer.yml"
    path.write_text(yaml.safe_dump(config_mapping(workdir, smtp_port, **defaults)))
    return path


def set_primaries(config: Path, primaries: dict[str, str]) -> None:
    """Registers each account's primary administrator with the CLI (same store as the app)."""
    for account, address in primaries.items():
        subprocess.run([str(BIN / "sysnotify-mailer"), "--config", str(config), "recipients",
                        "set-primary", account, address],
                       check=True, capture_output=True, env={"PATH": str(BIN)})


def account_of(number: int, accounts: int) -> str:
    return f"acc-{number % accounts:04d}"


def primary_of(account: str) -> str:
    return f"admin@{account}.customer.example"


def notification(number: int, accounts: int, status: str = "firing",
                 starts_at: datetime | None = None) -> dict[str, Any]:
    """Notification `number`: one CredentialExpired alert in its own group."""
    account = account_of(number, accounts)
    system = SYSTEMS[number % len(SYSTEMS)]
    started = starts_at or datetime(2026, 11, 27, 2, 0, tzinfo=UTC) + timedelta(seconds=number)
    labels = {"account": account, "account_name": f"Customer {account}",
              "alertname": "CredentialExpired", "audience": "customer",
              "category": "credentials", "severity": "critical", "system": system,
              "case": str(number)}
    annotations = {"summary": "An integration password has expired.",
                   "description": f"The {system} password of Customer {account} expired.",
                   "reason": "expired",
                   "runbook_url": "https://github.com/sysnotify/sysnotify/blob/main/docs/"
                                  "runbooks.md#credentialexpired"}
    ends_at = "0001-01-01T00:00:00Z" if status == "firing" else \
        (started + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    group_labels = {"account": account, "alertname": "CredentialExpired", "case": str(number)}
    return {
        "version": "4", "receiver": "mailer", "status": status, "truncatedAlerts": 0,
        "groupKey": "{}/{audience=\"customer\"}:{" + ", ".join(
            f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}",
        "groupLabels": group_labels, "commonLabels": labels, "commonAnnotations": annotations,
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [{"status": status, "labels": labels, "annotations": annotations,
                    "startsAt": started.isoformat().replace("+00:00", "Z"), "endsAt": ends_at,
                    "generatorURL": "http://127.0.0.1:9090/graph",
                    "fingerprint": f"{number:016x}"}],
    }


def post_webhook(port: int, payload: Any, path: str = "/alertmanager/webhook",
                 token: str = WEBHOOK_TOKEN) -> requests.Response:
    return requests.post(f"http://127.0.0.1:{port}{path}", json=payload, timeout=60,
                         headers={"Authorization": f"Bearer {token}"})


def post_all(port: int, payloads: Sequence[Any], threads: int = 4) -> list[int]:
    """Posts every payload (like Alertmanager's concurrent aggregation groups); the statuses."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda p: post_webhook(port, p).status_code, payloads))


@dataclass(frozen=True)
class Tally:
    """What the SMTP server received against what the outbox expected."""

    expected: int
    delivered: int  # distinct expected Message-IDs received
    lost: int  # expected, never received
    doubled: int  # extra copies of received Message-IDs
    unexpected: int  # received but not expected

    def row(self) -> str:
        return (f"expected={self.expected} delivered={self.delivered} lost={self.lost} "
                f"doubled={self.doubled} unexpected={self.unexpected}")


def tally(expected_ids: Iterable[str], received_ids: Iterable[str]) -> Tally:
    expected = set(expected_ids)
    counts = collections.Counter(received_ids)
    return Tally(expected=len(expected), delivered=len(expected & set(counts)),
                 lost=len(expected - set(counts)),
                 doubled=sum(n - 1 for n in counts.values() if n > 1),
                 unexpected=len(set(counts) - expected))


def outbox_rows(db: Path) -> list[sqlite3.Row]:
    """Every outbox row (message_id, recipient, status, attempts), read without the app."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT message_id, recipient, status, attempts, last_error "
                            "FROM outbox ORDER BY id").fetchall()
    finally:
        conn.close()


def report(name: str, **figures: object) -> None:
    """Prints a test's measured figures (run pytest with -s to read them for the docs)."""
    print(f"\n[reliability] {name}: " + " ".join(f"{k}={v}" for k, v in figures.items()))


# Shared with tests/mailer, offered here too so the fault tests import from one place.
__all__ = ["ADMIN_TOKEN", "BIN", "TOKENS_ENV", "WEBHOOK_TOKEN", "mailer_service", "wait_until"]
