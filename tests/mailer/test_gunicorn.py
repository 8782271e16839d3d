"""The mailer under real gunicorn (2 workers): webhooks in, emails out, metrics across
workers, and a SIGKILL in the middle of delivery."""

from __future__ import annotations

import collections
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from stack.process import Service, free_port, http_ready
from tests.support.alertmanager import ALERTMANAGER_WEBHOOK_CONFIG, fixture_payload
from tests.support.mailer_config import ADMIN_TOKEN, TOKENS_ENV, WEBHOOK_TOKEN, config_mapping
from tests.support.mailer_process import (
    FIRING,
    RECIPIENTS,
    cli,
    mailer_service,
    post_fixtures,
    register_all,
    scrape,
)
from tests.support.paths import BIN
from tests.support.polling import wait_until
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, smtp_port: int) -> Path:
    mapping = config_mapping(
        tmp_path,
        smtp_port,
        smtp={"timeout": "2s"},
        delivery={
            "poll_interval": "0.1s",
            "lease": "5s",
            "backoff_initial": "0.2s",
            "backoff_max": "1s",
        },
    )
    path = tmp_path / "mailer.yml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def test_two_workers_deliver_each_email_once_and_agree_on_metrics(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config = write_config(tmp_path, smtp_server.port)
    expected = register_all(config)
    port = free_port()
    with mailer_service(tmp_path, config, port):
        # Each payload twice (an Alertmanager retry or HA peer), concurrently.
        assert post_fixtures(port, FIRING + FIRING) == [200] * (2 * len(FIRING))
        assert wait_until(lambda: len(smtp_server.messages) >= expected)
        time.sleep(0.5)  # anything extra would show up now
        ids = [r.message["Message-ID"] for r in smtp_server.messages]
        assert len(ids) == expected == len(set(ids))
        for _ in range(6):  # several scrapes land on both workers
            samples = scrape(port)
            assert (
                sum(
                    v
                    for k, v in samples.items()
                    if k.startswith("sysnotify_mailer_emails_sent_total")
                )
                == expected
            )
            assert samples['sysnotify_mailer_webhook_requests_total{code="200"}'] == 2 * len(FIRING)
            assert (
                sum(
                    v
                    for k, v in samples.items()
                    if k.startswith("sysnotify_mailer_notifications_deduplicated_total")
                )
                == 8
            )
            assert samples["sysnotify_mailer_outbox_pending_emails"] == 0
        response = requests.get(
            f"http://127.0.0.1:{port}/api/v1/emails?status=sent",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert len(response.json()["emails"]) == expected


def test_sigkill_during_delivery_then_restart_delivers_the_rest(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config = write_config(tmp_path, smtp_server.port)
    expected = register_all(config)
    smtp_server.handler.data_delay = 0.3  # a slow server keeps deliveries in flight
    port = free_port()
    service = mailer_service(tmp_path, config, port)
    with service:
        assert post_fixtures(port, FIRING) == [200] * len(FIRING)
        assert wait_until(lambda: len(smtp_server.messages) >= 2)
        service.kill()
    before = len(smtp_server.messages)
    assert before < expected, "delivery finished before the kill; slow the server down"
    with mailer_service(tmp_path, config, port):
        assert wait_until(
            lambda: len({r.message["Message-ID"] for r in smtp_server.messages}) >= expected
        )
    conn = sqlite3.connect(tmp_path / "mailer.db")
    rows = conn.execute("SELECT message_id, status FROM outbox").fetchall()
    conn.close()
    assert len(rows) == expected and {status for _, status in rows} == {"sent"}
    received = collections.Counter(r.message["Message-ID"] for r in smtp_server.messages)
    assert set(received) == {message_id for message_id, _ in rows}
    # At most the emails in flight at the kill (one per delivery thread) arrive twice.
    assert sum(count - 1 for count in received.values()) <= 2


def test_two_unclustered_alertmanagers_produce_one_email_per_recipient(
    tmp_path: Path, smtp_server: SmtpServer, binary: Any
) -> None:
    """The worst HA case (a partition): both Alertmanagers notify; each email goes once."""
    from stack import servers

    binary("alertmanager")
    config = write_config(tmp_path, smtp_server.port)
    cli(config, "recipients", "set-primary", "acc-1002", RECIPIENTS[0])
    cli(config, "recipients", "add", "acc-1002", RECIPIENTS[1], "--categories", "credentials")
    port = free_port()
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(ALERTMANAGER_WEBHOOK_CONFIG.format(port=port, token=WEBHOOK_TOKEN))
    # Prometheus sends the same startsAt (the rule's activeAt) to every Alertmanager. A fresh
    # one: an alert older than group_wait makes Alertmanager flush at once, while it is still
    # taking the others of this post, and the rest would then come as the group growing (a
    # second problem email about them, rightly), which is not what this test is about.
    starts_at = datetime.now(UTC).isoformat()
    alerts = [
        {"labels": a["labels"], "annotations": a["annotations"], "startsAt": starts_at}
        for a in fixture_payload("credential_expired_grouped_firing")["alerts"]
    ]
    with (
        mailer_service(tmp_path, config, port),
        servers.alertmanager(am_config, tmp_path, name="am-a") as am_a,
        servers.alertmanager(am_config, tmp_path, name="am-b") as am_b,
    ):
        for am in (am_a, am_b):
            requests.post(
                f"{am.url}/api/v2/alerts",
                json=alerts,  # type: ignore[attr-defined]
                timeout=10,
            ).raise_for_status()
        assert wait_until(
            lambda: scrape(port).get('sysnotify_mailer_webhook_requests_total{code="200"}', 0) >= 2
        )
        assert wait_until(lambda: len(smtp_server.messages) >= 2)
        now = datetime.now(UTC).isoformat()
        ended = [{**alert, "endsAt": now} for alert in alerts[:1]]
        for am in (am_a, am_b):
            requests.post(
                f"{am.url}/api/v2/alerts",
                json=ended,  # type: ignore[attr-defined]
                timeout=10,
            ).raise_for_status()
        assert wait_until(
            lambda: scrape(port).get('sysnotify_mailer_webhook_requests_total{code="200"}', 0) >= 4
        )
        assert wait_until(lambda: len(smtp_server.messages) >= 4)
        time.sleep(1)  # a duplicate would arrive now
        samples = scrape(port)
    by_recipient = collections.defaultdict(list)
    for item in smtp_server.messages:
        by_recipient[item.rcpt_tos[0]].append(item.message)
    assert set(by_recipient) == set(RECIPIENTS[:2])
    for recipient, messages in by_recipient.items():
        sent = [(m["X-Sysnotify-Phase"], m["Message-ID"]) for m in messages]
        assert len(messages) == 2, f"{recipient}: {sent}"
        problem, recovery = messages
        assert recovery["In-Reply-To"] == problem["Message-ID"]
    assert (
        samples[
            'sysnotify_mailer_notifications_deduplicated_total{notification="credential_expired"}'
        ]
        >= 3
    )


def test_serve_command_runs_gunicorn_on_the_given_address(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config = write_config(tmp_path, smtp_server.port)
    port = free_port()
    argv = [
        str(BIN / "sysnotify-mailer"),
        "--config",
        str(config),
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
    ]
    with Service(
        "mailer-serve",
        argv,
        tmp_path / "serve.log",
        env=TOKENS_ENV,
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
        ready_timeout=60,
    ):
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {
            "status": "ok"
        }
