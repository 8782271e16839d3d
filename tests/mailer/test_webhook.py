"""The webhook end to end in one process: payload in, exact emails out of a real SMTP server."""

from __future__ import annotations

import copy
import json
import sqlite3
from typing import Any

import pytest

from sysnotify.mailer import counters
from sysnotify.mailer.web.app import deferred_counters_of, mailer_of
from tests.support.alertmanager import fixture_payload, named, regrouped
from tests.support.clocks import FakeClock
from tests.support.mailer_app import (
    CREDENTIALS_ONLY,
    EVERYTHING,
    PRIMARY,
    SYNC_ONLY,
    admin,
    deliver,
    metric,
    post,
    register,
)
from tests.support.mailer_config import WEBHOOK_TOKEN
from tests.support.smtp import SmtpServer


def accounts_of(payload: dict[str, Any]) -> set[str]:
    return {a["labels"]["account"] for a in payload["alerts"] if "account" in a["labels"]}


# notification fixture -> who receives it (besides the primary and the all-categories one)
CASES = [
    ("credential_expiring_firing", [CREDENTIALS_ONLY], "Acme Corp"),
    ("credential_expired_firing", [CREDENTIALS_ONLY], "Globex"),
    ("api_limit_approaching_firing", [], "Acme Corp"),
    ("api_limit_reached_firing", [], "Acme Corp"),
    ("web_visits_dropped_firing", [], "Acme Corp"),
    ("few_pages_tracked_firing", [], "Acme Corp"),
    ("privacy_optout_reminder_firing", [], "Acme Corp"),
    ("data_sync_delayed_firing", [SYNC_ONLY], "Acme Corp"),
]


@pytest.mark.parametrize(("fixture", "subscribers", "account_name"), CASES)
def test_each_notification_reaches_exactly_its_recipients(
    app: Any,
    client: Any,
    smtp_server: SmtpServer,
    fixture: str,
    subscribers: list[str],
    account_name: str,
) -> None:
    payload = fixture_payload(fixture)
    (account,) = accounts_of(payload)
    register(app, account)
    response = post(client, payload)
    assert response.status_code == 200, response.json
    expected = sorted([PRIMARY, EVERYTHING, *subscribers])
    assert response.json["queued"] == len(expected)
    assert deliver(app) == {"sent": len(expected)}
    received = smtp_server.messages
    assert sorted(r.rcpt_tos[0] for r in received) == expected
    subjects = set()
    for item in received:
        message = item.message
        assert item.rcpt_tos == [message["To"]]  # one recipient per message, none visible
        assert item.mail_from == "no-reply@acme.example"
        assert message["From"] == "Acme Insights <no-reply@acme.example>"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["X-Auto-Response-Suppress"] == "All"
        assert message["Message-ID"].endswith("@acme.example>")
        assert message["Date"] and message["In-Reply-To"] is None
        assert message.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert account_name in message["Subject"]
        assert message["X-Sysnotify-Notification"] == fixture.removesuffix("_firing")
        assert message["X-Sysnotify-Phase"] == "problem"
        assert message["X-Sysnotify-Account"] == account
        subjects.add(message["Subject"])
    assert len(subjects) == 1  # the same email for every recipient
    assert len({r.message["Message-ID"] for r in received}) == len(expected)


def test_grouped_alerts_render_as_one_email_listing_each_system(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1002")
    post(client, fixture_payload("credential_expired_grouped_firing"))
    deliver(app)
    (message,) = smtp_server.to(PRIMARY)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for system in ("Salesforce", "Marketo", "HubSpot"):
        assert system in text and system in html


def test_recovery_is_threaded_under_the_problem_email(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"))
    deliver(app)
    problem = smtp_server.to(PRIMARY)[0]
    response = post(client, fixture_payload("credential_expired_resolved"))
    assert response.json["queued"] == 3
    deliver(app)
    problem_again, recovery = smtp_server.to(PRIMARY)
    assert problem_again["Message-ID"] == problem["Message-ID"]
    assert recovery["In-Reply-To"] == problem["Message-ID"]
    assert recovery["References"] == problem["Message-ID"]
    assert recovery["Subject"] != problem["Subject"]
    assert (recovery["X-Sysnotify-Notification"], recovery["X-Sysnotify-Phase"]) == (
        "credential_expired",
        "recovery",
    )
    assert len(smtp_server.to(CREDENTIALS_ONLY)) == 2
    assert len(smtp_server.to(SYNC_ONLY)) == 0


@pytest.mark.parametrize(
    ("fixture", "queued"),
    [
        ("data_sync_delayed", 3),  # data sync completed: on by default
        ("api_limit_reached", 0),  # API limit restored: off by default
    ],
)
def test_recovery_only_where_defined(app: Any, client: Any, fixture: str, queued: int) -> None:
    (account,) = accounts_of(fixture_payload(f"{fixture}_firing"))
    register(app, account)
    post(client, fixture_payload(f"{fixture}_firing"))
    response = post(client, fixture_payload(f"{fixture}_resolved"))
    assert response.json["queued"] == queued


def test_recovery_can_be_switched_on_in_the_config(make_app: Any, smtp_server: SmtpServer) -> None:
    app = make_app(notifications={"send_recovery": {"api_limit_reached": True}})
    client = app.test_client()
    register(app, "acc-2002")
    post(client, fixture_payload("api_limit_reached_firing"))
    assert post(client, fixture_payload("api_limit_reached_resolved")).json["queued"] == 2
    deliver(app)
    recovery = smtp_server.to(PRIMARY)[-1]
    assert recovery["In-Reply-To"] == smtp_server.to(PRIMARY)[0]["Message-ID"]


def test_duplicates_are_suppressed_and_reminders_sent_after_the_window(
    app: Any, client: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    register(app, "acc-1001")
    payload = fixture_payload("credential_expired_firing")
    peer = copy.deepcopy(payload)
    peer["externalURL"] = "http://alertmanager-peer.example:9093"
    assert post(client, payload).json["queued"] == 3
    clock.advance(5)
    assert post(client, payload).json == {
        "status": "ok",
        "queued": 0,
        "undeliverable": 0,
        "deduplicated": 1,
    }
    clock.advance(15)
    assert post(client, peer).json["queued"] == 0
    deliver(app)
    assert len(smtp_server.to(PRIMARY)) == 1
    assert (
        metric(
            client,
            "sysnotify_mailer_notifications_deduplicated_total",
            'notification="credential_expired"',
        )
        == 2
    )
    clock.advance(3600)
    assert post(client, payload).json["queued"] == 3  # Alertmanager's repeat_interval
    clock.advance(10)
    assert post(client, peer).json["queued"] == 0
    deliver(app)
    problem, reminder = smtp_server.to(PRIMARY)
    assert reminder["In-Reply-To"] == problem["Message-ID"]
    assert reminder["X-Sysnotify-Phase"] == "reminder"
    assert reminder["Message-ID"] != problem["Message-ID"]


def test_a_route_edit_resends_nothing_and_the_recovery_threads_under_the_problem(
    app: Any, client: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"))
    clock.advance(2 * 3600)  # longer than the duplicate window: not mistaken for a repeat
    assert post(client, regrouped(fixture_payload("credential_expired_firing"))).json["queued"] == 0
    resolved = regrouped(fixture_payload("credential_expired_resolved"))
    assert post(client, resolved).json["queued"] == 3
    deliver(app)
    problem, recovery = smtp_server.to(PRIMARY)
    assert (problem["X-Sysnotify-Phase"], recovery["X-Sysnotify-Phase"]) == ("problem", "recovery")
    assert recovery["In-Reply-To"] == problem["Message-ID"]


def test_a_renamed_account_sends_nothing_and_the_next_email_carries_the_new_name(
    app: Any, client: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    register(app, "acc-1001")
    firing = fixture_payload("credential_expired_firing")
    post(client, named(firing, "Globex", as_label=False))
    clock.advance(600)
    assert post(client, named(firing, "Globex Group", as_label=False)).json["queued"] == 0
    clock.advance(3600)  # Alertmanager's repeat
    assert post(client, named(firing, "Globex Group", as_label=False)).json["queued"] == 3
    deliver(app)
    problem, reminder = smtp_server.to(PRIMARY)
    assert "Globex" in problem["Subject"] and "Globex Group" not in problem["Subject"]
    assert "Globex Group" in reminder["Subject"]
    assert reminder["In-Reply-To"] == problem["Message-ID"]


def test_unknown_alertname_goes_to_the_primary_only_and_is_counted(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-2007")
    assert post(client, fixture_payload("unknown_alertname_firing")).json["queued"] == 1
    deliver(app)
    assert [r.rcpt_tos for r in smtp_server.messages] == [[PRIMARY]]
    assert (
        metric(client, "sysnotify_mailer_notifications_received_total", 'notification="generic"')
        == 1
    )


def test_alerts_of_two_accounts_in_one_group_never_cross(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    registry = mailer_of(app).registry_api
    registry.set_primary("acc-4001", "boss@umbrella.example")
    registry.set_primary("acc-4002", "boss@hooli.example")
    assert post(client, fixture_payload("misrouted_two_accounts_firing")).json["queued"] == 2
    deliver(app)
    (umbrella,) = smtp_server.to("boss@umbrella.example")
    (hooli,) = smtp_server.to("boss@hooli.example")
    assert "Umbrella" in umbrella["Subject"] and "Hooli" not in umbrella.as_string()
    assert "Hooli" in hooli["Subject"] and "Umbrella" not in hooli.as_string()


@pytest.mark.parametrize(
    ("fixture", "reason", "notification"),
    [
        ("no_account_label_firing", "no_account_label", "data_sync_delayed"),
        ("credential_expired_firing", "no_recipients", "credential_expired"),
    ],
)
def test_undeliverable_notifications_are_kept_counted_and_visible(
    client: Any, smtp_server: SmtpServer, fixture: str, reason: str, notification: str
) -> None:
    response = post(client, fixture_payload(fixture))
    assert response.status_code == 200
    assert response.json["undeliverable"] == 1 and response.json["queued"] == 0
    items = admin(client, "GET", "/undeliverable").json["undeliverable"]
    assert [(i["reason"], i["notification"]) for i in items] == [(reason, notification)]
    assert items[0]["alerts"][0]["fingerprint"]
    assert (
        metric(
            client, "sysnotify_mailer_emails_undeliverable_total", f'notification="{notification}"'
        )
        == 1
    )
    assert smtp_server.messages == []


def test_operator_alerts_go_only_to_operators(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    firing = fixture_payload("operator_firing")
    assert post(client, firing, "/operators/webhook").json["queued"] == 1
    # The same alert mis-sent to the customer webhook reaches no customer.
    leaked = copy.deepcopy(firing)
    leaked["alerts"][0]["labels"]["account"] = "acc-1001"
    response = post(client, leaked)
    assert response.json["queued"] == 0 and response.json["undeliverable"] == 1
    deliver(app)
    assert [r.rcpt_tos for r in smtp_server.messages] == [["oncall@ops.example"]]
    message = smtp_server.messages[0].message
    assert "SysnotifyMailerDeliveryFailing" in message.as_string()
    assert message["X-Sysnotify-Notification"] == "operators"
    assert message["X-Sysnotify-Phase"] == "problem"
    assert message["X-Sysnotify-Account"] is None


def test_customer_payloads_on_the_operator_webhook_never_read_customer_recipients(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"), "/operators/webhook")
    deliver(app)
    assert [r.rcpt_tos for r in smtp_server.messages] == [["oncall@ops.example"]]


def oversize_payload() -> dict[str, Any]:
    payload = fixture_payload("credential_expired_firing")
    payload["commonAnnotations"]["padding"] = "x" * 1_100_000
    return payload


@pytest.mark.parametrize(
    ("body", "token", "status", "message"),
    [
        (fixture_payload("credential_expired_firing"), None, 401, "missing or wrong bearer token"),
        (
            fixture_payload("credential_expired_firing"),
            "wrong",
            401,
            "missing or wrong bearer token",
        ),
        (b"{not json", WEBHOOK_TOKEN, 400, "malformed JSON"),
        (b"\xff\xfe", WEBHOOK_TOKEN, 400, "malformed JSON"),
        (oversize_payload(), WEBHOOK_TOKEN, 413, "payload larger than 1048576 bytes"),
        ({"version": "4"}, WEBHOOK_TOKEN, 422, "payload is not an Alertmanager webhook"),
    ],
)
def test_webhook_error_classes(
    app: Any, client: Any, body: Any, token: str | None, status: int, message: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post(
        "/alertmanager/webhook", data=data, headers=headers, content_type="application/json"
    )
    assert response.status_code == status
    assert response.json["error"].startswith(message)
    if status == 422:
        assert "groupKey: missing" in response.json["problems"]
    deferred_counters_of(app).flush()  # a refusal is counted in memory first
    assert metric(client, "sysnotify_mailer_webhook_requests_total", f'code="{status}"') == 1


def test_store_failure_answers_503_so_alertmanager_retries(app: Any, client: Any) -> None:
    register(app, "acc-1001")
    conn = mailer_of(app).store.db.connection()  # the test client runs in this thread
    conn.execute("PRAGMA query_only = ON")
    response = post(client, fixture_payload("credential_expired_firing"))
    assert response.status_code == 503
    assert client.get("/readyz").status_code == 503
    conn.execute("PRAGMA query_only = OFF")
    # Nothing was half-stored: the retry queues the emails.
    assert post(client, fixture_payload("credential_expired_firing")).json["queued"] == 3
    assert client.get("/readyz").status_code == 200


def test_health_and_metrics(client: Any) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert metric(client, "sysnotify_mailer_outbox_pending_emails") == 0
    assert metric(client, "sysnotify_mailer_smtp_errors_total", 'kind="transient"') == 0


def test_outbox_gauges_and_queue_counters(app: Any, client: Any, clock: FakeClock) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"))
    assert metric(client, "sysnotify_mailer_outbox_pending_emails") == 3
    assert metric(client, "sysnotify_mailer_outbox_oldest_pending_timestamp_seconds") == clock()
    assert (
        metric(client, "sysnotify_mailer_emails_queued_total", 'notification="credential_expired"')
        == 3
    )
    deliver(app)
    assert metric(client, "sysnotify_mailer_outbox_pending_emails") == 0
    assert (
        metric(client, "sysnotify_mailer_emails_sent_total", 'notification="credential_expired"')
        == 3
    )
    assert metric(client, "sysnotify_mailer_delivery_latency_seconds_count") == 3
    # Delivered at once on the fixed clock: every bucket holds all three.
    assert metric(client, "sysnotify_mailer_delivery_latency_seconds_bucket", 'le="0.1"') == 3
    assert metric(client, "sysnotify_mailer_delivery_latency_seconds_bucket", 'le="+Inf"') == 3


def test_latency_buckets_are_cumulative_over_old_and_new_rows(app: Any, client: Any) -> None:
    """Each delivery counts in its one bucket; older stores hold cumulative rows, added as is."""
    labels = [repr(bound) for bound in counters.LATENCY_BUCKETS] + ["+Inf"]
    mailer_of(app).store.count(
        [
            # cumulative, as older mailers wrote them: 2 <= 0.1 s, 5 <= 1 s
            *(
                (
                    counters.LATENCY_BUCKET,
                    label,
                    2 if label in ("0.1", "0.25", "0.5") else 5 if label != "+Inf" else 6,
                )
                for label in labels
            ),
            *(
                (
                    counters.LATENCY_IN_BUCKET,
                    counters.latency_bucket_label(latency, counters.LATENCY_BUCKETS),
                    1,
                )
                for latency in (0.05, 0.3, 2.0, 7200.0)
            ),
        ]
    )
    expected = {"0.1": 3, "0.25": 3, "0.5": 4, "1.0": 7, "2.5": 8, "3600.0": 8, "+Inf": 10}
    for le, value in expected.items():
        assert (
            metric(client, "sysnotify_mailer_delivery_latency_seconds_bucket", f'le="{le}"')
            == value
        ), le


def test_preview_is_served(client: Any) -> None:
    assert client.get("/preview/").status_code == 200
    assert client.get("/preview/credential_expired?phase=recovery&format=text").status_code == 200


def test_outbox_rows_are_unique_per_notification_and_recipient(app: Any, client: Any) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"))
    conn = mailer_of(app).store.db.connection()
    row = conn.execute("SELECT * FROM outbox LIMIT 1").fetchone()
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO outbox (notification_key, recipient, notification, phase,"
            " account, message_id, request, received_at, queued_at, next_attempt_at)"
            " VALUES (?, ?, 'x', 'problem', 'a', 'm', '{}', 0, 0, 0)",
            (row["notification_key"], row["recipient"]),
        )


def test_a_receiver_can_have_a_shorter_duplicate_window(
    make_app: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    app = make_app(dedup={"receiver_windows": {"operators": "5m"}})
    client = app.test_client()
    payload = fixture_payload("operator_firing")
    assert post(client, payload, "/operators/webhook").json["queued"] == 1
    clock.advance(120)
    assert post(client, payload, "/operators/webhook").json["queued"] == 0
    clock.advance(300)  # past the operators' 5m window, far inside the default 1h
    assert post(client, payload, "/operators/webhook").json["queued"] == 1
    register(app, "acc-1001")
    customer = fixture_payload("credential_expired_firing")
    post(client, customer)
    clock.advance(600)
    assert post(client, customer).json["queued"] == 0


@pytest.mark.parametrize(
    ("fixture", "reason", "notification"),
    [
        ("no_account_label_firing", "no_account_label", "data_sync_delayed"),
        ("credential_expired_firing", "no_recipients", "credential_expired"),
    ],
)
def test_an_undeliverable_episode_is_kept_once_whatever_alertmanager_repeats(
    client: Any, clock: FakeClock, fixture: str, reason: str, notification: str
) -> None:
    """Retries, HA copies and repeat_interval reminders of one undeliverable alert add no
    row; a new episode of it (a later startsAt) is kept again."""
    payload = fixture_payload(fixture)
    for advance in (0, 1, 3600, 24 * 3600, 48 * 3600):  # a retry, then repeats a day apart
        clock.advance(advance)
        assert post(client, payload).status_code == 200
    items = admin(client, "GET", "/undeliverable").json["undeliverable"]
    assert [(i["reason"], i["notification"]) for i in items] == [(reason, notification)]
    assert (
        metric(
            client, "sysnotify_mailer_emails_undeliverable_total", f'notification="{notification}"'
        )
        == 1
    )
    resolved = copy.deepcopy(payload)
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"], alert["endsAt"] = "resolved", "2026-11-28T09:00:00Z"
    refired = copy.deepcopy(payload)
    for alert in refired["alerts"]:
        alert["startsAt"] = "2026-11-28T10:00:00Z"
    clock.advance(3600)
    for later in (resolved, resolved, refired, refired):
        assert post(client, later).status_code == 200
    items = admin(client, "GET", "/undeliverable").json["undeliverable"]
    # The problem (its reminders with it), its end, and the new episode's problem.
    assert [i["reason"] for i in items] == [reason] * len(items)
    assert len(items) == 3
