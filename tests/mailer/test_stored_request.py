"""Outbox rows outlive the release that wrote them: the stored request is read tolerantly.

tests/fixtures/outbox/credential_expired_format_1.json holds the two outbox rows that a
mailer of format 1 (before rows named their format) wrote for the captured Alertmanager
webhook credential_expired_firing.json, to a primary administrator and a subscriber, with the
clock at 1764062100 (2025-11-25T09:15:00Z).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sysnotify.mailer import stored_request
from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.intake.payload import parse
from sysnotify.mailer.model import Recipient
from sysnotify.mailer.stored_request import StoredRequestError, email_request
from sysnotify.mailer.web.app import mailer_of
from tests.support.alertmanager import fixture_payload
from tests.support.clocks import FakeClock
from tests.support.mailer_app import deliver, post
from tests.support.smtp import SmtpServer

FROZEN = (
    Path(__file__).resolve().parents[1] / "fixtures" / "outbox" / "credential_expired_format_1.json"
)
CATALOG = Catalog()


def frozen_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(FROZEN.read_text())
    return rows


def test_a_row_frozen_before_rows_named_their_format_reads_whole() -> None:
    primary, subscriber = (json.loads(row["request"]) for row in frozen_rows())
    assert "format" not in primary
    request = email_request(primary, CATALOG)
    assert request.notification.name == "credential_expired"
    assert (request.phase, request.account, request.account_name) == (
        "problem",
        "acc-1001",
        "Globex",
    )
    assert request.recipient == Recipient("jane.doe@acme.example", "primary")
    assert request.generated_at == datetime(2025, 11, 25, 9, 15, tzinfo=UTC)
    [alert] = request.alerts
    assert (alert.alertname, alert.status, alert.labels["system"]) == (
        "CredentialExpired",
        "firing",
        "eloqua",
    )
    assert email_request(subscriber, CATALOG).recipient == Recipient(
        "ops@acme.example", "subscriber"
    )


def test_todays_rows_name_their_format_and_read_back_the_same() -> None:
    frozen = json.loads(frozen_rows()[0]["request"])
    payload = json.loads(
        (
            Path(__file__).resolve().parents[1]
            / "fixtures"
            / "alertmanager"
            / "credential_expired_firing.json"
        ).read_text()
    )
    data = parse(payload)
    written = json.loads(
        stored_request.dumps(
            audience="customer",
            notification="credential_expired",
            phase="problem",
            account="acc-1001",
            account_name="Globex",
            alerts=data.alerts,
            recipient=Recipient("jane.doe@acme.example", "primary"),
            generated_at=1764062100.0,
        )
    )
    assert written.pop("format") == stored_request.FORMAT
    assert written == frozen
    assert email_request(written, CATALOG) == email_request(frozen, CATALOG)


def test_keys_a_later_release_adds_are_ignored() -> None:
    newer = json.loads(frozen_rows()[0]["request"])
    newer.update({"format": stored_request.FORMAT + 1, "locale": "de-DE"})
    newer["alerts"][0]["silenced_by"] = ["abc"]
    assert email_request(newer, CATALOG) == email_request(
        json.loads(frozen_rows()[0]["request"]), CATALOG
    )


def test_keys_an_email_can_do_without_get_defaults() -> None:
    sparse = json.loads(frozen_rows()[0]["request"])
    del sparse["account_name"], sparse["audience"], sparse["recipient"]["role"]
    del sparse["alerts"][0]["fingerprint"], sparse["alerts"][0]["endsAt"]
    request = email_request(sparse, CATALOG)
    assert request.account_name == "acc-1001"
    assert request.recipient == Recipient("jane.doe@acme.example", "subscriber")
    assert request.alerts[0].ends_at is None


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda r: r.pop("recipient"), "recipient is missing"),
        (lambda r: r["recipient"].pop("address"), "recipient.address is missing"),
        (lambda r: r["alerts"][0].pop("startsAt"), "alerts[0].startsAt is missing"),
        (lambda r: r.update(generated_at="yesterday"), "stored request:"),
        (lambda r: r.update(alerts=[17]), "stored request:"),
    ],
)
def test_a_row_missing_what_the_email_needs_is_refused_by_name(damage: Any, named: str) -> None:
    broken = json.loads(frozen_rows()[0]["request"])
    damage(broken)
    with pytest.raises(StoredRequestError, match=named.replace("[", r"\[")):
        email_request(broken, CATALOG)


def test_frozen_rows_are_sent_as_the_same_webhook_is_sent_today(
    make_app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    clock.now = 1764062100.0  # when the frozen rows were written
    app = make_app()
    registry = mailer_of(app).registry_api
    registry.set_primary("acc-1001", "jane.doe@acme.example")
    registry.add("acc-1001", "ops@acme.example", ["credentials"])
    outbox = mailer_of(app).store.db
    with outbox.write() as tx:
        for row in frozen_rows():
            tx.execute(
                f"INSERT INTO outbox ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
    assert deliver(app) == {"sent": 2}
    from_frozen_rows = smtp_server.messages
    with outbox.write() as tx:
        tx.execute("DELETE FROM outbox")
    assert post(app.test_client(), fixture_payload("credential_expired_firing")).json["queued"] == 2
    assert deliver(app) == {"sent": 2}
    from_todays_rows = smtp_server.messages[2:]

    def sent(received: Any) -> tuple[Any, ...]:
        message = received.message
        return (
            received.rcpt_tos,
            message["Subject"],
            message["X-Sysnotify-Notification"],
            [part.get_content() for part in message.walk() if not part.is_multipart()],
        )

    assert [sent(m) for m in from_frozen_rows] == [sent(m) for m in from_todays_rows]
    # A queued email keeps the Message-ID it was queued with (how a release derives new ones
    # from the notification key may differ: it names episodes, not Alertmanager's groups).
    assert [m.message["Message-ID"] for m in from_frozen_rows] == [
        row["message_id"] for row in frozen_rows()
    ]
