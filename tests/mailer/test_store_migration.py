"""A store written before episodes had an identity (schema 1) keeps its open problems: after
the upgrade, nothing is mailed again and each problem still gets its one recovery, threaded
under the problem email it sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sysnotify.mailer.delivery.message import message_id
from sysnotify.mailer.store.sqlite import MIGRATIONS
from sysnotify.sqlite import Database
from tests.support.alertmanager import fixture_payload, regrouped
from tests.support.clocks import FakeClock
from tests.support.mailer_app import PRIMARY, deliver, post, register
from tests.support.smtp import SmtpServer

# What a schema-1 mailer stored for credential_expired_grouped_firing (captured from that
# release): one row per (receiver, groupKey, fingerprint, startsAt), with the problem's
# notification key from which the problem emails' Message-IDs were derived.
GROUP = '{}:{account="acc-1002", alertname="CredentialExpired"}'
FINGERPRINTS = ("f57ca3f42162cd81", "779604e3a069e0bf", "150515d0afb0f8e7")
STARTS_AT = "2026-11-27T02:40:52.597688Z"
PROBLEM_KEY = "6fbc19b6636dade66ab3e9015780ebab72def4484f94276d40b52c33f21a500b"
# The same episode as a schema-1 mailer also kept it after a route edit: a second open row in
# the old group, with its own (stale) problem key.
STALE_GROUP = '{}/{tier="gold"}:{account="acc-1002", alertname="CredentialExpired"}'
STALE_PROBLEM_KEY = "0" * 64


def schema_1_store(path: Path, now: float, stale_copy: bool) -> None:
    db = Database(path, synchronous="FULL", busy_timeout_ms=5000)
    assert db.migrate(MIGRATIONS[:1]) == 1
    rows = [(GROUP, fingerprint, PROBLEM_KEY, now) for fingerprint in FINGERPRINTS]
    if stale_copy:
        rows += [
            (STALE_GROUP, fingerprint, STALE_PROBLEM_KEY, now - 600) for fingerprint in FINGERPRINTS
        ]
    with db.write() as tx:
        tx.executemany(
            "INSERT INTO alert_state (receiver, group_key, fingerprint, starts_at, account,"
            " notification, problem_key, first_notified_at, last_notified_at, last_seen_at)"
            " VALUES ('mailer', ?, ?, ?, 'acc-1002', 'credential_expired', ?, ?, ?, ?)",
            [(group, fp, STARTS_AT, key, seen, seen, seen) for group, fp, key, seen in rows],
        )
    db.close()


def test_an_open_episode_of_schema_1_is_not_resent_and_recovers_once(
    tmp_path: Path, make_app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    schema_1_store(tmp_path / "mailer.db", clock() - 300, stale_copy=True)
    app = make_app()  # migrates the store
    client = app.test_client()
    register(app, "acc-1002")
    firing = fixture_payload("credential_expired_grouped_firing")
    assert post(client, firing).json["queued"] == 0
    clock.advance(2 * 3600)
    assert post(client, regrouped(firing)).json["queued"] == 0  # a route edit after the upgrade
    partly = fixture_payload("credential_expired_grouped_partly_resolved")
    assert post(client, partly).json["queued"] == 3
    assert post(client, partly).json["queued"] == 0
    deliver(app)
    (recovery,) = smtp_server.to(PRIMARY)
    assert recovery["X-Sysnotify-Phase"] == "recovery"
    assert recovery["In-Reply-To"] == message_id(PROBLEM_KEY, PRIMARY, "acme.example")
