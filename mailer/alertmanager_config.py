"""Alertmanager's configuration, read as far as the mailer depends on it.

`read(path)` gives every route that delivers notifications, with the receiver and timings
Alertmanager resolves for it, and every webhook that points at the mailer. The resolution
follows Alertmanager's dispatcher (`dispatch/route.go`, the same from 0.25 to today):

- the root route starts from Alertmanager's defaults (group_wait 30s, group_interval 5m,
  repeat_interval 4h); a child starts from its parent's resolved values, and each of
  `receiver`, `group_wait`, `group_interval` and `repeat_interval` it sets replaces the
  inherited one;
- an alert goes down the tree: at each level it tries the children in order and stops at the
  first that matches, unless that child says `continue: true`; a route none of whose
  children match delivers the alert to its own receiver.

So a route delivers some alerts unless a child of it matches every alert (one without
matchers), and a route after a sibling that matches every alert without `continue` is never
reached. Which alerts exist is not known here, so every other route counts as delivering.

Only what the mailer's checks need is validated (sysnotify.mailer.crosscheck); `amtool
check-config` validates the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sysnotify import settings

# Alertmanager's route defaults (`DefaultRouteOpts` in dispatch/route.go), in seconds.
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 5 * 60.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0

# The mailer's webhook endpoints (sysnotify.mailer.web.webhook); a URL whose path ends in one
# of them is the mailer, whatever host or proxy prefix comes before.
MAILER_WEBHOOK_PATHS = ("/alertmanager/webhook", "/operators/webhook")

_UNITS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
# Durations in the config file: Prometheus's syntax (common/model ParseDuration), units
# largest first, each at most once.
_DURATION = re.compile("".join(rf"(?:(\d+){unit})?" for unit in (*_UNITS, "ms")))
# Durations on Alertmanager's command line (`--data.retention`): Go's time.ParseDuration.
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")


class AlertmanagerConfigError(settings.ConfigError):
    """The Alertmanager file cannot be read or resolved; `problems` names every fault."""

    what = "Alertmanager configuration"


def parse_duration(text: str) -> float:
    """Seconds in an Alertmanager config duration (`30s`, `1h30m`, `192h`, `1w`, `0`).

    :raise ValueError: naming the expected form.
    """
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if not text or not match:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 5m, 4h, 1h30m)")
    amounts = [int(amount) if amount else 0 for amount in match.groups()]
    *whole, millis = amounts
    return sum(a * size for a, size in zip(whole, _UNITS.values(), strict=True)) + millis / 1000


def parse_flag_duration(text: str) -> float:
    """Seconds in a duration given to Alertmanager on its command line, such as
    `--data.retention=200h`: Go's syntax, which has no days or weeks.

    :raise ValueError: naming the expected form.
    """
    if text == "0":
        return 0.0
    if not text or _GO_PART.sub("", text):
        raise ValueError(
            f"not a duration Alertmanager's flags accept: {text!r} (hours, minutes, seconds: "
            "e.g. 120h, 200h, 90m; no d or w)"
        )
    return sum(float(amount) * _GO_UNITS[unit] for amount, unit in _GO_PART.findall(text))


def format_duration(seconds: float) -> str:
    """`seconds` as hours, minutes and seconds, the way the shipped configs write them
    (`192h`, `10m`, `1h30m`, `0s`)."""
    millis = round(seconds * 1000)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        amount, millis = divmod(millis, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class Route:
    """A route that delivers, with what Alertmanager resolved for it."""

    where: str  # its place in the file: "route", "route.routes[2].routes[0]"
    matchers: tuple[str, ...]  # its own, for naming it
    receiver: str
    group_wait: float
    group_interval: float
    repeat_interval: float

    def __str__(self) -> str:
        return f"{self.where} ({', '.join(self.matchers)})" if self.matchers else self.where

    @property
    def latest_repeat(self) -> float:
        """The longest an unchanged group waits for its repeat: Alertmanager re-sends on the
        first group_interval tick after repeat_interval has passed (notify.go needsUpdate)."""
        return self.repeat_interval + self.group_interval


@dataclass(frozen=True)
class MailerWebhook:
    """A webhook_config whose URL is one of the mailer's endpoints."""

    receiver: str
    where: str  # "receivers[0].webhook_configs[0]"
    url: str
    send_resolved: bool
    max_alerts: int


@dataclass(frozen=True)
class AlertmanagerConfig:
    routes: tuple[Route, ...]  # every delivering route, in the file's order
    mailer_webhooks: tuple[MailerWebhook, ...]

    @property
    def mailer_receivers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(webhook.receiver for webhook in self.mailer_webhooks))

    def routes_to_mailer(self) -> tuple[Route, ...]:
        receivers = set(self.mailer_receivers)
        return tuple(route for route in self.routes if route.receiver in receivers)


def read(path: Path) -> AlertmanagerConfig:
    """The delivering routes and mailer webhooks of the Alertmanager file at `path`.

    :raise AlertmanagerConfigError: naming the file when it cannot be read or is not YAML,
        and every route or receiver that cannot be resolved.
    """
    document = settings.read_yaml(path, AlertmanagerConfigError)
    return from_mapping(document, str(path))


def from_mapping(document: Any, source: str = "alertmanager.yml") -> AlertmanagerConfig:
    """As `read`, for a parsed document; problems are prefixed with `source`."""
    problems: list[str] = []
    if not isinstance(document, Mapping):
        raise AlertmanagerConfigError([f"{source}: must be a mapping with route and receivers"])
    receivers, webhooks = _receivers(document.get("receivers"), problems)
    root = document.get("route")
    routes: list[Route] = []
    if not isinstance(root, Mapping):
        problems.append("route: required, a mapping (the root route)")
    elif not root.get("receiver"):
        problems.append("route.receiver: required (the root route's default receiver)")
    else:
        defaults = _Resolved(
            "", DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL
        )
        _walk(root, "route", defaults, receivers, routes, problems)
    if problems:
        raise AlertmanagerConfigError([f"{source}: {problem}" for problem in problems])
    return AlertmanagerConfig(tuple(routes), tuple(webhooks))


@dataclass(frozen=True)
class _Resolved:
    receiver: str
    group_wait: float
    group_interval: float
    repeat_interval: float


def _walk(
    route: Mapping[str, Any],
    where: str,
    inherited: _Resolved,
    receivers: set[str],
    found: list[Route],
    problems: list[str],
) -> None:
    """Resolves `route` against its parent's values and collects the delivering routes below
    it (itself included)."""
    resolved = _resolve(route, where, inherited, receivers, problems)
    children = route.get("routes") or []
    if not isinstance(children, list) or not all(isinstance(c, Mapping) for c in children):
        problems.append(f"{where}.routes: must be a list of routes")
        children = []
    if not any(_matches_everything(child) for child in children):
        found.append(
            Route(
                where,
                _matchers(route),
                resolved.receiver,
                resolved.group_wait,
                resolved.group_interval,
                resolved.repeat_interval,
            )
        )
    for index, child in enumerate(children):
        _walk(child, f"{where}.routes[{index}]", resolved, receivers, found, problems)
        if _matches_everything(child) and not child.get("continue", False):
            break  # the siblings after it are never reached


def _resolve(
    route: Mapping[str, Any],
    where: str,
    inherited: _Resolved,
    receivers: set[str],
    problems: list[str],
) -> _Resolved:
    receiver = route.get("receiver") or inherited.receiver
    if not isinstance(receiver, str):
        problems.append(f"{where}.receiver: must be a receiver's name")
    elif receiver not in receivers:
        problems.append(f"{where}.receiver: {receiver!r} is not defined under receivers")
    for key, kind in (("matchers", list), ("match", Mapping), ("match_re", Mapping)):
        if route.get(key) is not None and not isinstance(route[key], kind):
            problems.append(f"{where}.{key}: must be a {'list' if kind is list else 'mapping'}")
    timings = []
    for key, parent in (
        ("group_wait", inherited.group_wait),
        ("group_interval", inherited.group_interval),
        ("repeat_interval", inherited.repeat_interval),
    ):
        value = route.get(key)
        if value is None:
            timings.append(parent)
            continue
        try:
            seconds = parse_duration(str(value))
        except ValueError as error:
            problems.append(f"{where}.{key}: {error}")
            seconds = parent
        if seconds == 0 and key != "group_wait":
            problems.append(f"{where}.{key}: cannot be zero")  # Alertmanager refuses it too
        timings.append(seconds)
    return _Resolved(str(receiver), *timings)


def _matchers(route: Mapping[str, Any]) -> tuple[str, ...]:
    """The route's matchers as written, `match` and `match_re` spelled as matchers."""
    matchers, match, match_re = (route.get(key) for key in ("matchers", "match", "match_re"))
    found = [str(m) for m in matchers] if isinstance(matchers, list) else []
    if isinstance(match, Mapping):
        found += [f'{name}="{value}"' for name, value in match.items()]
    if isinstance(match_re, Mapping):
        found += [f'{name}=~"{value}"' for name, value in match_re.items()]
    return tuple(found)


def _matches_everything(route: Mapping[str, Any]) -> bool:
    return not _matchers(route)


def _receivers(value: Any, problems: list[str]) -> tuple[set[str], list[MailerWebhook]]:
    """The receivers' names, and their webhook_configs that point at the mailer."""
    if not isinstance(value, list) or not all(isinstance(r, Mapping) for r in value):
        problems.append("receivers: required, a list of receivers")
        return set(), []
    names: set[str] = set()
    webhooks: list[MailerWebhook] = []
    for index, receiver in enumerate(value):
        name = receiver.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"receivers[{index}].name: required")
            continue
        names.add(name)
        configs = receiver.get("webhook_configs") or []
        if not isinstance(configs, list) or not all(isinstance(c, Mapping) for c in configs):
            problems.append(f"receivers[{index}].webhook_configs: must be a list")
            continue
        for position, config in enumerate(configs):
            where = f"receivers[{index}].webhook_configs[{position}]"
            webhook = _mailer_webhook(name, where, config, problems)
            if webhook is not None:
                webhooks.append(webhook)
    return names, webhooks


def _mailer_webhook(
    receiver: str, where: str, config: Mapping[str, Any], problems: list[str]
) -> MailerWebhook | None:
    """The webhook if its URL is the mailer's. A `url_file` (Alertmanager 0.28+) is not read:
    such a webhook is not recognised as the mailer's."""
    url = config.get("url")
    if not isinstance(url, str) or not urlsplit(url).path.rstrip("/").endswith(
        MAILER_WEBHOOK_PATHS
    ):
        return None
    send_resolved = config.get("send_resolved", True)  # Alertmanager's default for webhooks
    max_alerts = config.get("max_alerts", 0)  # 0: all alerts
    if not isinstance(send_resolved, bool):
        problems.append(f"{where}.send_resolved: must be true or false")
    if not isinstance(max_alerts, int) or isinstance(max_alerts, bool) or max_alerts < 0:
        problems.append(f"{where}.max_alerts: must be a whole number, 0 or more")
        max_alerts = 0
    return MailerWebhook(receiver, where, url, send_resolved is not False, max_alerts)
