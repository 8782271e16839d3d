"""An alert's startsAt changes while it fires, as after restarts: still one problem, one recovery.

Prometheus sends `startsAt` = the time the alert went firing, which a restarted Prometheus sets
anew (and each HA replica sets on its own); Alertmanager keeps the earliest while it runs, but
a restarted Alertmanager takes whatever arrives first. The end-to-end restart test found the
recovery of an alert fixed after such restarts missing: the mailer keyed its state by
(fingerprint, startsAt) and did not recognise the resolved alert. These are that sequence's
regression tests, in process.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sysnotify.mailer.config import config_from_mapping
from sysnotify.mailer.web.app import create_app, mailer_of
from tests.support.faults import notification
from tests.support.mailer_config import ADMIN_TOKEN, TOKENS_ENV, WEBHOOK_TOKEN, config_mapping
from tests.support.smtp import SmtpServer

FIRST = "2026-11-27T03:25:17.971000Z"
LATER = "2026-11-27T03:26:40Z"  # fired again after a Prometheus restart
EARLIER = "2026-11-27T03:25:15.500000Z"  # an HA replica that fired first
ENDED = "2026-11-27T03:40:00Z"  # endsAt of every resolved copy below
REFIRED = "2026-11-27T03:45:00Z"  # fired again after that recovery


@pytest.fixture
def app(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Any]:
    config = config_from_mapping(
        config_mapping(tmp_path, smtp_server.port), TOKENS_ENV, base_dir=tmp_path
    )
    flask_app = create_app(config, start_delivery=False)
    assert (
        flask_app.test_client()
        .put(
            "/api/v1/accounts/acc-0000/primary",
            json={"address": "admin@acc-0000.example"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        .status_code
        == 200
    )
    yield flask_app
    for worker in mailer_of(flask_app).workers:
        worker.sender.close()
    mailer_of(flask_app).store.close()


def send(app: Any, status: str, starts_at: str) -> list[str]:
    """Posts the alert with this status and startsAt; returns the phases of the emails sent."""
    payload = copy.deepcopy(notification(0, 1, status=status))
    for alert in payload["alerts"]:
        alert["startsAt"] = starts_at
        if status == "resolved":
            alert["endsAt"] = ENDED
    response = app.test_client().post(
        "/alertmanager/webhook", json=payload, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    assert response.status_code == 200
    before = len(
        mailer_of(app)
        .store.db.connection()
        .execute("SELECT id FROM outbox WHERE status = 'sent'")
        .fetchall()
    )
    mailer_of(app).workers[0].drain()
    rows = (
        mailer_of(app)
        .store.db.connection()
        .execute("SELECT phase FROM outbox WHERE status = 'sent' ORDER BY id")
        .fetchall()
    )
    return [r["phase"] for r in rows[before:]]


@pytest.mark.parametrize("drifted", [LATER, EARLIER])
def test_a_drifted_startsat_continues_the_open_episode(
    app: Any, smtp_server: SmtpServer, drifted: str
) -> None:
    assert send(app, "firing", FIRST) == ["problem"]
    assert send(app, "firing", drifted) == []  # the same problem, not a new one
    assert send(app, "resolved", drifted) == ["recovery"]  # found and recovered
    assert send(app, "resolved", FIRST) == []  # a late copy of the old identity
    problem, recovery = smtp_server.messages
    assert recovery.message["In-Reply-To"] == problem.message["Message-ID"]


def test_a_new_episode_after_the_recovery_is_a_new_problem(app: Any) -> None:
    assert send(app, "firing", FIRST) == ["problem"]
    assert send(app, "resolved", FIRST) == ["recovery"]
    assert send(app, "firing", REFIRED) == ["problem"]
    assert send(app, "resolved", REFIRED) == ["recovery"]


@pytest.mark.parametrize("drifted", [LATER, EARLIER])
def test_a_drifted_copy_arriving_after_the_recovery_sends_nothing(app: Any, drifted: str) -> None:
    """An HA replica or a restarted Prometheus fired the same problem at another time; its copy
    reaches the mailer after the recovery. It started before that recovery: no "the problem is
    back", and no second "working again" when it resolves."""
    assert send(app, "firing", FIRST) == ["problem"]
    assert send(app, "resolved", FIRST) == ["recovery"]
    assert send(app, "firing", drifted) == []
    assert send(app, "resolved", drifted) == []
