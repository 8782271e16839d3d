"""Values no real platform sends are refused whole with a JSON 422 naming each event's field and
reason: counts over their documented maxima, non-finite and non-integer numbers, times outside
the window around the exporter's clock. Nothing of such a batch is applied, and no answer of
the app is ever an HTML page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from werkzeug.exceptions import ImATeapot

from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.web.app import create_app
from sysnotify.exporter.web.state import exporter_of
from tests.support.exporter import (
    AUTH,
    NOW_DT,
    TOKEN,
    account,
    ago,
    api_usage,
    credential,
    privacy,
    sync_started,
    ts,
    web_visits,
)

GOOD = [account(), web_visits(visits=5)]


def post(client, body):
    data = body if isinstance(body, str) else json.dumps({"events": body})
    return client.post("/api/v1/events", data=data, headers=AUTH, content_type="application/json")


def state(app):
    exporter = exporter_of(app)
    return exporter.store.version(), exporter.cache.render()


@pytest.fixture
def seeded(client, app):
    assert post(client, GOOD).status_code == 200
    return state(app)


def raw_visits(number: str) -> str:
    """A batch whose second event's visits is `number`, written as JSON text as it arrived."""
    good = json.dumps(account())
    visits = json.dumps(web_visits(visits=0)).replace('"visits": 0', f'"visits": {number}')
    return f'{{"events": [{good}, {visits}]}}'


@pytest.mark.parametrize(
    "number, reason",
    [
        (str(2**62), "must be at most 1000000000 (visits of one page on one day)"),
        (str(2**63), "must be at most 1000000000"),
        ("1" + "0" * 400, "must be at most 1000000000"),
        (str(10**9 + 1), "must be at most 1000000000"),
        ("1e400", "must be a non-negative integer, not Infinity"),
        ("-1e400", "must be a non-negative integer, not -Infinity"),
        ("NaN", "must be a non-negative integer, not NaN"),
        ("Infinity", "must be a non-negative integer, not Infinity"),
        ("5.5", "must be a non-negative integer, not 5.5"),
        ("1e3", "must be a non-negative integer, not 1000.0"),
        ("-3", "must be a non-negative integer, not -3"),
        ("true", "must be a non-negative integer, not true"),
        ('"12"', "must be a non-negative integer, not a string"),
        ("[" * 500 + "]" * 500, "must be a non-negative integer, not a list"),
    ],
    ids=[
        "2^62",
        "2^63",
        "10^400",
        "one-over",
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "fraction",
        "exponent",
        "negative",
        "boolean",
        "text",
        "nested-500-deep",
    ],
)
def test_a_count_no_platform_sends_is_422_and_nothing_applied(client, app, seeded, number, reason):
    response = post(client, raw_visits(number))
    assert response.status_code == 422, response.data[:300]
    [error] = response.get_json()["errors"]
    assert (error["index"], error["field"]) == (1, "visits")
    assert error["reason"].startswith(reason), error["reason"]
    assert state(app) == seeded


@pytest.mark.parametrize(
    "event, field, reason",
    [
        (api_usage(used=2**63), "used", "must be at most 10000000000 (API calls"),
        (api_usage(limit=10**10 + 1), "limit", "must be at most 10000000000"),
        (api_usage(limit=float("inf")), "limit", "must be a positive integer, not Infinity"),
    ],
    ids=["used-2^63", "limit-over", "limit-infinite"],
)
def test_api_counts_over_their_maximum_are_422(client, app, seeded, event, field, reason):
    response = post(client, [account("acc-2"), event])
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert error["reason"].startswith(reason)
    assert state(app) == seeded


def test_counts_at_their_maximum_are_accepted(client):
    response = post(client, [web_visits(visits=10**9), api_usage(used=10**10, limit=10**10)])
    assert response.status_code == 200, response.get_json()


def test_an_accounts_day_over_the_maximum_is_422_and_nothing_applied(client, app):
    # 100 pages at the per-page maximum make exactly the per-day maximum: accepted.
    full = [web_visits(page=f"/p{i}", visits=10**9) for i in range(100)]
    assert post(client, full).status_code == 200
    before = state(app)
    response = post(client, [account("acc-2"), web_visits(page="/one-more", visits=1)])
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {
            "index": 1,
            "field": "visits",
            "reason": "brings the visits of account 'acc-1' on 2026-05-27, all pages together, "
            "over the maximum of 100000000000 for one account on one day",
        }
    ]
    assert state(app) == before
    # Another day of the same account, and the same day of another account, are their own.
    other = [web_visits(offset=-2, visits=7), web_visits("acc-2", visits=7)]
    assert post(client, other).status_code == 200
    # Correcting a page down is always possible, and makes room for another.
    fixed = [web_visits(page="/p0", visits=0), web_visits(page="/x", visits=9)]
    assert post(client, fixed).status_code == 200


def later(**delta: float) -> str:
    return ts(NOW_DT + timedelta(**delta))


@pytest.mark.parametrize(
    "event, field, reason",
    [
        (
            credential(checked_at="2999-01-01T00:00:00Z"),
            "checked_at",
            "is more than 1 day ahead of the exporter's clock "
            "(the latest accepted is 2026-05-29T10:00:00Z)",
        ),
        (
            credential(checked_at=later(days=1, seconds=1)),
            "checked_at",
            "is more than 1 day ahead",
        ),
        (api_usage(window_start="2999-01-01T00:00:00Z"), "window_start", "is more than 1 day"),
        (sync_started(at="2999-01-01T00:00:00+14:00"), "at", "is more than 1 day ahead"),
        (
            privacy(received_at=ago(days=400, seconds=1)),
            "received_at",
            "is more than 400 days in the past (the earliest accepted is 2025-04-23T10:00:00Z)",
        ),
        (privacy(received_at="0001-01-01T00:00:00Z"), "received_at", "is more than 400 days"),
        (
            credential(password_changed_at="2999-01-01T00:00:00Z"),
            "password_changed_at",
            "is more than 1 day ahead",
        ),
        (
            credential(password_changed_at="1969-12-31T23:59:59Z"),
            "password_changed_at",
            "is before 1970-01-01T00:00:00Z",
        ),
        (
            web_visits(day="2026-05-30"),
            "day",
            "is more than 1 day ahead of the exporter's clock (the latest accepted is 2026-05-29)",
        ),
        (
            web_visits(day="2025-04-22"),
            "day",
            "is more than 400 days in the past (the earliest accepted is 2025-04-23)",
        ),
        (web_visits(day="9999-12-31"), "day", "is more than 1 day ahead"),
        (sync_started(at="20260528T090000Z"), "at", "is not an RFC 3339 timestamp"),
        (sync_started(at="2026-05-28T09:00Z"), "at", "is not an RFC 3339 timestamp"),
    ],
    ids=[
        "year-2999",
        "a-second-past-the-skew",
        "api-window-2999",
        "sync-2999-plus-14h",
        "a-second-too-old",
        "year-1",
        "password-changed-in-2999",
        "password-changed-before-1970",
        "day-after-tomorrow",
        "day-too-old",
        "day-9999",
        "iso-basic-format",
        "no-seconds",
    ],
)
def test_times_outside_the_window_are_422(client, app, seeded, event, field, reason):
    response = post(client, [account("acc-2"), event])
    assert response.status_code == 422, response.get_json()
    [error] = response.get_json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert error["reason"].startswith(reason), error["reason"]
    assert state(app) == seeded


def test_times_at_the_edges_of_the_window_are_accepted(client):
    response = post(
        client,
        [
            credential(checked_at=later(days=1)),
            privacy(received_at=ago(days=400)),
            web_visits(day="2026-05-29"),
            web_visits(day="2025-04-23"),
            # A password kept for years is real: only the future is refused.
            credential(system="eloqua", password_changed_at="2016-01-01T00:00:00Z"),
        ],
    )
    assert response.status_code == 200, response.get_json()


def test_a_check_from_the_future_cannot_freeze_a_credential(client):
    post(client, [credential(checked_at="2999-01-01T00:00:00Z", valid=False)])
    assert post(client, [credential(valid=True)]).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert 'abm_credential_valid{account="acc-1",system="salesforce"} 1.0' in text


def test_the_window_follows_the_settings(store, clock):
    config = ExporterConfig(ingest_token=TOKEN, events_max_ahead=0.0, events_max_age=40 * 86400)
    client = create_app(config, store=store, clock=clock).test_client()
    assert post(client, [credential(checked_at=later(seconds=1))]).status_code == 422
    assert post(client, [privacy(received_at=ago(days=41))]).status_code == 422
    assert post(client, [credential(checked_at=later(seconds=0)), privacy()]).status_code == 200


def test_an_unexpected_failure_is_a_json_500(client, app, monkeypatch):
    def broken(events):
        raise RuntimeError("a bug")

    monkeypatch.setattr(exporter_of(app).store, "apply", broken)
    response = post(client, GOOD)
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "internal server error"}


def test_every_http_error_answers_json(app):
    @app.get("/teapot")
    def teapot():
        raise ImATeapot()

    client = app.test_client()
    for path, method, status in [
        ("/teapot", "GET", 418),
        ("/nope", "GET", 404),
        ("/api/v1/events", "GET", 405),
        ("/metrics", "DELETE", 405),
    ]:
        response = client.open(path, method=method)
        assert response.status_code == status
        assert response.mimetype == "application/json"
        assert response.get_json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"events": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"events": [{"type": "account", "account": "a", "name": "1' + "0" * 5000 + '"}]}'[:-3],
        '{"events": [' + json.dumps(account())[:-1] + ', "name": ' + "9" * 5000 + "}]}",
        '{"events": {"type": "account"}}',
        '{"events": [17, null, "x", []]}',
    ],
    ids=[
        "nested-100k",
        "events-nested-100k",
        "truncated",
        "integer-of-5000-digits",
        "events-an-object",
        "events-not-objects",
    ],
)
def test_malformed_bodies_are_a_json_4xx(client, app, seeded, body):
    response = post(client, body)
    assert 400 <= response.status_code < 500
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]
    assert state(app) == seeded
