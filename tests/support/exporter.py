"""Helpers of the exporter tests: the fixed instant NOW, event builders with plausible defaults
(override any field by keyword), a settable clock, validation and the ordinary exposition."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from sysnotify.exporter.collector import StoreCollector
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.events import Event, validate_events
from sysnotify.exporter.store import FactStore

# Thursday 2026-05-28 10:00:00 UTC.
NOW_DT = datetime(2026, 5, 28, 10, 0, 0, tzinfo=UTC)
NOW = NOW_DT.timestamp()
TOKEN = "test-token-0123456789abcdef"
# The times events may name at NOW, under the default settings.
WINDOW = ExporterConfig().event_window(NOW)
# Every table of the fact store that holds facts (meta aside).
FACT_TABLES = (
    "accounts",
    "credentials",
    "api_usage",
    "web_visits",
    "web_daily",
    "web_accounts",
    "sync_runs",
    "privacy_requests",
)


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


NOW_TS = ts(NOW_DT)


def ago(**delta: float) -> str:
    """RFC 3339 time `delta` before NOW, e.g. ago(days=3)."""
    return ts(NOW_DT - timedelta(**delta))


def day(offset: int) -> str:
    """The UTC day `offset` days from NOW's day (0 = today, -1 = yesterday)."""
    return (NOW_DT.date() + timedelta(days=offset)).isoformat()


def account(acc: str = "acc-1", **kw: Any) -> dict[str, Any]:
    return {"type": "account", "account": acc, "name": "Acme Corp", **kw}


def credential(acc: str = "acc-1", **kw: Any) -> dict[str, Any]:
    event = {
        "type": "credential",
        "account": acc,
        "system": "salesforce",
        "policy": "expire_90_days",
        "password_changed_at": ago(days=10),
        "valid": True,
        "checked_at": ago(hours=1),
    }
    event.update(kw)
    return event


def api_usage(acc: str = "acc-1", **kw: Any) -> dict[str, Any]:
    event = {
        "type": "api_usage",
        "account": acc,
        "platform": "salesforce",
        "used": 100,
        "limit": 1000,
        "window_start": ago(hours=2),
    }
    event.update(kw)
    return event


def web_visits(
    acc: str = "acc-1", offset: int = -1, page: str = "/", visits: int = 10, **kw: Any
) -> dict[str, Any]:
    return {
        "type": "web_visits",
        "account": acc,
        "day": day(offset),
        "page": page,
        "visits": visits,
        **kw,
    }


def sync_started(acc: str = "acc-1", run: str = "run-1", **kw: Any) -> dict[str, Any]:
    return {"type": "sync_started", "account": acc, "run_id": run, "at": ago(hours=2), **kw}


def sync_finished(acc: str = "acc-1", run: str = "run-1", **kw: Any) -> dict[str, Any]:
    event = {
        "type": "sync_finished",
        "account": acc,
        "run_id": run,
        "at": ago(hours=1),
        "status": "success",
    }
    event.update(kw)
    return event


def privacy(acc: str = "acc-1", request: str = "req-1", **kw: Any) -> dict[str, Any]:
    event = {
        "type": "privacy_optout",
        "account": acc,
        "request_id": request,
        "received_at": ago(days=3),
        "status": "pending",
    }
    event.update(kw)
    return event


def disconnected(acc: str = "acc-1", system: str = "salesforce", **kw: Any) -> dict[str, Any]:
    event = {"type": "integration_disconnected", "account": acc, "system": system, "at": NOW_TS}
    return event | kw


def connected(acc: str = "acc-1", system: str = "salesforce", **kw: Any) -> dict[str, Any]:
    event = {"type": "integration_connected", "account": acc, "system": system, "at": NOW_TS}
    return event | kw


def offboarded(acc: str = "acc-1", **kw: Any) -> dict[str, Any]:
    return {"type": "account_offboarded", "account": acc, "at": NOW_TS, **kw}


def onboarded(acc: str = "acc-1", **kw: Any) -> dict[str, Any]:
    return {"type": "account_onboarded", "account": acc, "at": NOW_TS, **kw}


class Clock:
    """A settable clock: tests move time explicitly."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def validated(*events: dict[str, Any]) -> list[Event]:
    """The events as validated tuples; fails the test on a validation error."""
    valid, errors = validate_events(list(events), WINDOW)
    assert not errors, errors
    return valid


def ordinary(store: FactStore, clock: Callable[[], float]) -> bytes:
    """generate_latest over a StoreCollector: the ordinary custom-collector path."""
    registry = CollectorRegistry()
    StoreCollector(store, clock, registry=registry)
    return generate_latest(registry)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


# (case id, event, the field reported, a fragment of the reason): one row per bad-input class.
BAD_EVENTS: list[tuple[str, Any, str | None, str]] = [
    ("not-an-object", ["type", "account"], None, "must be a JSON object"),
    ("missing-type", {"account": "acc-1", "name": "x"}, "type", "is required"),
    ("unknown-type", {"type": "login", "account": "acc-1"}, "type", "unknown event type"),
    ("type-not-text", {"type": 7, "account": "acc-1"}, "type", "unknown event type"),
    ("unknown-field", account(nickname="x"), "nickname", "is not a field of account events"),
    (
        "missing-field",
        {
            "type": "api_usage",
            "account": "acc-1",
            "platform": "salesforce",
            "used": 1,
            "window_start": ago(hours=1),
        },
        "limit",
        "is required",
    ),
    ("missing-account", {"type": "account", "name": "x"}, "account", "is required"),
    ("unknown-system", credential(system="dynamics"), "system", "unknown value 'dynamics'"),
    ("unknown-platform", api_usage(platform="sap"), "platform", "unknown value 'sap'"),
    ("unknown-policy", credential(policy="monthly"), "policy", "unknown value 'monthly'"),
    (
        "expiring-policy-on-marketo",
        credential(system="marketo"),
        "policy",
        "applies to salesforce and eloqua only",
    ),
    (
        "expiring-without-change-time",
        credential(password_changed_at=None),
        "password_changed_at",
        "is required under policy expire_90_days",
    ),
    ("count-as-text", api_usage(used="5"), "used", "must be a non-negative integer"),
    ("count-as-bool", web_visits(visits=True), "visits", "must be a non-negative integer"),
    ("count-as-float", api_usage(used=5.0), "used", "must be a non-negative integer"),
    ("negative-count", web_visits(visits=-1), "visits", "must be a non-negative integer"),
    ("negative-used", api_usage(used=-3), "used", "must be a non-negative integer"),
    ("zero-limit", api_usage(limit=0), "limit", "must be a positive integer"),
    ("valid-as-text", credential(valid="true"), "valid", "must be true or false"),
    ("valid-as-int", credential(valid=1), "valid", "must be true or false"),
    ("timestamp-without-offset", sync_started(at="2026-05-28T08:00:00"), "at", "has no UTC offset"),
    ("date-as-timestamp", credential(checked_at="2026-05-28"), "checked_at", "has no UTC offset"),
    (
        "unparsable-timestamp",
        privacy(received_at="yesterday"),
        "received_at",
        "is not an RFC 3339 timestamp",
    ),
    (
        "numeric-timestamp",
        api_usage(window_start=1780000000),
        "window_start",
        "must be an RFC 3339 timestamp string",
    ),
    ("day-with-slashes", web_visits(day="2026/05/27"), "day", "must be a UTC date"),
    ("impossible-day", web_visits(day="2026-02-30"), "day", "is not a valid date"),
    ("day-with-time", web_visits(day="2026-05-27T00:00:00Z"), "day", "must be a UTC date"),
    ("sync-status", sync_finished(status="ok"), "status", "unknown value 'ok'"),
    ("privacy-status", privacy(status="done"), "status", "unknown value 'done'"),
    ("disconnect-unknown-system", disconnected(system="sap"), "system", "unknown value 'sap'"),
    ("connect-without-system", {**connected(), "system": None}, "system", "must be one of"),
    ("offboard-with-system", offboarded(system="eloqua"), "system", "is not a field of"),
    ("onboard-without-offset", onboarded(at="2026-05-28T08:00:00"), "at", "has no UTC offset"),
    ("empty-account", account(""), "account", "must be a non-empty string"),
    ("account-with-space", account("acc 1"), "account", "without spaces"),
    ("account-not-text", account(42), "account", "must be a non-empty string"),  # type: ignore[arg-type]
    ("account-too-long", account("a" * 201), "account", "at most 200 characters"),
    ("blank-name", account(name="  "), "name", "must be a non-empty string"),
    ("empty-page", web_visits(page=""), "page", "must be a non-empty string"),
    ("run-id-not-text", sync_started(run=5), "run_id", "must be a non-empty string"),  # type: ignore[arg-type]
]
