"""Our own typed copy of Alertmanager's webhook payload, version 4.

Alertmanager posts one `Data` per notification of one aggregation group. Every notification
carries all alerts of the group, not just the ones that changed, so the mailer diffs them
itself (see sysnotify.mailer.intake.decide). `parse()` checks the whole shape and lists every
problem at once, so a 422 answer tells the sender everything that is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

# Alertmanager sends the zero time as endsAt for firing alerts.
ZERO_TIME_PREFIX = "0001-01-01"


class PayloadError(ValueError):
    """The payload does not have the webhook v4 shape; `problems` names each fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Alert:
    status: str  # "firing" or "resolved"
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None  # None when Alertmanager sent the zero time
    generator_url: str
    fingerprint: str

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @cached_property
    def starts_at_text(self) -> str:
        """startsAt as a stable string, part of the alert's identity in the mailer's state
        (computed once: keys, sorting and the state queries all use it)."""
        return format_time(self.starts_at)


@dataclass(frozen=True)
class Data:
    version: str
    group_key: str
    truncated_alerts: int
    status: str
    receiver: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    alerts: tuple[Alert, ...]

    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")

    def idempotency_key(self) -> str:
        """Identifies this notification's content, the same from every HA peer and retry.

        hash(receiver, groupKey, per alert sorted (fingerprint, status, startsAt, endsAt if
        resolved)); externalURL (differs per peer) and truncatedAlerts are left out.
        """
        parts = [self.receiver, self.group_key]
        for alert in sorted(self.alerts, key=lambda a: (a.fingerprint, a.starts_at_text)):
            resolved = alert.status == "resolved" and alert.ends_at is not None
            ends = format_time(alert.ends_at) if resolved else ""
            parts.append(f"{alert.fingerprint}|{alert.status}|{alert.starts_at_text}|{ends}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def format_time(value: datetime | None) -> str:
    """RFC 3339 UTC with a Z suffix and microseconds only when present."""
    if value is None:
        return ""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def parse_time(text: str) -> datetime:
    """Parses Alertmanager's RFC 3339 times (nanosecond fractions are cut to microseconds)."""
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; Go sends up to 9.
    if "." in value:
        head, rest = value.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        value = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("time without a time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 lies past year 9999 in UTC
        raise ValueError("time out of range") from None


def _string_map(value: Any, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.append(f"{where}: must be an object of strings")
        return {}
    result = {}
    for key, item in value.items():
        if not isinstance(item, str):
            problems.append(f"{where}.{key}: must be a string")
        else:
            result[str(key)] = item
    return result


def _string(
    obj: dict[str, Any], key: str, where: str, problems: list[str], required: bool = True
) -> str:
    if key not in obj:
        if required:
            problems.append(f"{where}{key}: missing")
        return ""
    value = obj[key]
    if not isinstance(value, str):
        problems.append(f"{where}{key}: must be a string")
        return ""
    return value


def _time(obj: dict[str, Any], key: str, where: str, problems: list[str]) -> datetime | None:
    text = _string(obj, key, where, problems)
    if not text or text.startswith(ZERO_TIME_PREFIX):
        return None
    try:
        return parse_time(text)
    except ValueError:
        problems.append(f"{where}{key}: not an RFC 3339 time: {text[:40]!r}")
        return None


def _alert(raw: Any, index: int, problems: list[str]) -> Alert | None:
    where = f"alerts[{index}]."
    if not isinstance(raw, dict):
        problems.append(f"alerts[{index}]: must be an object")
        return None
    before = len(problems)
    status = _string(raw, "status", where, problems)
    if status and status not in ("firing", "resolved"):
        problems.append(f"{where}status: must be 'firing' or 'resolved', not {status[:20]!r}")
    labels = _string_map(raw.get("labels"), f"{where}labels", problems)
    if "labels" in raw and "alertname" not in labels and isinstance(raw.get("labels"), dict):
        problems.append(f"{where}labels.alertname: missing")
    annotations = _string_map(raw.get("annotations", {}), f"{where}annotations", problems)
    starts_at = _time(raw, "startsAt", where, problems)
    if (
        starts_at is None
        and isinstance(raw.get("startsAt"), str)
        and raw["startsAt"].startswith(ZERO_TIME_PREFIX)
    ):
        problems.append(f"{where}startsAt: must not be the zero time")
    ends_at = _time(raw, "endsAt", where, problems) if "endsAt" in raw else None
    generator_url = _string(raw, "generatorURL", where, problems, required=False)
    fingerprint = _string(raw, "fingerprint", where, problems)
    if "fingerprint" in raw and isinstance(raw["fingerprint"], str) and not fingerprint:
        problems.append(f"{where}fingerprint: must not be empty")
    if len(problems) > before or starts_at is None:
        return None
    return Alert(status, labels, annotations, starts_at, ends_at, generator_url, fingerprint)


def parse(body: Any) -> Data:
    """Checks a decoded JSON body against the webhook v4 schema.

    :raise PayloadError: naming every problem found (field paths like `alerts[2].startsAt`).
    """
    problems: list[str] = []
    if not isinstance(body, dict):
        raise PayloadError(["payload: must be a JSON object"])
    version = _string(body, "version", "", problems)
    if version and version != "4":
        problems.append(f"version: only version '4' is supported, not {version[:10]!r}")
    group_key = _string(body, "groupKey", "", problems)
    truncated = body.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        problems.append("truncatedAlerts: must be a non-negative integer")
        truncated = 0
    status = _string(body, "status", "", problems)
    if status and status not in ("firing", "resolved"):
        problems.append(f"status: must be 'firing' or 'resolved', not {status[:20]!r}")
    receiver = _string(body, "receiver", "", problems)
    group_labels = _string_map(body.get("groupLabels", {}), "groupLabels", problems)
    common_labels = _string_map(body.get("commonLabels", {}), "commonLabels", problems)
    common_annotations = _string_map(
        body.get("commonAnnotations", {}), "commonAnnotations", problems
    )
    external_url = _string(body, "externalURL", "", problems, required=False)
    raw_alerts = body.get("alerts")
    alerts: list[Alert] = []
    if not isinstance(raw_alerts, list):
        problems.append("alerts: missing or not a list")
    else:
        for index, raw in enumerate(raw_alerts):
            alert = _alert(raw, index, problems)
            if alert is not None:
                alerts.append(alert)
    if problems:
        raise PayloadError(problems)
    return Data(
        version,
        group_key,
        truncated,
        status,
        receiver,
        group_labels,
        common_labels,
        common_annotations,
        external_url,
        tuple(alerts),
    )
