"""Validation of single events: every bad-input class names the field and the reason."""

from __future__ import annotations

import pytest

from sysnotify.exporter.events import EVENT_TYPES, validate_event, validate_events
from tests.support.exporter import (
    BAD_EVENTS,
    NOW,
    WINDOW,
    account,
    api_usage,
    credential,
    privacy,
    sync_finished,
    sync_started,
    web_visits,
)


@pytest.mark.parametrize(
    "event, field, reason", [row[1:] for row in BAD_EVENTS], ids=[row[0] for row in BAD_EVENTS]
)
def test_bad_events_are_reported_with_field_and_reason(event, field, reason):
    result, errors = validate_event(event, WINDOW, 3)
    assert result is None
    assert len(errors) == 1, errors
    assert errors[0].index == 3
    assert errors[0].field == field
    assert reason in errors[0].reason


def test_every_missing_field_is_reported():
    _, errors = validate_event({"type": "sync_finished", "account": "a", "extra": 1}, WINDOW)
    assert sorted(e.field for e in errors) == ["at", "extra", "run_id", "status"]


def test_a_batch_reports_every_bad_event_with_its_index():
    events, errors = validate_events(
        [account(), web_visits(visits=-1), account(""), api_usage()], WINDOW
    )
    assert [(e.index, e.field) for e in errors] == [(1, "visits"), (2, "account")]


@pytest.mark.parametrize(
    "event",
    [
        account(),
        credential(),
        credential(system="hubspot", policy="no_rotation", password_changed_at=None),
        credential(policy="never_expire", password_changed_at=None),
        api_usage(),
        web_visits(),
        web_visits(visits=0),
        sync_started(),
        sync_finished(),
        sync_finished(status="failed"),
        privacy(),
        privacy(status="completed"),
        account(name='Quote "and" back\\slash'),
        credential(checked_at="2026-05-28T12:00:00.123456+02:00"),
    ],
    ids=lambda e: e["type"],
)
def test_good_events_pass(event):
    result, errors = validate_event(event, WINDOW)
    assert errors == []
    assert result[0] == event["type"] and result[1] == event["account"]


def test_every_type_is_covered_by_the_good_examples():
    assert set(EVENT_TYPES) == {
        "account",
        "credential",
        "api_usage",
        "web_visits",
        "sync_started",
        "sync_finished",
        "privacy_optout",
    }


def test_timestamps_become_epoch_seconds_and_days_become_day_numbers():
    event, _ = validate_event(sync_started(at="2026-05-28T12:00:00+02:00"), WINDOW)
    assert event[3] == NOW
    event, _ = validate_event(web_visits(day="2026-05-27"), WINDOW)
    assert event[2] == int(NOW // 86400) - 1
