"""Loopback copies of the shipped Prometheus, Alertmanager and alert-rule configs.

The shipped files (prometheus/prometheus.yml, alertmanager/alertmanager.yml, alert_rules/*.yml)
address the services by their docker compose names and use production timings. The demo and the
tests run the same files on 127.0.0.1 with timings shortened, so they are derived here instead of
kept as second copies that would drift:

- addresses: every scrape target, Alertmanager target and webhook URL whose `host:port` is a key
  of the address map is rewritten to its value;
- timings: scrape/evaluation intervals, rule `for:`/`keep_firing_for:`, range selectors in rule
  expressions, and Alertmanager's group_wait/group_interval/repeat_interval/resolve_timeout go
  through a Scaling (seconds -> seconds): `by_factor(60)` turns minutes into seconds,
  `by_mapping({...})` sets chosen values exactly.

Thresholds inside expressions (e.g. `26 * 3600` seconds since the last sync) are facts about the
platform, not timings, and are left alone: a demo makes them true with its data instead.
"""

from __future__ import annotations

import copy
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_CONFIG = REPO_ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO_ROOT / "alertmanager" / "alertmanager.yml"
RULES_DIR = REPO_ROOT / "alert_rules"

# The compose address of each service, as written in the shipped files.
SHIPPED_ADDRESSES: dict[str, str] = {
    "exporter": "exporter:9730",
    "mailer": "mailer:9731",
    "alertmanager": "alertmanager:9093",
    "prometheus": "localhost:9090",
}

# Alertmanager must keep its notification log longer than the longest repeat_interval
# (192h), or it repeats notifications early; alertmanager.yml documents the flag.
ALERTMANAGER_DATA_RETENTION = "200h"

# Where the shipped alertmanager.yml expects the webhook bearer token, relative to its directory.
WEBHOOK_TOKEN_FILE = Path("secrets") / "webhook-token"

Scaling = Callable[[float], float]
"""Maps a duration in seconds to the derived duration in seconds."""

_UNITS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_DURATION = re.compile(r"^(?:(\d+)(ms|y|w|d|h|m|s))+$")
_DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
# A range selector or subquery in PromQL: [5m], [1h30m], [30m:1m].
_RANGE = re.compile(r"\[(\w+)(?::(\w*))?\]")


class DeriveError(ValueError):
    """The shipped files or the requested derivation are inconsistent; names every problem."""


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Alertmanager duration such as `1h30m` or `500ms`.

    :raise DeriveError: when `text` is not such a duration.
    """
    text = str(text).strip()
    if not _DURATION.match(text):
        raise DeriveError(f"not a duration: {text!r} (expected e.g. 30s, 5m, 1h30m)")
    return sum(int(amount) * _UNITS[unit] for amount, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest duration string for `seconds`, at millisecond precision (`0s` for zero)."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        amount, millis = divmod(millis, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def by_factor(factor: float, minimum: float = 1.0) -> Scaling:
    """Divides every duration by `factor`, never below `minimum` seconds (zero stays zero)."""
    if factor <= 0:
        raise DeriveError(f"scaling factor must be positive, got {factor}")

    def scale(seconds: float) -> float:
        return 0.0 if seconds == 0 else max(seconds / factor, minimum)

    return scale


def by_mapping(mapping: Mapping[str, str], otherwise: Scaling | None = None) -> Scaling:
    """Replaces the durations named in `mapping` (e.g. `{"5m": "5s"}`) and scales others with
    `otherwise` (default: unchanged). Keys match by value, so `60m` also matches `1h`.

    :raise DeriveError: listing every key or value that is not a duration.
    """
    table: dict[float, float] = {}
    problems = []
    for source, target in mapping.items():
        try:
            table[parse_duration(source)] = parse_duration(target)
        except DeriveError as error:
            problems.append(str(error))
    if problems:
        raise DeriveError("; ".join(problems))

    def scale(seconds: float) -> float:
        if seconds in table:
            return table[seconds]
        return otherwise(seconds) if otherwise else seconds

    return scale


def _scaled(value: Any, scale: Scaling) -> str:
    return format_duration(scale(parse_duration(value)))


def _scale_ranges(expr: str, scale: Scaling) -> str:
    def replace(match: re.Match[str]) -> str:
        window, step = match.group(1), match.group(2)
        if not _DURATION.match(window):
            return match.group(0)
        scaled = format_duration(scale(parse_duration(window)))
        if step is None:
            return f"[{scaled}]"
        return f"[{scaled}:{_scaled(step, scale) if step else ''}]"

    return _RANGE.sub(replace, expr)


def _rewrite_address(address: str, addresses: Mapping[str, str], used: set[str]) -> str:
    if address in addresses:
        used.add(address)
        return addresses[address]
    return address


def _rewrite_url(url: str, addresses: Mapping[str, str], used: set[str]) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = _rewrite_address(parts.netloc, addresses, used)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def derive_rules(document: Mapping[str, Any], scale: Scaling) -> dict[str, Any]:
    """A rule file with group intervals, `for:`, `keep_firing_for:` and range selectors scaled."""
    derived = copy.deepcopy(dict(document))
    for group in derived.get("groups", []):
        if "interval" in group:
            group["interval"] = _scaled(group["interval"], scale)
        for rule in group.get("rules", []):
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = _scaled(rule[key], scale)
            rule["expr"] = _scale_ranges(str(rule["expr"]), scale)
    return derived


def derive_prometheus(
    document: Mapping[str, Any],
    addresses: Mapping[str, str],
    rule_files: Iterable[str | Path],
    scale: Scaling,
) -> dict[str, Any]:
    """prometheus.yml with targets rewritten, intervals scaled and `rule_files` replaced.

    :raise DeriveError: when an address key appears nowhere in the file.
    """
    derived = copy.deepcopy(dict(document))
    used: set[str] = set()
    global_section = derived.setdefault("global", {})
    _scale_scrape_timings(global_section, scale)
    for alertmanagers in derived.get("alerting", {}).get("alertmanagers", []):
        for static in alertmanagers.get("static_configs", []):
            static["targets"] = [_rewrite_address(t, addresses, used) for t in static["targets"]]
    for job in derived.get("scrape_configs", []):
        _scale_scrape_timings(job, scale)
        for static in job.get("static_configs", []):
            static["targets"] = [_rewrite_address(t, addresses, used) for t in static["targets"]]
    derived["rule_files"] = [str(path) for path in rule_files]
    _check_all_used(addresses, used, "prometheus.yml")
    return derived


def _scale_scrape_timings(section: dict[str, Any], scale: Scaling) -> None:
    for key in ("scrape_interval", "scrape_timeout", "evaluation_interval"):
        if key in section:
            section[key] = _scaled(section[key], scale)
    # Prometheus rejects a timeout longer than the interval; scaling may produce one.
    if "scrape_interval" in section and "scrape_timeout" in section:
        interval = parse_duration(section["scrape_interval"])
        if parse_duration(section["scrape_timeout"]) > interval:
            section["scrape_timeout"] = section["scrape_interval"]


def derive_alertmanager(
    document: Mapping[str, Any],
    addresses: Mapping[str, str],
    scale: Scaling,
    always_active: bool = False,
) -> dict[str, Any]:
    """alertmanager.yml with webhook URLs rewritten and route timings scaled.

    `always_active` drops every route's `active_time_intervals` (e.g. the Tuesday-only privacy
    reminders) so a demo can show those notifications on any day.

    :raise DeriveError: when an address key appears nowhere in the file.
    """
    derived = copy.deepcopy(dict(document))
    used: set[str] = set()
    global_section = derived.get("global") or {}
    if "resolve_timeout" in global_section:
        global_section["resolve_timeout"] = _scaled(global_section["resolve_timeout"], scale)
    _scale_route(derived["route"], scale, always_active)
    for receiver in derived.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = _rewrite_url(webhook["url"], addresses, used)
    _check_all_used(addresses, used, "alertmanager.yml", ignore=_prometheus_only(addresses))
    return derived


def _prometheus_only(addresses: Mapping[str, str]) -> set[str]:
    # One address map serves both files; only the mailer appears in alertmanager.yml.
    return {key for key in addresses if key != SHIPPED_ADDRESSES["mailer"]}


def _scale_route(route: dict[str, Any], scale: Scaling, always_active: bool) -> None:
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in route:
            route[key] = _scaled(route[key], scale)
    if always_active:
        route.pop("active_time_intervals", None)
    for child in route.get("routes", []):
        _scale_route(child, scale, always_active)


def _check_all_used(
    addresses: Mapping[str, str], used: set[str], where: str, ignore: set[str] | None = None
) -> None:
    unknown = sorted(set(addresses) - used - (ignore or set()))
    if unknown:
        raise DeriveError(f"{where}: no target or URL uses {', '.join(unknown)}")


def alertmanager_args(scale: Scaling) -> list[str]:
    """Flags Alertmanager needs for the derived config (the retention scaled like the repeats)."""
    return [f"--data.retention={_scaled(ALERTMANAGER_DATA_RETENTION, scale)}"]


def local_addresses(**ports: int) -> dict[str, str]:
    """Address map for services on 127.0.0.1, e.g. `local_addresses(exporter=5001, mailer=5002)`.

    :raise DeriveError: for a service name not in SHIPPED_ADDRESSES.
    """
    unknown = sorted(set(ports) - set(SHIPPED_ADDRESSES))
    if unknown:
        raise DeriveError(
            f"unknown services {', '.join(unknown)}; known: {', '.join(SHIPPED_ADDRESSES)}"
        )
    return {SHIPPED_ADDRESSES[name]: f"127.0.0.1:{port}" for name, port in ports.items()}


@dataclass(frozen=True)
class DerivedConfigs:
    """Paths of the files written by write_stack()."""

    prometheus: Path
    alertmanager: Path
    rule_files: tuple[Path, ...]
    alertmanager_args: tuple[str, ...]


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`; :raise DeriveError: when the file is not one."""
    document = yaml.safe_load(Path(path).read_text())
    if not isinstance(document, dict):
        raise DeriveError(f"{path}: expected a YAML mapping at the top")
    return document


def write_stack(
    out_dir: Path,
    addresses: Mapping[str, str],
    scale: Scaling,
    webhook_token: str,
    always_active: bool = False,
    prometheus_config: Path = PROMETHEUS_CONFIG,
    alertmanager_config: Path = ALERTMANAGER_CONFIG,
    rules_dir: Path = RULES_DIR,
) -> DerivedConfigs:
    """Writes derived rule files, prometheus.yml and alertmanager.yml (with its token file) under
    `out_dir`: `out_dir/alert_rules/*.yml`, `out_dir/prometheus/prometheus.yml`,
    `out_dir/alertmanager/alertmanager.yml` and `out_dir/alertmanager/secrets/webhook-token`.

    Every document is derived before anything is written, so a bad request writes nothing.

    :raise DeriveError: when an address key is unused or a duration is malformed.
    """
    if not webhook_token.strip():
        raise DeriveError("webhook_token is empty")
    out_dir = Path(out_dir).resolve()
    rules_out = out_dir / "alert_rules"
    rule_documents = {
        rules_out / source.name: derive_rules(load_yaml(source), scale)
        for source in sorted(Path(rules_dir).glob("*.yml"))
    }
    if not rule_documents:
        raise DeriveError(f"{rules_dir}: no rule files (*.yml)")
    prometheus = derive_prometheus(
        load_yaml(prometheus_config), addresses, list(rule_documents), scale
    )
    alertmanager = derive_alertmanager(
        load_yaml(alertmanager_config), addresses, scale, always_active
    )

    rules_out.mkdir(parents=True, exist_ok=True)
    for path, document in rule_documents.items():
        _dump(path, document)
    prometheus_path = out_dir / "prometheus" / "prometheus.yml"
    _dump(prometheus_path, prometheus)
    alertmanager_path = out_dir / "alertmanager" / "alertmanager.yml"
    _dump(alertmanager_path, alertmanager)
    token_path = alertmanager_path.parent / WEBHOOK_TOKEN_FILE
    token_path.parent.mkdir(parents=True, exist_ok=True)
    token_path.write_text(webhook_token.strip() + "\n")
    token_path.chmod(0o600)
    return DerivedConfigs(
        prometheus_path, alertmanager_path, tuple(rule_documents), tuple(alertmanager_args(scale))
    )


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (rule expressions) as `|` blocks, so derived files read well."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, width=1000))
