"""Ingest events: the closed set of types of docs/contracts.md, validated into plain tuples.

Validation is pure (no store; the clock comes in as a :class:`TimeWindow`): each event is
checked on its own, and every problem is reported as an :class:`EventError` naming the event's
index, the field and the reason. The checks that need the store (a ``sync_finished`` must follow
its ``sync_started``; one account's visits of one day stay under :data:`MAX_DAILY_VISITS`) are
made by :meth:`sysnotify.exporter.store.FactStore.apply` inside the transaction that applies the
batch.

Numbers are bounded so that no value one tenant sends can break what the store computes for
everyone (docs/exporter.md, "Bounds"): counts are integers from 0 to a maximum no real platform
reaches, and every sum the store keeps (a page's day, an account's day, an account's 35 days)
stays below 2^53, where floats are still exact, let alone 2^63, where SQLite's integers end.
Times must lie in a window around the exporter's clock, so that a mistyped year cannot win
every later "latest fact" comparison and freeze an account's state.

A valid event becomes an :data:`Event` tuple whose first item is its type. Timestamps are
float seconds since the Unix epoch (UTC); days are integer days since 1970-01-01 (UTC).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
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

# The largest websites serve a few billion visits a day across all their pages; one page of one
# customer at 10^9 a day is 11,500 visits a second, all day.
MAX_PAGE_VISITS = 10**9
# One account's visits of one day, all pages together (checked by the store, which holds the
# other pages): ten times the largest websites. 35 such days are 3.5 * 10^12, far below 2^53.
MAX_DAILY_VISITS = 10**11
# API calls of one integration in one day, used or allowed: CRMs grant a tenant a few million at
# most; 10^10 is 115,000 calls a second.
MAX_API_CALLS = 10**10
# Password change times are not bounded by how old they may be (a password kept for years is
# real, and under expire_90_days it is what CredentialExpired reports), only by the Unix epoch.
EARLIEST_PASSWORD_CHANGE = 0.0

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

# RFC 3339 date-time: fromisoformat alone also takes ISO 8601 forms such as 20260528T120000Z.
_RFC3339_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_ACCOUNT_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1," + str(MAX_ID_LENGTH) + "}")
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_DAY = 86400


@dataclass(frozen=True)
class EventError:
    """One problem with one event: its index in the batch, the field at fault and why."""

    index: int
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class TimeWindow:
    """The instants events may name: from `back` seconds before `now` to `ahead` seconds after
    it (epoch seconds); a ``day`` must be one of the UTC days that range touches."""

    now: float
    ahead: float
    back: float

    @functools.cached_property
    def earliest(self) -> float:
        return self.now - self.back

    @functools.cached_property
    def latest(self) -> float:
        return self.now + self.ahead

    @functools.cached_property
    def first_day(self) -> int:
        return int(self.earliest // _DAY)

    @functools.cached_property
    def last_day(self) -> int:
        return int(self.latest // _DAY)


def _span(seconds: float) -> str:
    for unit, size in (("day", _DAY), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} seconds"


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Invalid(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def parse_timestamp(
    value: Any, field: str, window: TimeWindow, earliest: float | None = None
) -> float:
    """RFC 3339 text with an explicit offset (``Z`` or ``+hh:mm``) to epoch seconds, within
    `window` (or from `earliest` to the window's end, where given)."""
    if not isinstance(value, str):
        raise _Invalid(field, "must be an RFC 3339 timestamp string with a UTC offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(field, f"is not an RFC 3339 timestamp: {value[:60]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _Invalid(field, "has no UTC offset (write e.g. 2024-05-01T12:00:00Z)")
    if not _RFC3339_RE.fullmatch(value):
        raise _Invalid(
            field, f"is not an RFC 3339 timestamp (write e.g. 2024-05-01T12:00:00Z): {value[:60]!r}"
        )
    epoch = parsed.timestamp()
    if epoch > window.latest:
        raise _Invalid(
            field,
            f"is more than {_span(window.ahead)} ahead of the exporter's clock "
            f"(the latest accepted is {_rfc3339(window.latest)})",
        )
    if earliest is None and epoch < window.earliest:
        raise _Invalid(
            field,
            f"is more than {_span(window.back)} in the past "
            f"(the earliest accepted is {_rfc3339(window.earliest)})",
        )
    if earliest is not None and epoch < earliest:
        raise _Invalid(field, f"is before {_rfc3339(earliest)}")
    return epoch


def parse_day(value: Any, window: TimeWindow, field: str = "day") -> int:
    """``YYYY-MM-DD`` (a UTC day) to days since 1970-01-01, within `window`'s days."""
    if not isinstance(value, str):
        raise _Invalid(field, "must be a UTC date written YYYY-MM-DD")
    day = _day_number(value)
    if day is None:
        if not _DAY_RE.fullmatch(value):
            raise _Invalid(field, "must be a UTC date written YYYY-MM-DD")
        raise _Invalid(field, f"is not a valid date: {value!r}")
    if day > window.last_day:
        raise _Invalid(
            field,
            f"is more than {_span(window.ahead)} ahead of the exporter's clock "
            f"(the latest accepted is {day_to_iso(window.last_day)})",
        )
    if day < window.first_day:
        raise _Invalid(
            field,
            f"is more than {_span(window.back)} in the past "
            f"(the earliest accepted is {day_to_iso(window.first_day)})",
        )
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


def _shown(value: Any) -> str:
    """A rejected value as JSON wrote it, briefly (never a huge number in full)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return "a number with a fraction or exponent" if abs(value) >= 1e15 else repr(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else "a number that large"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list) else "an object"


def _count(
    obj: Mapping[str, Any], field: str, maximum: int, what: str, positive: bool = False
) -> int:
    value = obj[field]
    kind = "positive" if positive else "non-negative"
    # bool is an int in Python, but true is not a count; nor is 5.0, NaN or Infinity.
    if type(value) is not int or value < (1 if positive else 0):
        raise _Invalid(field, f"must be a {kind} integer, not {_shown(value)}")
    if value > maximum:
        raise _Invalid(field, f"must be at most {maximum} ({what})")
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


def _build(kind: str, obj: Mapping[str, Any], window: TimeWindow) -> Event:
    if kind == "web_visits":
        return (
            kind,
            _account(obj),
            parse_day(obj["day"], window),
            _text(obj, "page", MAX_PAGE_LENGTH),
            _count(obj, "visits", MAX_PAGE_VISITS, "visits of one page on one day"),
        )
    if kind == "api_usage":
        return (
            kind,
            _account(obj),
            _choice(obj, "platform", SYSTEMS),
            _count(obj, "used", MAX_API_CALLS, "API calls of one integration in one day"),
            _count(obj, "limit", MAX_API_CALLS, "API calls of one integration in one day", True),
            parse_timestamp(obj["window_start"], "window_start", window),
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
            changed_at = parse_timestamp(
                changed, "password_changed_at", window, EARLIEST_PASSWORD_CHANGE
            )
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
            parse_timestamp(obj["checked_at"], "checked_at", window),
        )
    if kind == "sync_started":
        return (
            kind,
            _account(obj),
            _text(obj, "run_id"),
            parse_timestamp(obj["at"], "at", window),
        )
    if kind == "sync_finished":
        return (
            kind,
            _account(obj),
            _text(obj, "run_id"),
            parse_timestamp(obj["at"], "at", window),
            _choice(obj, "status", SYNC_STATUSES),
        )
    # privacy_optout
    return (
        kind,
        _account(obj),
        _text(obj, "request_id"),
        parse_timestamp(obj["received_at"], "received_at", window),
        _choice(obj, "status", PRIVACY_STATUSES),
    )


def validate_event(
    obj: Any, window: TimeWindow, index: int = 0
) -> tuple[Event | None, list[EventError]]:
    """Checks one decoded JSON value; returns the event tuple, or None and its errors.

    Times and days must lie within `window` (see :class:`TimeWindow`).

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
        return _build(kind, obj, window), []
    except _Invalid as problem:
        return None, [EventError(index, problem.field, problem.reason)]


def validate_events(
    objs: Iterable[Any], window: TimeWindow
) -> tuple[list[Event], list[EventError]]:
    """Validates a batch; the events are only meaningful when the error list is empty."""
    events: list[Event] = []
    errors: list[EventError] = []
    for index, obj in enumerate(objs):
        event, problems = validate_event(obj, window, index)
        if problems:
            errors.extend(problems)
        elif not errors:
            events.append(event)  # type: ignore[arg-type]
    return events, errors
