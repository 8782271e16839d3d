"""Helpers of the fault tests: generated notifications and the counts the tests check.

Notifications are Alertmanager version-4 payloads shaped like the captured fixtures in
tests/fixtures/alertmanager/; each generated one has its own group, fingerprint and startsAt,
so it means exactly one problem email per recipient. Emails are told apart by their
Message-ID, which the mailer derives from the notification and the recipient: the same
Message-ID twice in the SMTP server is a duplicate.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.smtp import SmtpServer

SYSTEMS = ("salesforce", "eloqua", "marketo", "hubspot", "pardot")


def account_of(number: int, accounts: int) -> str:
    return f"acc-{number % accounts:04d}"


def primary_of(account: str) -> str:
    return f"admin@{account}.customer.example"


def notification(
    number: int, accounts: int, status: str = "firing", starts_at: datetime | None = None
) -> dict[str, Any]:
    """Notification `number`: one CredentialExpired alert in its own group."""
    account = account_of(number, accounts)
    system = SYSTEMS[number % len(SYSTEMS)]
    started = starts_at or datetime(2026, 11, 27, 2, 0, tzinfo=UTC) + timedelta(seconds=number)
    labels = {
        "account": account,
        "alertname": "CredentialExpired",
        "audience": "customer",
        "category": "credentials",
        "severity": "critical",
        "system": system,
        "case": str(number),
    }
    annotations = {
        "account_name": f"Customer {account}",
        "summary": "An integration password has expired.",
        "description": f"The {system} password of Customer {account} expired.",
        "reason": "expired",
        "runbook_url": "https://github.com/sysnotify/sysnotify/blob/main/docs/"
        "runbooks.md#credentialexpired",
    }
    ends_at = (
        "0001-01-01T00:00:00Z"
        if status == "firing"
        else (started + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    )
    group_labels = {"account": account, "alertname": "CredentialExpired", "case": str(number)}
    return {
        "version": "4",
        "receiver": "mailer",
        "status": status,
        "truncatedAlerts": 0,
        "groupKey": '{}/{audience="customer"}:{'
        + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
        + "}",
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": started.isoformat().replace("+00:00", "Z"),
                "endsAt": ends_at,
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": f"{number:016x}",
            }
        ],
    }


@dataclass(frozen=True)
class Tally:
    """What the SMTP server received against what the outbox expected."""

    expected: int
    delivered: int  # distinct expected Message-IDs received
    lost: int  # expected, never received
    doubled: int  # extra copies of received Message-IDs
    unexpected: int  # received but not expected

    def row(self) -> str:
        return (
            f"expected={self.expected} delivered={self.delivered} lost={self.lost} "
            f"doubled={self.doubled} unexpected={self.unexpected}"
        )


def tally(expected_ids: Iterable[str], received_ids: Iterable[str]) -> Tally:
    expected = set(expected_ids)
    counts = collections.Counter(received_ids)
    return Tally(
        expected=len(expected),
        delivered=len(expected & set(counts)),
        lost=len(expected - set(counts)),
        doubled=sum(n - 1 for n in counts.values() if n > 1),
        unexpected=len(set(counts) - expected),
    )


def outbox_rows(db: Path) -> list[sqlite3.Row]:
    """Every outbox row (message_id, recipient, status, attempts), read without the app."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(
            "SELECT message_id, recipient, status, attempts, last_error FROM outbox ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def report(name: str, **figures: object) -> None:
    """Prints a test's measured figures (run pytest with -s to read them for the docs)."""
    print(f"\n[reliability] {name}: " + " ".join(f"{k}={v}" for k, v in figures.items()))


def phases(smtp_server: SmtpServer) -> collections.Counter[tuple[str, str]]:
    """(account, phase) -> emails received."""
    return collections.Counter(
        (m.message["X-Sysnotify-Account"], m.message["X-Sysnotify-Phase"])
        for m in smtp_server.messages
    )
