"""The mailer's configuration: a YAML file (path in SYSNOTIFY_MAILER_CONFIG) plus secrets.

Everything is validated at start-up and every problem is reported at once, so an operator
fixes the file in one go. Unknown keys are errors (a typo must not silently fall back to a
default). Secrets never come from the YAML file itself: each is read from an environment
variable, from a file named by `<VAR>_FILE`, or from a file named in the config
(`token_file`, `password_file`), in that order. Secret fields are `repr=False` so they never
end up in logs or tracebacks.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from email_validator import EmailNotValidError, validate_email

from sysnotify.mailer.catalog import Catalog, CatalogError
from sysnotify.mailer.model import Brand

CONFIG_ENV = "SYSNOTIFY_MAILER_CONFIG"
WEBHOOK_TOKEN_ENV = "SYSNOTIFY_WEBHOOK_TOKEN"
ADMIN_TOKEN_ENV = "SYSNOTIFY_ADMIN_TOKEN"
SMTP_PASSWORD_ENV = "SYSNOTIFY_SMTP_PASSWORD"

SMTP_SECURITY = ("starttls", "tls", "none")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


class ConfigError(ValueError):
    """The configuration is invalid; `problems` lists every fault, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid mailer configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class StoreConfig:
    path: Path


@dataclass(frozen=True)
class WebhookConfig:
    token: str = field(repr=False)
    max_body_bytes: int = 1_048_576


@dataclass(frozen=True)
class AdminConfig:
    token: str | None = field(default=None, repr=False)  # None: the admin API is disabled


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: str = "starttls"  # starttls, tls (implicit TLS) or none
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_seconds: float = 30.0
    # An idle connection is checked with NOOP before reuse after this long.
    noop_after_seconds: float = 30.0
    verify_tls: bool = True


@dataclass(frozen=True)
class DeliveryConfig:
    enabled: bool = True
    threads: int = 1
    claim_batch: int = 10
    poll_interval_seconds: float = 1.0
    lease_seconds: float = 120.0
    max_attempts: int = 12
    max_age_seconds: float = 86_400.0
    backoff_initial_seconds: float = 5.0
    backoff_max_seconds: float = 900.0


@dataclass(frozen=True)
class DedupConfig:
    duplicate_window_seconds: float = 3600.0
    state_retention_seconds: float = 30 * 86_400.0
    # Per Alertmanager receiver name, for receivers whose routes repeat faster than the
    # default window (e.g. a Watchdog repeated every 10 minutes to `operators`).
    receiver_windows: Mapping[str, float] = field(default_factory=dict)

    def window_for(self, receiver: str) -> float:
        return self.receiver_windows.get(receiver, self.duplicate_window_seconds)


@dataclass(frozen=True)
class OperatorsConfig:
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class MailerConfig:
    store: StoreConfig
    webhook: WebhookConfig
    smtp: SmtpConfig
    brand: Brand
    admin: AdminConfig = AdminConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    dedup: DedupConfig = DedupConfig()
    operators: OperatorsConfig = OperatorsConfig()
    send_recovery: Mapping[str, bool] = field(default_factory=dict)
    templates_dir: Path | None = None

    def catalog(self) -> Catalog:
        return Catalog.with_overrides(self.send_recovery)


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like "90s", "15m", "1h", "7d"."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 1h, 7d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


class _Reader:
    """Walks one YAML section, collecting problems instead of stopping at the first."""

    def __init__(self, raw: Any, section: str, problems: list[str]) -> None:
        self.section = section
        self.problems = problems
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            problems.append(f"{section}: must be a mapping")
            raw = {}
        self.raw: dict[str, Any] = raw
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.section}.{name}" if self.section else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None,
            required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.raw or self.raw[name] is None:
            if required:
                self.problems.append(f"{self.key(name)}: required")
            return default
        value = self.raw[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            self.problems.append(f"{self.key(name)}: must be {_kind_name(kinds)}")
            return default
        if not isinstance(value, kinds):
            self.problems.append(f"{self.key(name)}: must be {_kind_name(kinds)}")
            return default
        return value

    def duration(self, name: str, default: float, minimum: float = 0.0) -> float:
        self.used.add(name)
        if name not in self.raw or self.raw[name] is None:
            return default
        try:
            seconds = parse_duration(self.raw[name])
        except ValueError as error:
            self.problems.append(f"{self.key(name)}: {error}")
            return default
        if seconds < minimum:
            self.problems.append(f"{self.key(name)}: must be at least {minimum:g}s")
            return default
        return seconds

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.get(name, int, default)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            self.problems.append(f"{self.key(name)}: must be {bound}")
            return default
        return int(value)

    def section_of(self, name: str) -> _Reader:
        self.used.add(name)
        return _Reader(self.raw.get(name), self.key(name), self.problems)

    def reject_unknown(self) -> None:
        unknown = sorted(set(map(str, self.raw)) - self.used)
        if unknown:
            where = self.section or "top level"
            self.problems.append(f"{where}: unknown keys: {', '.join(unknown)}")


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _secret(reader: _Reader, file_key: str, env_name: str, env: Mapping[str, str],
            base_dir: Path) -> str | None:
    """A secret from env, then env `<NAME>_FILE`, then the file named by `file_key`."""
    problems = reader.problems
    if env.get(env_name):
        return env[env_name]
    candidates = []
    if env.get(f"{env_name}_FILE"):
        candidates.append((f"{env_name}_FILE", Path(env[f"{env_name}_FILE"])))
    file_value = reader.get(file_key, str)
    if file_value:
        path = Path(file_value)
        candidates.append((reader.key(file_key), path if path.is_absolute() else base_dir / path))
    for origin, path in candidates:
        try:
            secret = path.read_text().strip()
        except OSError as error:
            problems.append(f"{origin}: cannot read {path}: {error.strerror or error}")
            return None
        if not secret:
            problems.append(f"{origin}: {path} is empty")
            return None
        return secret
    return None


def _address(value: str, where: str, problems: list[str]) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        problems.append(f"{where}: not a valid email address ({error})")
        return value


def _brand(reader: _Reader) -> Brand:
    problems_before = len(reader.problems)
    values: dict[str, Any] = {}
    for brand_field in dataclasses.fields(Brand):
        name = brand_field.name
        required = brand_field.default is dataclasses.MISSING and \
            brand_field.default_factory is dataclasses.MISSING
        if name == "console_paths":
            paths = reader.get(name, dict, {})
            bad = [k for k, v in paths.items() if not isinstance(v, str)]
            for key in bad:
                reader.problems.append(f"{reader.key(name)}.{key}: must be a string")
            values[name] = {str(k): v for k, v in paths.items() if isinstance(v, str)}
        elif isinstance(brand_field.default, int) and not isinstance(brand_field.default, bool):
            values[name] = reader.integer(name, brand_field.default, 1, 2000)
        else:
            value = reader.get(name, str, None, required=required)
            if value is not None:
                values[name] = value
    for name in ("sender_address", "support_email"):
        if values.get(name):
            values[name] = _address(values[name], reader.key(name), reader.problems)
    if len(reader.problems) > problems_before:
        # Keep going so the caller reports everything; a placeholder brand is never used.
        return Brand(product_name="", sender_address="", console_url="", support_email="")
    return Brand(**values)


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None,
                require_webhook_token: bool = True) -> MailerConfig:
    """Reads and validates the config file and secrets.

    :param path: the YAML file; defaults to $SYSNOTIFY_MAILER_CONFIG.
    :param env: the environment to read secrets from (default: os.environ).
    :param require_webhook_token: False for tools that serve no webhook (the recipients CLI).
    :raise ConfigError: listing every problem.
    """
    env = os.environ if env is None else env
    if path is None:
        path = env.get(CONFIG_ENV)
        if not path:
            raise ConfigError([f"{CONFIG_ENV} is not set: point it at the mailer's YAML config"])
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: not valid YAML: {error}"]) from None
    return config_from_mapping(raw, env, base_dir=path.parent,
                               require_webhook_token=require_webhook_token)


def config_from_mapping(raw: Any, env: Mapping[str, str] | None = None,
                        base_dir: Path | None = None,
                        require_webhook_token: bool = True) -> MailerConfig:
    """Validates an already-parsed config mapping (the YAML document)."""
    env = os.environ if env is None else env
    base_dir = base_dir or Path.cwd()
    problems: list[str] = []
    top = _Reader(raw, "", problems)

    store_reader = top.section_of("store")
    store_path = store_reader.get("path", str, required=True)
    store_reader.reject_unknown()
    if store_path:
        store_path = Path(store_path) if Path(store_path).is_absolute() else base_dir / store_path

    webhook_reader = top.section_of("webhook")
    problems_before = len(problems)
    webhook_token = _secret(webhook_reader, "token_file", WEBHOOK_TOKEN_ENV, env, base_dir)
    secret_unreadable = len(problems) > problems_before
    max_body = webhook_reader.integer("max_body_bytes", 1_048_576, 1024)
    webhook_reader.reject_unknown()
    if webhook_token is None and not secret_unreadable and require_webhook_token:
        problems.append(f"webhook token: set {WEBHOOK_TOKEN_ENV}, {WEBHOOK_TOKEN_ENV}_FILE or "
                        "webhook.token_file")

    admin_reader = top.section_of("admin")
    admin_token = _secret(admin_reader, "token_file", ADMIN_TOKEN_ENV, env, base_dir)
    admin_reader.reject_unknown()

    smtp_reader = top.section_of("smtp")
    smtp_host = smtp_reader.get("host", str, required=True)
    smtp_port = smtp_reader.integer("port", 587, 1, 65535)
    security = smtp_reader.get("security", str, "starttls")
    if security not in SMTP_SECURITY:
        problems.append(f"smtp.security: must be one of {', '.join(SMTP_SECURITY)}")
    username = smtp_reader.get("username", str)
    password = _secret(smtp_reader, "password_file", SMTP_PASSWORD_ENV, env, base_dir)
    if username and password is None:
        problems.append(f"smtp.username is set but no password: set {SMTP_PASSWORD_ENV}, "
                        f"{SMTP_PASSWORD_ENV}_FILE or smtp.password_file")
    smtp = SmtpConfig(
        host=smtp_host or "", port=smtp_port, security=security, username=username,
        password=password,
        timeout_seconds=smtp_reader.duration("timeout", 30.0, minimum=0.1),
        noop_after_seconds=smtp_reader.duration("noop_after", 30.0),
        verify_tls=smtp_reader.get("verify_tls", bool, True),
    )
    smtp_reader.reject_unknown()

    delivery_reader = top.section_of("delivery")
    delivery = DeliveryConfig(
        enabled=delivery_reader.get("enabled", bool, True),
        threads=delivery_reader.integer("threads", 1, 1, 16),
        claim_batch=delivery_reader.integer("claim_batch", 10, 1, 500),
        poll_interval_seconds=delivery_reader.duration("poll_interval", 1.0, minimum=0.01),
        lease_seconds=delivery_reader.duration("lease", 120.0, minimum=1.0),
        max_attempts=delivery_reader.integer("max_attempts", 12, 1),
        max_age_seconds=delivery_reader.duration("max_age", 86_400.0, minimum=1.0),
        backoff_initial_seconds=delivery_reader.duration("backoff_initial", 5.0, minimum=0.01),
        backoff_max_seconds=delivery_reader.duration("backoff_max", 900.0, minimum=0.01),
    )
    delivery_reader.reject_unknown()
    if delivery.lease_seconds <= smtp.timeout_seconds * 2:
        problems.append("delivery.lease: must be more than twice smtp.timeout, or another "
                        "worker may reclaim an email while it is being sent")

    dedup_reader = top.section_of("dedup")
    windows_reader = dedup_reader.section_of("receiver_windows")
    receiver_windows = {str(name): windows_reader.duration(str(name), 0.0, minimum=1.0)
                        for name in windows_reader.raw}
    dedup = DedupConfig(
        duplicate_window_seconds=dedup_reader.duration("duplicate_window", 3600.0, minimum=1.0),
        state_retention_seconds=dedup_reader.duration("state_retention", 30 * 86_400.0,
                                                      minimum=60.0),
        receiver_windows={k: v for k, v in receiver_windows.items() if v},
    )
    dedup_reader.reject_unknown()
    if dedup.state_retention_seconds <= dedup.duplicate_window_seconds:
        problems.append("dedup.state_retention: must be longer than dedup.duplicate_window")

    operators_reader = top.section_of("operators")
    raw_addresses = operators_reader.get("addresses", list, [])
    operator_addresses = []
    for index, address in enumerate(raw_addresses):
        where = f"operators.addresses[{index}]"
        if not isinstance(address, str):
            problems.append(f"{where}: must be a string")
        else:
            operator_addresses.append(_address(address, where, problems))
    operators_reader.reject_unknown()

    notifications_reader = top.section_of("notifications")
    send_recovery = notifications_reader.get("send_recovery", dict, {})
    for name, enabled in send_recovery.items():
        if not isinstance(enabled, bool):
            problems.append(f"notifications.send_recovery.{name}: must be true or false")
    notifications_reader.reject_unknown()
    send_recovery = {str(k): v for k, v in send_recovery.items() if isinstance(v, bool)}
    try:
        Catalog.with_overrides(send_recovery)
    except CatalogError as error:
        problems.append(f"notifications.send_recovery: {error}")

    brand = _brand(top.section_of("brand"))
    if "brand" not in top.raw:
        problems.append("brand: required (product_name, sender_address, console_url, "
                        "support_email)")

    templates_dir = top.get("templates_dir", str)
    if templates_dir:
        templates_dir = Path(templates_dir) if Path(templates_dir).is_absolute() \
            else base_dir / templates_dir
        if not templates_dir.is_dir():
            problems.append(f"templates_dir: {templates_dir} is not a directory")

    top.reject_unknown()
    if problems:
        raise ConfigError(problems)
    return MailerConfig(
        store=StoreConfig(path=store_path),
        webhook=WebhookConfig(token=webhook_token or "", max_body_bytes=max_body),
        admin=AdminConfig(token=admin_token),
        smtp=smtp,
        delivery=delivery,
        dedup=dedup,
        operators=OperatorsConfig(addresses=tuple(operator_addresses)),
        send_recovery=send_recovery,
        brand=brand,
        templates_dir=templates_dir or None,
    )
