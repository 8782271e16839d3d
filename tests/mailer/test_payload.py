"""The webhook v4 schema: captured payloads parse; wrong shapes name every problem."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from sysnotify.mailer.intake.payload import PayloadError, format_time, parse, parse_time
from tests.support.alertmanager import fixture_payload
from tests.support.paths import FIXTURES


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_every_captured_payload_parses(name: str) -> None:
    data = parse(fixture_payload(name))
    assert data.version == "4"
    assert data.alerts and all(a.fingerprint for a in data.alerts)
    assert all(a.ends_at is None for a in data.firing())
    assert all(a.ends_at is not None for a in data.resolved())


def test_nanosecond_times_are_read_to_the_microsecond() -> None:
    assert parse_time("2026-11-27T02:40:52.597688124Z") == datetime(
        2026, 11, 27, 2, 40, 52, 597688, tzinfo=UTC
    )
    assert format_time(parse_time("2026-11-27T02:40:52Z")) == "2026-11-27T02:40:52Z"


def test_idempotency_key_ignores_external_url_and_truncated_alerts_only() -> None:
    payload = fixture_payload("credential_expired_grouped_partly_resolved")
    key = parse(payload).idempotency_key()
    other = copy.deepcopy(payload)
    other["externalURL"] = "http://peer:9093"
    other["truncatedAlerts"] = 3
    other["alerts"].reverse()
    assert parse(other).idempotency_key() == key
    changed = copy.deepcopy(payload)
    changed["alerts"][1]["status"] = "resolved"
    changed["alerts"][1]["endsAt"] = "2026-11-27T03:00:00Z"
    assert parse(changed).idempotency_key() != key


def broken(mutate: Any) -> dict[str, Any]:
    payload = fixture_payload("credential_expired_grouped_firing")
    mutate(payload)
    return payload


@pytest.mark.parametrize(
    ("payload", "problems"),
    [
        ([], ["payload: must be a JSON object"]),
        (
            broken(lambda p: p.update(version="3")),
            ["version: only version '4' is supported, not '3'"],
        ),
        (broken(lambda p: p.pop("alerts")), ["alerts: missing or not a list"]),
        (broken(lambda p: p.pop("groupKey")), ["groupKey: missing"]),
        (
            broken(lambda p: p.update(status="weird")),
            ["status: must be 'firing' or 'resolved', not 'weird'"],
        ),
        (
            broken(lambda p: p["alerts"][1].update(startsAt="yesterday")),
            ["alerts[1].startsAt: not an RFC 3339 time: 'yesterday'"],
        ),
        (
            broken(
                lambda p: (
                    p["alerts"][0]["labels"].pop("alertname"),
                    p["alerts"][2].update(fingerprint=7),
                )
            ),
            ["alerts[0].labels.alertname: missing", "alerts[2].fingerprint: must be a string"],
        ),
        (
            broken(lambda p: p["alerts"][0]["labels"].update(system=5)),
            ["alerts[0].labels.system: must be a string"],
        ),
        (
            broken(lambda p: p.update(truncatedAlerts=-1)),
            ["truncatedAlerts: must be a non-negative integer"],
        ),
    ],
)
def test_wrong_shapes_list_every_problem(payload: Any, problems: list[str]) -> None:
    with pytest.raises(PayloadError) as caught:
        parse(payload)
    assert caught.value.problems == problems
