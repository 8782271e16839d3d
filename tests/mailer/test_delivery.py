"""Delivery: retries, permanent failures, SMTP outages, leases, connection reuse."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sysnotify.mailer.delivery.queue import Queue
from sysnotify.mailer.delivery.worker import DeliveryWorker, backoff_delay
from sysnotify.mailer.model import EmailRequest, RenderedEmail
from sysnotify.mailer.web.app import mailer_of
from tests.support.alertmanager import fixture_payload
from tests.support.clocks import FakeClock
from tests.support.mailer_app import (
    PRIMARY,
    admin,
    deliver,
    metric,
    pending,
    post,
    queue_three,
)
from tests.support.smtp import SmtpServer


def test_transient_refusal_is_retried_with_backoff_then_delivered_once(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    client = queue_three(app)
    smtp_server.fail("451 4.3.0 try again later")
    assert deliver(app) == {"retry": 3}
    assert deliver(app) == {}  # nothing due before the backoff elapses
    smtp_server.heal()
    clock.advance(1)
    assert deliver(app) == {"sent": 3}
    clock.advance(60)
    assert deliver(app) == {}
    assert len(smtp_server.messages) == 3
    assert metric(client, "sysnotify_mailer_smtp_errors_total", 'kind="transient"') == 3
    assert (
        metric(client, "sysnotify_mailer_emails_sent_total", 'notification="credential_expired"')
        == 3
    )


def test_a_notification_is_rendered_once_per_role_and_addressed_per_recipient(
    app: Any, smtp_server: SmtpServer
) -> None:
    queue_three(app)  # the primary and two subscribers
    renderer = mailer_of(app).renderer
    roles: list[str] = []
    render = renderer.render

    def counting(request: EmailRequest) -> RenderedEmail:
        roles.append(request.recipient.role)
        return render(request)

    renderer.render = counting
    assert deliver(app) == {"sent": 3}
    assert sorted(roles) == ["primary", "subscriber"]
    messages = {m.rcpt_tos[0]: m.message for m in smtp_server.messages}
    assert {m["To"] for m in messages.values()} == set(messages)
    subscribers = [m for address, m in messages.items() if address != PRIMARY]
    bodies = [m.get_body(("plain",)).get_content() for m in subscribers]
    assert bodies[0] == bodies[1]
    assert messages[PRIMARY].get_body(("plain",)).get_content() != bodies[0]


def test_permanent_refusal_fails_that_email_only_visibly_and_counted(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    client = queue_three(app)
    smtp_server.refuse(PRIMARY)
    assert deliver(app) == {"failed": 1, "sent": 2}
    clock.advance(3600)
    assert deliver(app) == {}  # never retried
    failed = admin(client, "GET", "/emails?status=failed").json["emails"]
    assert [(e["recipient"], e["attempts"]) for e in failed] == [(PRIMARY, 1)]
    assert failed[0]["last_error"].startswith(f"RCPT TO {PRIMARY}: 550")
    assert (
        metric(client, "sysnotify_mailer_emails_failed_total", 'notification="credential_expired"')
        == 1
    )
    assert metric(client, "sysnotify_mailer_smtp_errors_total", 'kind="permanent"') == 1


def test_smtp_down_then_up_delivers_everything_exactly_once(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    queue_three(app)
    smtp_server.stop()
    for _ in range(3):
        assert set(deliver(app)) <= {"retry"}
        clock.advance(5)
    assert pending(app) == 3
    smtp_server.start()
    assert deliver(app) == {"sent": 3}
    clock.advance(3600)
    assert deliver(app) == {}
    assert sorted(r.rcpt_tos[0] for r in smtp_server.messages) == sorted(
        {r.rcpt_tos[0] for r in smtp_server.messages}
    )
    assert len(smtp_server.messages) == 3


def test_attempts_are_capped(make_app: Any, smtp_server: SmtpServer, clock: FakeClock) -> None:
    app = make_app(delivery={"max_attempts": 2, "max_age": "1h"})
    client = queue_three(app)
    smtp_server.fail("421 4.7.0 busy")
    assert deliver(app) == {"retry": 3}
    clock.advance(5)
    assert deliver(app) == {"failed": 3}
    errors = [e["last_error"] for e in admin(client, "GET", "/emails?status=failed").json["emails"]]
    assert all(e.startswith("gave up after 2 attempts") for e in errors)
    assert (
        metric(client, "sysnotify_mailer_emails_failed_total", 'notification="credential_expired"')
        == 3
    )


def test_max_age_gives_up_on_old_emails(
    make_app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    app = make_app(delivery={"max_attempts": 100, "max_age": "10m"})
    client = queue_three(app)
    smtp_server.fail("451 later")
    assert deliver(app) == {"retry": 3}
    clock.advance(601)
    assert deliver(app) == {"failed": 3}
    assert all(
        e["last_error"].startswith("gave up after too old")
        for e in admin(client, "GET", "/emails?status=failed").json["emails"]
    )


def test_one_connection_is_reused_across_messages(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    queue_three(app)
    deliver(app)
    assert smtp_server.handler.sessions == 1
    # After the server dropped it, the next message reconnects transparently.
    smtp_server.stop()
    smtp_server.start()
    post(app.test_client(), fixture_payload("credential_expired_resolved"))
    assert deliver(app) == {"sent": 3}
    assert smtp_server.handler.sessions == 2


def test_a_claimed_row_is_not_claimed_again_until_its_lease_expires(
    app: Any, clock: FakeClock
) -> None:
    queue_three(app)
    store = mailer_of(app).store
    first, second = Queue(store, "worker-a", 30), Queue(store, "worker-b", 30)
    claimed = [first.claim(clock()), first.claim(clock()), first.claim(clock())]
    assert len({row.id for row in claimed if row}) == 3
    assert second.claim(clock()) is None
    clock.advance(31)  # worker-a died: its leases expire and worker-b takes over
    taken = [second.claim(clock()) for _ in range(3)]
    assert {row.id for row in taken if row} == {row.id for row in claimed if row}


class BrokenRenderer:
    def render(self, request: EmailRequest) -> RenderedEmail:
        raise ValueError("render subject of credential_expired: 'oops' is undefined")


def test_a_template_failure_fails_the_email_permanently(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    client = queue_three(app)
    mailer = mailer_of(app)
    worker = DeliveryWorker(
        mailer.store,
        mailer.catalog,
        BrokenRenderer(),
        mailer.workers[0].sender,
        mailer.config.brand,
        mailer.config.delivery,
        86400,
        clock,
    )
    assert worker.drain() == {"failed": 3}
    assert smtp_server.messages == []
    errors = [e["last_error"] for e in admin(client, "GET", "/emails").json["emails"]]
    assert (
        errors == ["prepare message: render subject of credential_expired: 'oops' is undefined"] * 3
    )


def test_background_thread_delivers_without_being_driven(
    make_app: Any, smtp_server: SmtpServer
) -> None:
    app = make_app(start_delivery=True)
    queue_three(app)
    deadline = time.monotonic() + 20
    while len(smtp_server.messages) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp_server.messages) == 3


@pytest.mark.parametrize(
    ("attempts", "low", "high"), [(1, 2.5, 5.0), (2, 5.0, 10.0), (3, 10.0, 20.0), (10, 30.0, 60.0)]
)
def test_backoff_grows_exponentially_with_jitter_and_a_cap(
    attempts: int, low: float, high: float
) -> None:
    assert backoff_delay(attempts, 5, 60, rng=lambda: 0.0) == low
    assert backoff_delay(attempts, 5, 60, rng=lambda: 1.0) == high


def test_alert_state_not_seen_for_the_retention_is_forgotten(app: Any, clock: FakeClock) -> None:
    queue_three(app)
    store = mailer_of(app).store
    clock.advance(10 * 86400)
    post(app.test_client(), fixture_payload("data_sync_delayed_firing"))
    assert (
        store.forget_alert_states(clock() - 5 * 86400) == 1
    )  # the credential alert, not the sync one
    remaining = store.db.connection().execute("SELECT notification FROM alert_state").fetchall()
    assert [r[0] for r in remaining] == ["data_sync_delayed"]


def test_deliver_command_sends_what_is_due(
    tmp_path: Any,
    app: Any,
    smtp_server: SmtpServer,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import yaml

    from sysnotify.mailer.cli import main
    from tests.support.mailer_config import TOKENS_ENV, config_mapping

    clock.now = time.time() - 1  # the command runs on the real clock
    queue_three(app)
    path = tmp_path / "mailer.yml"
    path.write_text(yaml.safe_dump(config_mapping(tmp_path, smtp_server.port)))
    for name, value in TOKENS_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["--config", str(path), "deliver"]) == 0
    assert capsys.readouterr().out.strip() == "sent: 3"
    assert len(smtp_server.messages) == 3
    assert main(["--config", str(path), "deliver"]) == 0
    assert capsys.readouterr().out.strip() == "nothing due"
