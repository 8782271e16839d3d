"""The mailer's configuration: a YAML file (path in SYSNOTIFY_MAILER_CONFIG) plus secrets.

Every key is declared once below (`MAILER`): its kind, default, bounds, meaning and whether it
is required or secret. Reading, the dataclasses' defaults, and the checks of
mailer/config.example.yml and the documentation tables all come from that declaration
(sysnotify/settings.py reads it).

Everything is validated at start-up and every problem is reported at once, so an operator
fixes the file in one go. Unknown keys are errors (a typo must not silently fall back to a
default). Secrets never come from the YAML file itself: each is read from an environment
variable, from a file named by `<VAR>_FILE`, or from a file named in the config
(`token_file`, `password_file`), in that order. Secret fields are `repr=False` so they never
end up in logs or tracebacks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from sysnotify import settings
from sysnotify.mailer.catalog import Catalog, CatalogError
from sysnotify.mailer.model import Brand
from sysnotify.settings import (
    Choice,
    Colour,
    Directory,
    Duration,
    FilePath,
    Flag,
    Integer,
    Invalid,
    Kind,
    ListOf,
    MapOf,
    Reader,
    Secret,
    Section,
    Setting,
    Text,
    Url,
)
from sysnotify.settings import parse_duration as parse_duration  # part of this module's API

CONFIG_ENV = "SYSNOTIFY_MAILER_CONFIG"
WEBHOOK_TOKEN_ENV = "SYSNOTIFY_WEBHOOK_TOKEN"
ADMIN_TOKEN_ENV = "SYSNOTIFY_ADMIN_TOKEN"
SMTP_PASSWORD_ENV = "SYSNOTIFY_SMTP_PASSWORD"

SMTP_SECURITY = ("starttls", "tls", "none")


class ConfigError(settings.ConfigError):
    """The configuration is invalid; `problems` lists every fault, each naming its key."""

    what = "mailer configuration"


@dataclass(frozen=True)
class EmailAddress(Kind):
    """An email address, normalized (the domain lower-cased, IDNs decoded)."""

    def convert(self, value: Any, key: str, reader: Reader) -> Any:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise Invalid(f"not a valid email address ({error})") from None


# Brand (mailer/model.py) is also built without a config (sample emails, tests), so its field
# defaults are where the brand's defaults are written; the declaration refers to them.
_BRAND = Brand(product_name="", sender_address="", console_url="", support_email="")

# -- the declaration: every key, once ------------------------------------------------------

STORE = Section(
    "store",
    (
        Setting(
            "path",
            FilePath(),
            required=True,
            meaning="the SQLite database (recipients, alert state, outbox, counters), relative "
            "to the config file; every gunicorn worker and the CLI use the same file",
        ),
    ),
)

WEBHOOK = Section(
    "webhook",
    (
        Setting(
            "token",
            Secret(env=WEBHOOK_TOKEN_ENV, file_key="token_file", name="webhook token"),
            required=True,
            meaning="the bearer token Alertmanager sends (http_config.authorization)",
        ),
        Setting(
            "max_body_bytes",
            Integer(minimum=1024),
            default=1_048_576,
            meaning="larger requests are answered 413",
        ),
    ),
)

ADMIN = Section(
    "admin",
    (
        Setting(
            "token",
            Secret(env=ADMIN_TOKEN_ENV, file_key="token_file", name="admin token"),
            meaning="the admin API's bearer token; without one the admin API answers 403",
        ),
    ),
)

SMTP = Section(
    "smtp",
    (
        Setting("host", Text(), required=True, meaning="the SMTP server (relay or submission)"),
        Setting("port", Integer(minimum=1, maximum=65535), default=587, meaning="its port"),
        Setting(
            "security",
            Choice(SMTP_SECURITY),
            default="starttls",
            meaning="starttls, tls (implicit TLS, usually port 465) or none",
        ),
        Setting("username", Text(), meaning="enables AUTH; then a password is required"),
        Setting(
            "password",
            Secret(env=SMTP_PASSWORD_ENV, file_key="password_file", name="smtp password"),
            meaning="the SMTP password (with a username)",
        ),
        Setting(
            "timeout",
            Duration(minimum=0.1),
            default="30s",
            attribute="timeout_seconds",
            meaning="socket timeout of every SMTP command",
        ),
        Setting(
            "noop_after",
            Duration(),
            default="30s",
            attribute="noop_after_seconds",
            meaning="an idle connection is checked with NOOP before reuse after this long",
        ),
        Setting(
            "verify_tls",
            Flag(),
            default=True,
            meaning="verify the server's TLS certificate and host name",
        ),
    ),
)

DELIVERY = Section(
    "delivery",
    (
        Setting(
            "enabled",
            Flag(),
            default=True,
            meaning="run delivery threads in each gunicorn worker; false when a separate "
            "`sysnotify-mailer deliver --watch` process sends",
        ),
        Setting(
            "threads",
            Integer(minimum=1, maximum=16),
            default=1,
            meaning="delivery threads per worker, each with its own SMTP connection",
        ),
        Setting(
            "claim_batch",
            Integer(minimum=1, maximum=500),
            default=10,
            meaning="due emails a delivery thread claims in one transaction",
        ),
        Setting(
            "poll_interval",
            Duration(minimum=0.01),
            default="1s",
            attribute="poll_interval_seconds",
            meaning="how often an idle delivery thread looks for due emails",
        ),
        Setting(
            "lease",
            Duration(minimum=1.0),
            default="120s",
            attribute="lease_seconds",
            meaning="how long a claimed email is reserved for its thread; more than twice "
            "smtp.timeout",
        ),
        Setting(
            "max_attempts",
            Integer(minimum=1),
            default=12,
            meaning="attempts before an email is failed",
        ),
        Setting(
            "max_age",
            Duration(minimum=1.0),
            default="24h",
            attribute="max_age_seconds",
            meaning="an email still unsent this long after it was queued is failed",
        ),
        Setting(
            "backoff_initial",
            Duration(minimum=0.01),
            default="5s",
            attribute="backoff_initial_seconds",
            meaning="first retry delay; doubles per attempt, with jitter",
        ),
        Setting(
            "backoff_max",
            Duration(minimum=0.01),
            default="15m",
            attribute="backoff_max_seconds",
            meaning="longest retry delay",
        ),
    ),
)

DEDUP = Section(
    "dedup",
    (
        Setting(
            "duplicate_window",
            Duration(minimum=1.0),
            default="1h",
            attribute="duplicate_window_seconds",
            meaning="a payload repeating what was emailed less than this long ago sends "
            "nothing; shorter than the smallest repeat_interval",
        ),
        Setting(
            "receiver_windows",
            MapOf(Duration(minimum=1.0)),
            default={},
            meaning="the duplicate window per Alertmanager receiver name, for receivers whose "
            "routes repeat faster (the operators' Watchdog)",
        ),
        Setting(
            "state_retention",
            Duration(minimum=60.0),
            default="30d",
            attribute="state_retention_seconds",
            meaning="alert state not seen this long is forgotten; longer than the longest "
            "repeat_interval",
        ),
    ),
)

RETENTION = Section(
    "retention",
    (
        Setting(
            "sent_emails",
            Duration(minimum=3600.0),
            default="35d",
            attribute="sent_emails_seconds",
            meaning="sent emails are deleted from the outbox this long after they were sent; "
            "longer than dedup.state_retention",
        ),
        Setting(
            "failed_emails",
            Duration(minimum=3600.0),
            default="90d",
            attribute="failed_emails_seconds",
            meaning="emails given up on are deleted this long after; longer than "
            "dedup.state_retention",
        ),
        Setting(
            "undeliverable",
            Duration(minimum=3600.0),
            default="30d",
            attribute="undeliverable_seconds",
            meaning="notifications kept as undeliverable are deleted this long after they arrived",
        ),
    ),
)

OPERATORS = Section(
    "operators",
    (
        Setting(
            "addresses",
            ListOf(EmailAddress()),
            default=[],
            meaning="who receives the pipeline's own alerts (/operators/webhook)",
        ),
    ),
)

NOTIFICATIONS = Section(
    "notifications",
    (
        Setting(
            "send_recovery",
            MapOf(Flag()),
            default={},
            shown_default="catalog",
            meaning="recovery emails on or off per notification (defaults: mailer/catalog.py)",
        ),
    ),
)

BRAND = Section(
    "brand",
    required=True,
    entries=(
        Setting(
            "product_name",
            Text(),
            required=True,
            meaning="the product name in subjects and the layout",
        ),
        Setting(
            "sender_address",
            EmailAddress(),
            required=True,
            meaning="the no-reply From address; its domain is used in Message-IDs",
        ),
        Setting(
            "console_url",
            Url(),
            required=True,
            meaning="base URL of the console; links are built from it and console_paths",
        ),
        Setting("support_email", EmailAddress(), required=True, meaning="where readers get help"),
        Setting(
            "logo_url",
            Url(optional=True),
            default=_BRAND.logo_url,
            meaning="absolute URL of the logo image",
        ),
        Setting(
            "sender_name",
            Text(),
            default=_BRAND.sender_name,
            shown_default="product_name",
            meaning="the From display name",
        ),
        Setting(
            "company_name",
            Text(),
            default=_BRAND.company_name,
            meaning="company name in the footer",
        ),
        Setting("primary_color", Colour(), default=_BRAND.primary_color, meaning="colour"),
        Setting("accent_color", Colour(), default=_BRAND.accent_color, meaning="colour"),
        Setting("background_color", Colour(), default=_BRAND.background_color, meaning="colour"),
        Setting("text_color", Colour(), default=_BRAND.text_color, meaning="colour"),
        Setting(
            "footer_text",
            Text(),
            default=_BRAND.footer_text,
            meaning="footer sentence saying why the reader receives the email",
        ),
        Setting(
            "console_paths",
            MapOf(Text()),
            default=dict(_BRAND.console_paths),
            meaning="console paths by purpose: credentials, integrations, web_tag, privacy, "
            "sync, notifications",
        ),
        Setting(
            "logo_width",
            Integer(minimum=1, maximum=2000),
            default=_BRAND.logo_width,
            meaning="the logo's width in pixels",
        ),
        Setting(
            "logo_height",
            Integer(minimum=1, maximum=2000),
            default=_BRAND.logo_height,
            meaning="the logo's height in pixels",
        ),
    ),
)

MAILER = Section(
    "",
    (
        STORE,
        WEBHOOK,
        ADMIN,
        SMTP,
        DELIVERY,
        DEDUP,
        RETENTION,
        OPERATORS,
        NOTIFICATIONS,
        BRAND,
        Setting(
            "templates_dir",
            Directory(),
            shown_default="built-in",
            meaning="another template directory, relative to the config file",
        ),
    ),
)

# -- the dataclasses the mailer uses; defaults from the declaration ------------------------


@dataclass(frozen=True)
class StoreConfig:
    path: Path


@dataclass(frozen=True)
class WebhookConfig:
    token: str = field(repr=False)
    max_body_bytes: int = WEBHOOK.field("max_body_bytes")


@dataclass(frozen=True)
class AdminConfig:
    token: str | None = ADMIN.field("token")  # None: the admin API is disabled


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = SMTP.field("port")
    security: str = SMTP.field("security")
    username: str | None = SMTP.field("username")
    password: str | None = SMTP.field("password")
    timeout_seconds: float = SMTP.field("timeout_seconds")
    noop_after_seconds: float = SMTP.field("noop_after_seconds")
    verify_tls: bool = SMTP.field("verify_tls")


@dataclass(frozen=True)
class DeliveryConfig:
    enabled: bool = DELIVERY.field("enabled")
    threads: int = DELIVERY.field("threads")
    claim_batch: int = DELIVERY.field("claim_batch")
    poll_interval_seconds: float = DELIVERY.field("poll_interval_seconds")
    lease_seconds: float = DELIVERY.field("lease_seconds")
    max_attempts: int = DELIVERY.field("max_attempts")
    max_age_seconds: float = DELIVERY.field("max_age_seconds")
    backoff_initial_seconds: float = DELIVERY.field("backoff_initial_seconds")
    backoff_max_seconds: float = DELIVERY.field("backoff_max_seconds")


@dataclass(frozen=True)
class DedupConfig:
    duplicate_window_seconds: float = DEDUP.field("duplicate_window_seconds")
    state_retention_seconds: float = DEDUP.field("state_retention_seconds")
    receiver_windows: Mapping[str, float] = DEDUP.field("receiver_windows")

    def window_for(self, receiver: str) -> float:
        return self.receiver_windows.get(receiver, self.duplicate_window_seconds)


@dataclass(frozen=True)
class RetentionConfig:
    sent_emails_seconds: float = RETENTION.field("sent_emails_seconds")
    failed_emails_seconds: float = RETENTION.field("failed_emails_seconds")
    undeliverable_seconds: float = RETENTION.field("undeliverable_seconds")


@dataclass(frozen=True)
class OperatorsConfig:
    addresses: tuple[str, ...] = OPERATORS.field("addresses")


@dataclass(frozen=True)
class MailerConfig:
    store: StoreConfig
    webhook: WebhookConfig
    smtp: SmtpConfig
    brand: Brand
    admin: AdminConfig = AdminConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    dedup: DedupConfig = DedupConfig()
    retention: RetentionConfig = RetentionConfig()
    operators: OperatorsConfig = OperatorsConfig()
    send_recovery: Mapping[str, bool] = NOTIFICATIONS.field("send_recovery")
    templates_dir: Path | None = MAILER.field("templates_dir")

    def catalog(self) -> Catalog:
        return Catalog.with_overrides(self.send_recovery)


# The section behind each dataclass (tests check that their fields and defaults agree).
DATACLASSES: tuple[tuple[Section, type], ...] = (
    (STORE, StoreConfig),
    (WEBHOOK, WebhookConfig),
    (ADMIN, AdminConfig),
    (SMTP, SmtpConfig),
    (DELIVERY, DeliveryConfig),
    (DEDUP, DedupConfig),
    (RETENTION, RetentionConfig),
    (OPERATORS, OperatorsConfig),
    (BRAND, Brand),
)


def load_config(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    require_webhook_token: bool = True,
) -> MailerConfig:
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
    raw = settings.read_yaml(path, ConfigError)
    return config_from_mapping(
        raw, env, base_dir=path.parent, require_webhook_token=require_webhook_token
    )


def config_from_mapping(
    raw: Any,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    require_webhook_token: bool = True,
) -> MailerConfig:
    """Validates an already-parsed config mapping (the YAML document)."""
    env = os.environ if env is None else env
    waived = () if require_webhook_token else ("webhook.token",)
    reader = Reader(env, base_dir=base_dir or Path.cwd(), waived=waived)
    values = reader.read(MAILER, raw)
    _check_across_settings(values, reader.problems)
    if reader.problems:
        raise ConfigError(reader.problems)
    return MailerConfig(
        store=StoreConfig(**values["store"]),
        webhook=WebhookConfig(**{**values["webhook"], "token": values["webhook"]["token"] or ""}),
        admin=AdminConfig(**values["admin"]),
        smtp=SmtpConfig(**values["smtp"]),
        delivery=DeliveryConfig(**values["delivery"]),
        dedup=DedupConfig(**values["dedup"]),
        retention=RetentionConfig(**values["retention"]),
        operators=OperatorsConfig(**values["operators"]),
        send_recovery=values["notifications"]["send_recovery"],
        brand=Brand(**values["brand"]),
        templates_dir=values["templates_dir"],
    )


def _check_across_settings(values: dict[str, Any], problems: list[str]) -> None:
    """What no single key can say about itself."""
    smtp, delivery, dedup = values["smtp"], values["delivery"], values["dedup"]
    if smtp["username"] and smtp["password"] is None:
        problems.append(
            f"smtp.username is set but no password: set {SMTP_PASSWORD_ENV}, "
            f"{SMTP_PASSWORD_ENV}_FILE or smtp.password_file"
        )
    if delivery["lease_seconds"] <= smtp["timeout_seconds"] * 2:
        problems.append(
            "delivery.lease: must be more than twice smtp.timeout, or another "
            "worker may reclaim an email while it is being sent"
        )
    if dedup["state_retention_seconds"] <= dedup["duplicate_window_seconds"]:
        problems.append("dedup.state_retention: must be longer than dedup.duplicate_window")
    _check_outbox_outlasts_dedup(values["retention"], dedup, problems)
    try:
        Catalog.with_overrides(values["notifications"]["send_recovery"])
    except CatalogError as error:
        problems.append(f"notifications.send_recovery: {error}")


def _check_outbox_outlasts_dedup(
    retention: dict[str, Any], dedup: dict[str, Any], problems: list[str]
) -> None:
    """A finished outbox row's unique (notification key, recipient) backs up the alert state
    against re-delivered webhooks: it must be kept longer than the state and every window."""
    relied_on = max(
        dedup["state_retention_seconds"],
        dedup["duplicate_window_seconds"],
        *dedup["receiver_windows"].values(),
    )
    for key in ("sent_emails", "failed_emails"):
        if retention[f"{key}_seconds"] <= relied_on:
            problems.append(
                f"retention.{key}: must be longer than dedup.state_retention and every "
                "duplicate window: an email's outbox row stops a re-delivered webhook from "
                "sending it again"
            )
