"""Retention: sent and failed emails and undeliverable notes are deleted when their time is up,
in short batches, by the delivery threads; pending emails and what deduplication needs stay."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sysnotify.mailer import retention
from sysnotify.mailer.config import ConfigError, config_from_mapping
from sysnotify.mailer.retention import Pruner
from sysnotify.mailer.web.app import mailer_of
from tests.support.alertmanager import fixture_payload
from tests.support.clocks import FakeClock
from tests.support.faults import notification
from tests.support.mailer_app import CREDENTIALS_ONLY, admin, deliver, post, queue_three, register
from tests.support.mailer_config import TOKENS_ENV, config_mapping
from tests.support.smtp import SmtpServer

DAY = 86400.0


def kept(app: Any) -> dict[str, int]:
    """Outbox rows by status, and undeliverable notes."""
    conn = mailer_of(app).store.db.connection()
    counts = dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
    counts["undeliverable"] = conn.execute("SELECT count(*) FROM undeliverable").fetchone()[0]
    return {name: counts.get(name, 0) for name in ("pending", "sent", "failed", "undeliverable")}


def one_of_each(app: Any, smtp_server: SmtpServer) -> None:
    """acc-1001's credential_expired problem: 2 emails sent, 1 failed (refused recipient);
    acc-2006's data_sync_delayed emails left pending (their retry due in a year); an
    undeliverable note."""
    client = queue_three(app)
    smtp_server.handler.refused_addresses[CREDENTIALS_ONLY] = "550 5.1.1 no such user"
    assert deliver(app) == {"sent": 2, "failed": 1}
    register(app, "acc-2006")
    assert post(client, fixture_payload("data_sync_delayed_firing")).json["queued"] == 3
    mailer_of(app).store.db.connection().execute(
        "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'",
        (mailer_of(app).clock() + 365 * DAY,),
    )
    assert post(client, fixture_payload("no_account_label_firing")).json["undeliverable"] == 1
    assert kept(app) == {"pending": 3, "sent": 2, "failed": 1, "undeliverable": 1}


def test_the_defaults_keep_sent_emails_past_the_alert_state_and_failed_ones_longest(
    tmp_path: Path,
) -> None:
    config = config_from_mapping(config_mapping(tmp_path, 25), TOKENS_ENV)
    assert config.retention.sent_emails_seconds == 35 * DAY
    assert config.retention.failed_emails_seconds == 90 * DAY
    assert config.retention.undeliverable_seconds == 30 * DAY
    assert config.retention.sent_emails_seconds > config.dedup.state_retention_seconds


@pytest.mark.parametrize(
    ("retention_", "dedup", "keys"),
    [
        ({"sent_emails": "30d"}, {}, ["sent_emails"]),
        (
            {"sent_emails": "40d", "failed_emails": "40d"},
            {"state_retention": "45d"},
            ["sent_emails", "failed_emails"],
        ),
        (
            {"sent_emails": "2h"},
            {"state_retention": "90m", "receiver_windows": {"slow": "3h"}},
            ["sent_emails"],
        ),
    ],
)
def test_finished_emails_must_outlast_the_alert_state_and_every_duplicate_window(
    tmp_path: Path, retention_: dict[str, str], dedup: dict[str, Any], keys: list[str]
) -> None:
    mapping = config_mapping(tmp_path, 25, retention=retention_, dedup=dedup)
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(mapping, TOKENS_ENV)
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        f"retention.{key}" for key in keys
    ]
    assert "re-delivered webhook" in caught.value.problems[0]


def test_each_kind_is_deleted_once_its_retention_has_passed_and_pending_emails_never(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    one_of_each(app, smtp_server)
    pruner = mailer_of(app).workers[0].pruner
    clock.advance(30 * DAY - 1)
    pruner.run(clock())
    assert kept(app) == {"pending": 3, "sent": 2, "failed": 1, "undeliverable": 1}
    clock.advance(2)  # undeliverable notes: 30 days
    pruner.run(clock())
    assert kept(app) == {"pending": 3, "sent": 2, "failed": 1, "undeliverable": 0}
    clock.advance(5 * DAY)  # sent emails: 35 days
    pruner.run(clock())
    assert kept(app) == {"pending": 3, "sent": 0, "failed": 1, "undeliverable": 0}
    clock.advance(55 * DAY)  # failed emails: 90 days
    pruner.run(clock())
    assert kept(app) == {"pending": 3, "sent": 0, "failed": 0, "undeliverable": 0}
    clock.advance(3650 * DAY)
    pruner.run(clock())
    assert kept(app)["pending"] == 3


def test_the_admin_api_lists_what_is_kept(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    one_of_each(app, smtp_server)
    clock.advance(36 * DAY)
    mailer_of(app).workers[0].pruner.run(clock())
    client = app.test_client()
    assert admin(client, "GET", "/emails?status=sent").json["emails"] == []
    assert len(admin(client, "GET", "/emails?status=failed").json["emails"]) == 1
    assert admin(client, "GET", "/undeliverable").json["undeliverable"] == []


def test_pending_emails_cannot_be_pruned(app: Any) -> None:
    with pytest.raises(ValueError, match="not 'pending'"):
        mailer_of(app).store.prune_emails("pending", time.time(), 10)


def test_the_delivery_thread_prunes_in_the_background(
    make_app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    app = make_app()
    one_of_each(app, smtp_server)
    clock.advance(91 * DAY)
    mailer_of(app).start_delivery()
    deadline = time.monotonic() + 20
    while kept(app)["sent"] and time.monotonic() < deadline:
        time.sleep(0.05)
    mailer_of(app).stop_delivery()
    assert kept(app) == {"pending": 3, "sent": 0, "failed": 0, "undeliverable": 0}


def test_a_webhook_redelivered_after_its_alert_state_was_forgotten_sends_nothing(
    app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """The alert state goes after 30 days unseen; the sent email's row (35 days) still stops
    a late copy of the notification from queueing it again."""
    client = queue_three(app)
    assert deliver(app) == {"sent": 3}
    clock.advance(31 * DAY)
    pruned = mailer_of(app).workers[0].pruner.run(clock())
    assert (pruned.alert_states, pruned.sent_emails) == (1, 0)
    again = post(client, fixture_payload("credential_expired_firing")).json
    assert again["queued"] == 0
    assert deliver(app) == {}
    assert len(smtp_server.messages) == 3


def old_sent_rows(app: Any, count: int) -> None:
    """`count` sent emails finished 40 days ago, copied from one real row."""
    queue_three(app)
    assert deliver(app) == {"sent": 3}
    conn = mailer_of(app).store.db.connection()
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO outbox (notification_key, recipient, notification, phase, account,"
        " message_id, request, received_at, queued_at, status, next_attempt_at, finished_at)"
        " SELECT 'old-' || i, recipient, notification, phase, account, message_id, request,"
        " received_at, queued_at, 'sent', next_attempt_at, ?"
        " FROM n, (SELECT * FROM outbox LIMIT 1)",
        (count, mailer_of(app).clock() - 40 * DAY),
    )


def test_pruning_deletes_bounded_batches_and_lets_webhooks_commit_between_them(
    app: Any, clock: FakeClock
) -> None:
    batch = retention.PRUNE_BATCH
    old_sent_rows(app, 2 * batch + 100)
    register(app, "acc-0000")
    client = app.test_client()
    between: list[tuple[int, int]] = []

    def pause(seconds: float) -> bool:
        queued = post(client, notification(len(between), accounts=1)).json["queued"]
        between.append((kept(app)["sent"], queued))
        return False

    store = mailer_of(app).store
    pruner = Pruner(store, mailer_of(app).config.retention, 30 * DAY, clock, pause)
    pruned = pruner.run(clock())
    assert pruned.sent_emails == 2 * batch + 100 and pruned.finished
    # Each pause came after one committed batch; the webhook in it committed at once.
    assert between == [(3 + batch + 100, 3), (3 + 100, 3)]
    assert kept(app)["sent"] == 3


def test_a_backlog_is_pruned_over_several_runs_with_deliveries_in_between(
    app: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "MAX_BATCHES_PER_RUN", 2)
    batch = retention.PRUNE_BATCH
    old_sent_rows(app, 2 * batch + 100)
    pruner = Pruner(
        mailer_of(app).store, mailer_of(app).config.retention, 30 * DAY, clock, lambda _: False
    )
    first = pruner.prune_if_due()
    assert first is not None and (first.sent_emails, first.finished) == (2 * batch, False)
    assert pruner.prune_if_due() is None  # the thread sends what is due first
    clock.advance(retention.BACKLOG_DELAY_SECONDS)
    second = pruner.prune_if_due()
    assert second is not None and (second.sent_emails, second.finished) == (100, True)
    clock.advance(retention.BACKLOG_DELAY_SECONDS)
    assert pruner.prune_if_due() is None  # the next run is an hour later
    clock.advance(retention.PRUNE_EVERY_SECONDS)
    assert pruner.prune_if_due() == retention.Pruned()
