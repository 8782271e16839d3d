"""A store written before episodes had an identity (schema 1) keeps its open problems: after
the upgrade, nothing is mailed again and each problem still gets its one recovery, threaded
under the problem email it sent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sysnotify.mailer.delivery.message import message_id
from sysnotify.mailer.intake.payload import format_time, parse_time
from sysnotify.mailer.store.sqlite import MIGRATIONS
from sysnotify.sqlite import Database
from tests.support.alertmanager import fixture_payload, regrouped, with_starts_at
from tests.support.clocks import FakeClock
from tests.support.mailer_app import PRIMARY, deliver, post, register
from tests.support.smtp import SmtpServer

# What a schema-1 mailer stored for credential_expired_grouped_firing: one row per (receiver,
# groupKey, fingerprint, startsAt), each with the notification key of the problem email, from
# which that email's Message-IDs were derived (the value that release computed).
FIRING = fixture_payload("credential_expired_grouped_firing")
PROBLEM_KEY = "6fbc19b6636dade66ab3e9015780ebab72def4484f94276d40b52c33f21a500b"
# The same episode as a schema-1 mailer also kept it after a route edit: a second open row in
# another group, with its own problem key, last seen earlier.
OTHER_GROUP = regrouped(FIRING)["groupKey"]
OTHER_PROBLEM_KEY = "0" * 64


def schema_1_store(path: Path, now: float, recovered_at: float | None = None) -> None:
    """A store at schema 1, written with that schema's SQL, holding the episode (open unless
    `recovered_at`)."""
    db = Database(path, synchronous="FULL", busy_timeout_ms=5000)
    assert db.migrate(MIGRATIONS[:1]) == 1
    rows = [
        (group, alert["fingerprint"], format_time(parse_time(alert["startsAt"])), key, seen)
        for group, key, seen in (
            (FIRING["groupKey"], PROBLEM_KEY, now),
            (OTHER_GROUP, OTHER_PROBLEM_KEY, now - 600),
        )
        for alert in FIRING["alerts"]
    ]
    with db.write() as tx:
        tx.executemany(
            "INSERT INTO alert_state (receiver, group_key, fingerprint, starts_at, account,"
            " notification, problem_key, first_notified_at, last_notified_at, last_seen_at,"
            " recovered_at) VALUES ('mailer', ?, ?, ?, 'acc-1002', 'credential_expired', ?, ?, ?,"
            " ?, ?)",
            [
                (group, fp, starts, key, seen, seen, seen, recovered_at)
                for group, fp, starts, key, seen in rows
            ],
        )
    db.close()


def test_an_open_episode_of_schema_1_is_not_resent_and_recovers_once(
    tmp_path: Path, make_app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    schema_1_store(tmp_path / "mailer.db", clock() - 300)
    app = make_app()  # migrates the store
    client = app.test_client()
    register(app, "acc-1002")
    assert post(client, FIRING).json["queued"] == 0
    clock.advance(2 * 3600)
    assert post(client, regrouped(FIRING)).json["queued"] == 0  # a route edit after the upgrade
    partly = fixture_payload("credential_expired_grouped_partly_resolved")
    assert post(client, partly).json["queued"] == 3
    assert post(client, partly).json["queued"] == 0
    deliver(app)
    (recovery,) = smtp_server.to(PRIMARY)
    assert recovery["X-Sysnotify-Phase"] == "recovery"
    assert recovery["In-Reply-To"] == message_id(PROBLEM_KEY, PRIMARY, "acme.example")


def test_a_recovered_episode_of_schema_1_ignores_late_copies_and_knows_a_re_fire(
    tmp_path: Path, make_app: Any, clock: FakeClock
) -> None:
    schema_1_store(tmp_path / "mailer.db", clock() - 3600, recovered_at=clock() - 300)
    app = make_app()
    client = app.test_client()
    register(app, "acc-1002")
    assert post(client, FIRING).json["queued"] == 0  # a late copy of the recovered episode
    refired = with_starts_at(FIRING, format_time(datetime.fromtimestamp(clock() + 60, UTC)))
    clock.advance(120)
    assert post(client, refired).json["queued"] == 3  # started after the recovery: a new problem
