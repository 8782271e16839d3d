"""Jinja2 filters for the email templates: numbers, times, durations and names as a person
reads them. Each takes what an annotation carries (often a string) and passes through what it
cannot read, so a template never fails on an odd value."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

SYSTEM_NAMES = {
    "salesforce": "Salesforce",
    "eloqua": "Oracle Eloqua",
    "marketo": "Marketo",
    "hubspot": "HubSpot",
    "pardot": "Pardot",
}

# As in "you subscribed to <name> notifications".
CATEGORY_NAMES = {
    "credentials": "credential",
    "api_limits": "API limit",
    "web_visits": "web visit",
    "privacy": "privacy request",
    "sync": "data sync",
}

_WHITESPACE = re.compile(r"\s+")


# -- formatting filters: numbers and times as a person reads them --------------------------


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float) else float(str(value).strip())
    except (ValueError, OverflowError):
        return None
    # "nan" and "inf" parse as floats but are not counts anyone can read
    return number if math.isfinite(number) else None


def format_number(value: Any, decimals: int = 0) -> str:
    """12345.4 or "12345" → "12,345" (rounded to `decimals`); non-numbers pass through."""
    number = _to_number(value)
    if number is None:
        return str(value)
    return f"{number:,.{decimals}f}"


def format_percent(value: Any) -> str:
    """A ratio 0..1 → "43%" (one decimal under 10%, so 0.004 is not shown as 0%)."""
    number = _to_number(value)
    if number is None:
        return str(value)
    percent = number * 100
    if 0 < abs(percent) < 10 and percent != int(percent):
        return f"{percent:.1f}%"
    return f"{percent:.0f}%"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string (or datetime) as an aware UTC datetime; None when empty or invalid."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_datetime(value: Any) -> str:
    """→ "2 December 2026, 14:00 UTC"; unparseable values pass through unchanged."""
    moment = parse_time(value)
    if moment is None:
        return str(value)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def format_date(value: Any) -> str:
    """→ "2 December 2026"."""
    moment = parse_time(value)
    if moment is None:
        return str(value)
    return f"{moment.day} {moment:%B %Y}"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def format_duration(value: Any) -> str:
    """Seconds → "5 hours 12 minutes", "2 days 3 hours", "45 minutes"."""
    number = _to_number(value)
    if number is None:
        return str(value)
    minutes = int(number // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        parts = [_plural(days, "day")] + ([_plural(hours, "hour")] if hours else [])
    elif hours:
        parts = [_plural(hours, "hour")] + ([_plural(minutes, "minute")] if minutes else [])
    else:
        parts = [_plural(max(minutes, 1), "minute")] if number >= 60 else ["less than a minute"]
    return " ".join(parts)


def format_days(value: Any) -> str:
    """A day count → "1 day", "7 days", "today" for 0."""
    number = _to_number(value)
    if number is None:
        return str(value)
    days = int(number)
    return "today" if days <= 0 else _plural(days, "day")


def format_in_days(value: Any) -> str:
    """A `days_left` value → "in 7 days", "in 1 day", "today"; "soon" when missing."""
    number = _to_number(value)
    if number is None:
        return "soon"
    days = int(number)
    return "today" if days <= 0 else "in " + _plural(days, "day")


def days_since(value: Any, now: Any) -> int | None:
    """Whole days from `value` to `now` (both times); None when either is missing."""
    start, end = parse_time(value), parse_time(now)
    if start is None or end is None:
        return None
    return max((end - start).days, 0)


def join_names(names: Any) -> str:
    """["Salesforce", "Marketo", "HubSpot"] → "Salesforce, Marketo and HubSpot"."""
    items = [str(name) for name in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def system_name(value: Any) -> str:
    """A `system`/`platform` label value → the product's name ("eloqua" → "Oracle Eloqua")."""
    text = str(value)
    return SYSTEM_NAMES.get(text.lower(), text)


_LIST_ITEM = re.compile(r"^(\s*(?:[-*]|\d+\.)\s+)")
_BLANK_LINES = re.compile(r"\n{3,}")
TEXT_WIDTH = 76


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """Wraps long lines of a plain-text body for reading in a terminal-style client.

    List items keep a hanging indent; words (URLs, addresses) are never broken.
    """
    lines = []
    for line in text.splitlines():
        if len(line) <= width:
            lines.append(line.rstrip())
            continue
        match = _LIST_ITEM.match(line)
        indent = " " * len(match.group(1)) if match else ""
        lines.extend(
            textwrap.wrap(
                line,
                width=width,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    # Template control blocks leave uneven blank lines; one blank line separates paragraphs.
    return _BLANK_LINES.sub("\n\n", "\n".join(lines))


def one_line(value: Any) -> str:
    """Collapses all whitespace (CR and LF included) to single spaces."""
    return _WHITESPACE.sub(" ", str(value)).strip()


def category_name(value: Any) -> str:
    """A `category` label value → how emails name it ("web_visits" → "web visit")."""
    text = str(value)
    return CATEGORY_NAMES.get(text, text.replace("_", " "))


def pluralize(count: Any, singular: str, plural: str | None = None) -> str:
    """1, "system" → "system"; 3 → "systems"."""
    number = _to_number(count)
    return singular if number == 1 else (plural or singular + "s")


FILTERS: Mapping[str, Callable[..., Any]] = {
    "number": format_number,
    "percent": format_percent,
    "datetime": format_datetime,
    "date": format_date,
    "duration": format_duration,
    "days": format_days,
    "in_days": format_in_days,
    "days_since": days_since,
    "join_names": join_names,
    "category_name": category_name,
    "system_name": system_name,
    "one_line": one_line,
    "pluralize": pluralize,
}
