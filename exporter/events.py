"""Ingest events: the closed set of types of docs/contracts.md, validated into plain tuples.

Validation is pure (no store, no clock): each event is checked on its own, and every problem
is reported as an :class:`EventError` naming the event's index, the field and the reason. The
checks that need the store (a ``sync_finished`` must follow its ``sync_started``) are made by
:meth:`sysnotify.exporter.store.FactStore.apply` inside the transaction that applies the batch.

A valid event becomes an :data:`Event` tuple whose first item is its type. Timestamps are
float seconds since the Unix epoch (UTC); days are integer days since 1970-01-01 (UTC).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

SYSTEMS = ("salesforce", "eloqua", "marketo", "hubspot", "pardot")
POLICIES = ("never_expire", "expire_90_days", "no_rotation")
# Only Salesforce and Oracle Eloqua passwords expire on a 90-day rotation; Marketo, HubSpot and
# Pardot credentials (API keys, OAuth grants) only ever fail validation.
EXPIRING_SYSTEMS = ("salesforce", "eloqua")
SYNC_STATUSES = ("success", "failed")
PRIVACY_STATUSES = ("pending", "completed")

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 300
MAX_PAGE_LENGTH = 2048

# Field order of each type; the tuples built below follow it after the type and account.
FIELDS: dict[str, tuple[str, ...]] = {
    "account": ("type", "account", "name"),
    "credential": (
        "type",
        "account",
        "system",
        "policy",
        "password_changed_at",
        "valid",
        "checked_at",
    ),
    "api_usage": ("type", "account", "platform", "used", "limit", "window_start"),
    "web_visits": ("type", "account", "day", "page", "visits"),
    "sync_started": ("type", "account", "run_id", "at"),
    "sync_finished": ("type", "account", "run_id", "at", "status"),
    "privacy_optout": ("type", "account", "request_id", "received_at", "status"),
}
EVENT_TYPES = tuple(FIELDS)
_FIELD_SETS = {kind: frozenset(names) for kind, names in FIELDS.items()}
# Fields that may be absent or null.
OPTIONAL: dict[str, frozenset[str]] = {"credential": frozenset({"password_changed_at"})}

Event = tuple[Any, ...]

_ACCOUNT_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1," + str(MAX_ID_LENGTH) + "}")
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH_DAY = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class EventError:
    """One problem with one event: its index in the batch, the field at fault and why."""

    index: int
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class _Invalid(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def parse_timestamp(value: Any, field: str) -> float:
    """RFC 3339 text with an explicit offset (``Z`` or ``+hh:mm``) to epoch seconds."""
    if not isinstance(value, str):
        raise _Invalid(field, "must be an RFC 3339 timestamp string with a UTC offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(field, f"is not an RFC 3339 timestamp: {value[:60]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _Invalid(field, "has no UTC offset (write e.g. 2024-05-01T12:00:00Z)")
    return parsed.timestamp()


def parse_day(value: Any, field: str = "day") -> int:
    """``YYYY-MM-DD`` (a UTC day) to days since 1970-01-01."""
    if not isinstance(value, str):
        raise _Invalid(field, "must be a UTC date written YYYY-MM-DD")
    day = _day_number(value)
    if day is None:
        if not _DAY_RE.fullmatch(value):
            raise _Invalid(field, "must be a UTC date written YYYY-MM-DD")
        raise _Invalid(field, f"is not a valid date: {value!r}")
    return day


@functools.lru_cache(maxsize=4096)  # a batch names few distinct days, many times each
def _day_number(value: str) -> int | None:
    if not _DAY_RE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value).toordinal() - _EPOCH_DAY
    except ValueError:
        return None


def day_to_iso(day: int) -> str:
    return date.fromordinal(day + _EPOCH_DAY).isoformat()


def _count(obj: Mapping[str, Any], field: str, positive: bool = False) -> int:
    value = obj[field]
    # bool is an int in Python, but true is not a count.
    if type(value) is not int or value < (1 if positive else 0):
        kind = "positive" if positive else "non-negative"
        raise _Invalid(field, f"must be a {kind} integer")
    return value


def _text(obj: Mapping[str, Any], field: str, max_length: int = MAX_ID_LENGTH) -> str:
    value = obj[field]
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(field, "must be a non-empty string")
    if len(value) > max_length:
        raise _Invalid(field, f"must be at most {max_length} characters")
    return value


@functools.lru_cache(maxsize=65536)  # likewise few distinct accounts
def _valid_account(value: str) -> bool:
    return _ACCOUNT_RE.fullmatch(value) is not None


def _account(obj: Mapping[str, Any]) -> str:
    value = obj["account"]
    if not isinstance(value, str) or not _valid_account(value):
        raise _Invalid(
            "account",
            f"must be a non-empty string of at most {MAX_ID_LENGTH} characters "
            "without spaces or control characters",
        )
    return value


def _choice(obj: Mapping[str, Any], field: str, choices: tuple[str, ...]) -> str:
    value = obj[field]
    if not isinstance(value, str):
        raise _Invalid(field, f"must be one of: {', '.join(choices)}")
    if value not in choices:
        raise _Invalid(field, f"unknown value {value[:60]!r}; must be one of: {', '.join(choices)}")
    return value


def _build(kind: str, obj: Mapping[str, Any]) -> Event:
    if kind == "web_visits":
        return (
            kind,
            _account(obj),
            parse_day(obj["day"]),
            _text(obj, "page", MAX_PAGE_LENGTH),
            _count(obj, "visits"),
        )
    if kind == "api_usage":
        return (
            kind,
            _account(obj),
            _choice(obj, "platform", SYSTEMS),
            _count(obj, "used"),
            _count(obj, "limit", positive=True),
            parse_timestamp(obj["window_start"], "window_start"),
        )
    if kind == "account":
        return (kind, _account(obj), _text(obj, "name", MAX_NAME_LENGTH))
    if kind == "credential":
        system = _choice(obj, "system", SYSTEMS)
        policy = _choice(obj, "policy", POLICIES)
        if policy == "expire_90_days" and system not in EXPIRING_SYSTEMS:
            raise _Invalid(
                "policy",
                f"expire_90_days applies to {' and '.join(EXPIRING_SYSTEMS)} only, not {system}",
            )
        changed = obj.get("password_changed_at")
        if changed is None:
            if policy == "expire_90_days":
                raise _Invalid("password_changed_at", "is required under policy expire_90_days")
            changed_at = None
        else:
            changed_at = parse_timestamp(changed, "password_changed_at")
        valid = obj["valid"]
        if not isinstance(valid, bool):
            raise _Invalid("valid", "must be true or false")
        return (
            kind,
            _account(obj),
            system,
            policy,
            changed_at,
            valid,
            parse_timestamp(obj["checked_at"], "checked_at"),
        )
    if kind == "sync_started":
        return (kind, _account(obj), _text(obj, "run_id"), parse_timestamp(obj["at"], "at"))
    if kind == "sync_finished":
        return (
            kind,
            _account(obj),
            _text(obj, "run_id"),
            parse_timestamp(obj["at"], "at"),
            _choice(obj, "status", SYNC_STATUSES),
        )
    # privacy_optout
    return (
        kind,
        _account(obj),
        _text(obj, "request_id"),
        parse_timestamp(obj["received_at"], "received_at"),
        _choice(obj, "status", PRIVACY_STATUSES),
    )


def validate_event(obj: Any, index: int = 0) -> tuple[Event | None, list[EventError]]:
    """Checks one decoded JSON value; returns the event tuple, or None and its errors.

    Every missing or unknown field is reported; for fields that are present, the first bad
    value found is reported (a second bad value shows up once the first is fixed).
    """
    if not isinstance(obj, dict):
        return None, [EventError(index, None, "must be a JSON object")]
    kind = obj.get("type")
    if kind is None:
        return None, [EventError(index, "type", "is required")]
    if not isinstance(kind, str) or kind not in FIELDS:
        shown = kind[:60] if isinstance(kind, str) else kind
        return None, [
            EventError(
                index,
                "type",
                f"unknown event type {shown!r}; must be one of: {', '.join(EVENT_TYPES)}",
            )
        ]
    fields = FIELDS[kind]
    optional = OPTIONAL.get(kind, frozenset())
    errors = [
        EventError(index, name, "is required")
        for name in fields
        if name not in obj and name not in optional
    ]
    known = _FIELD_SETS[kind]
    errors.extend(
        EventError(index, name, f"is not a field of {kind} events")
        for name in obj
        if name not in known
    )
    if errors:
        return None, errors
    try:
        return _build(kind, obj), []
    except _Invalid as problem:
        return None, [EventError(index, problem.field, problem.reason)]


def validate_events(objs: Iterable[Any]) -> tuple[list[Event], list[EventError]]:
    """Validates a batch; the events are only meaningful when the error list is empty."""
    events: list[Event] = []
    errors: list[EventError] = []
    for index, obj in enumerate(objs):
        event, problems = validate_event(obj, index)
        if problems:
            errors.extend(problems)
        elif not errors:
            events.append(event)  # type: ignore[arg-type]
    return events, errors
