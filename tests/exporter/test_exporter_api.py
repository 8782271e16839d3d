"""The HTTP interface through Flask's test client: every answer of the ingest API, and that a
rejected request changes nothing (facts, store version and store-derived metrics)."""

from __future__ import annotations

import io
import json
import logging
import sqlite3

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sysnotify.exporter.web.state import exporter_of
from sysnotify.sqlite import StoreError
from tests.support.exporter import (
    AUTH,
    BAD_EVENTS,
    TOKEN,
    account,
    ago,
    api_usage,
    credential,
    privacy,
    sync_finished,
    sync_started,
    web_visits,
)

GOOD_BATCH = [
    account(),
    credential(),
    api_usage(),
    web_visits(offset=-20, visits=0),
    web_visits(),
    sync_started(),
    sync_finished(),
    privacy(),
]


def post(client, body, headers=AUTH, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/api/v1/events", data=data, headers=headers, content_type=content_type)


def state(app):
    """What a rejected request must not change: store version and store-derived exposition."""
    exporter = exporter_of(app)
    return exporter.store.version(), exporter.cache.render()


def samples(client, name):
    text = client.get("/metrics").get_data(as_text=True)
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@pytest.fixture
def seeded(client, app):
    assert post(client, {"events": GOOD_BATCH}).status_code == 200
    return state(app)


def test_a_good_batch_is_applied_and_counted(client, app):
    response = post(client, {"events": GOOD_BATCH})
    assert response.status_code == 200
    body = response.get_json()
    assert body["applied"] == len(GOOD_BATCH)
    assert body["by_type"] == {
        "account": 1,
        "credential": 1,
        "api_usage": 1,
        "web_visits": 2,
        "sync_started": 1,
        "sync_finished": 1,
        "privacy_optout": 1,
    }
    assert samples(client, "abm_api_daily_calls_used") == {
        (("account", "acc-1"), ("platform", "salesforce")): 100.0
    }
    ingested = samples(client, "sysnotify_exporter_events_ingested_total")
    assert ingested[(("type", "web_visits"),)] == 2


def test_replaying_a_batch_through_the_api_changes_nothing(client, app, seeded):
    version, text = seeded
    assert post(client, {"events": GOOD_BATCH}).status_code == 200
    _, again = state(app)
    strip = lambda b: [x for x in b.splitlines() if b"last_event_timestamp" not in x]  # noqa: E731
    assert strip(again) == strip(text)


def test_an_empty_batch_is_fine(client):
    response = post(client, {"events": []})
    assert response.status_code == 200
    assert response.get_json()["applied"] == 0


@pytest.mark.parametrize(
    "headers, error",
    [
        ({}, None),
        ({"Authorization": "Bearer wrong-token-0123456789"}, "invalid_token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid_token"),
        ({"Authorization": f"Basic {TOKEN}"}, "invalid_request"),
        ({"Authorization": "Bearer "}, "invalid_request"),
    ],
    ids=["missing", "wrong", "longer", "basic", "empty"],
)
def test_401_without_the_right_token(client, app, seeded, headers, error):
    response = post(client, {"events": [account("acc-2")]}, headers=headers)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="sysnotify-exporter"')
    assert (f'error="{error}"' in challenge) if error else ("error" not in challenge)
    assert state(app) == seeded
    assert samples(client, "sysnotify_exporter_batches_rejected_total")[(("reason", "auth"),)] == 1


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"events": [', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'"events"', "must be a JSON object"),
        (b"{}", '"events" must be a list'),
        (b'{"events": {"type": "account"}}', '"events" must be a list'),
        (b'{"events": null}', '"events" must be a list'),
    ],
    ids=["truncated", "not-utf8", "list", "string", "no-events", "events-object", "events-null"],
)
def test_400_for_a_malformed_body(client, app, seeded, body, message):
    response = post(client, body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert state(app) == seeded


def test_413_when_content_length_is_over_the_limit(client, app, seeded):
    big = {"events": [web_visits(page="/" + "x" * 1000, offset=-o % 30 - 1) for o in range(80)]}
    response = post(client, big)
    assert response.status_code == 413
    assert state(app) == seeded
    assert (
        samples(client, "sysnotify_exporter_batches_rejected_total")[(("reason", "too_large"),)]
        == 1
    )


def test_413_when_the_real_body_is_longer_than_announced(client, app, seeded):
    body = json.dumps({"events": [account(name="x" * 200) for _ in range(400)]}).encode()
    # As a chunked request arrives: no Content-Length, the server marks the input terminated.
    response = client.post(
        "/api/v1/events",
        input_stream=io.BytesIO(body),
        headers={**AUTH, "Content-Type": "application/json"},
        environ_overrides={"CONTENT_LENGTH": None, "wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert state(app) == seeded


def test_415_for_another_content_type(client, app, seeded):
    response = post(client, {"events": []}, content_type="text/plain")
    assert response.status_code == 415
    assert state(app) == seeded


@pytest.mark.parametrize(
    "event, field, reason", [row[1:] for row in BAD_EVENTS], ids=[row[0] for row in BAD_EVENTS]
)
def test_422_for_each_bad_event_class_and_nothing_applied(
    client, app, seeded, event, field, reason
):
    batch = [
        account("acc-new"),
        web_visits("acc-new", visits=5),
        event,
        api_usage("acc-1", used=999),
    ]
    response = post(client, {"events": batch})
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert errors[0]["index"] == 2
    assert errors[0]["field"] == field
    assert reason in errors[0]["reason"]
    assert state(app) == seeded


def test_422_for_a_finish_without_a_start_and_nothing_applied(client, app, seeded):
    response = post(client, {"events": [account("acc-new"), sync_finished(run="nope")]})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {
            "index": 1,
            "field": "run_id",
            "reason": "no sync_started for run 'nope' of account 'acc-1', neither in the store "
            "nor earlier in this batch",
        }
    ]
    assert state(app) == seeded


def test_422_lists_every_bad_event(client, app, seeded):
    batch = [web_visits(visits=-1), account(), credential(system="x"), privacy(status="?")]
    response = post(client, {"events": batch})
    assert [(e["index"], e["field"]) for e in response.get_json()["errors"]] == [
        (0, "visits"),
        (2, "system"),
        (3, "status"),
    ]
    rejected = samples(client, "sysnotify_exporter_events_rejected_total")
    assert rejected[()] == 4
    assert state(app) == seeded


def test_a_sync_pair_within_one_batch_is_accepted(client):
    response = post(
        client,
        {
            "events": [
                sync_started(run="x", at=ago(hours=2)),
                sync_finished(run="x", at=ago(hours=1)),
            ]
        },
    )
    assert response.status_code == 200


def test_the_token_is_never_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    post(client, {"events": GOOD_BATCH})
    post(client, {"events": [web_visits(visits=-1)]})
    post(client, {"events": []}, headers={"Authorization": f"Bearer {TOKEN}-wrong"})
    assert TOKEN not in caplog.text


def test_healthz(client, app, monkeypatch):
    assert client.get("/healthz").status_code == 200
    store = exporter_of(app).store

    def broken() -> None:
        raise StoreError("read store: disk I/O error")

    monkeypatch.setattr(store, "check", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"


def test_metrics_when_the_store_cannot_be_read(client, app, seeded, monkeypatch):
    cache = exporter_of(app).cache

    def broken() -> int:
        raise sqlite3.OperationalError("database disk image is malformed")

    monkeypatch.setattr(cache.store, "version", broken)
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "abm_" not in text
    assert "sysnotify_exporter_store_up 0.0" in text


def test_metrics_content_type_and_self_metrics(client, seeded):
    response = client.get("/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.get_data(as_text=True)
    for name in (
        "sysnotify_exporter_events_ingested_total",
        "sysnotify_exporter_events_rejected_total",
        "sysnotify_exporter_batches_rejected_total",
        "sysnotify_exporter_store_up",
        "sysnotify_exporter_collect_duration_seconds",
        "sysnotify_exporter_accounts",
        "sysnotify_exporter_last_event_timestamp_seconds",
        "sysnotify_exporter_account_last_event_timestamp_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text or f"# TYPE {name}" in text, name
    assert 'sysnotify_exporter_batches_rejected_total{reason="malformed"} 0.0' in text


def test_unknown_paths_and_methods_answer_json(client):
    assert client.get("/nope").status_code == 404
    assert client.get("/api/v1/events").status_code == 405
    assert client.get("/").status_code == 200
