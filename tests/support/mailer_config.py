"""The mailer's configuration in tests: its tokens, a brand, and configs on a temp directory."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

WEBHOOK_TOKEN = "webhook-secret-token"
ADMIN_TOKEN = "admin-secret-token"
# The environment the mailer reads its tokens from.
TOKENS_ENV = {"SYSNOTIFY_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "SYSNOTIFY_ADMIN_TOKEN": ADMIN_TOKEN}

BRAND = {
    "product_name": "Acme Insights",
    "sender_name": "Acme Insights",
    "sender_address": "no-reply@acme.example",
    "console_url": "https://console.acme.example",
    "support_email": "support@acme.example",
    "company_name": "Acme Inc.",
    "footer_text": "You receive this because you administer this account.",
    "console_paths": {
        "credentials": "/settings/integrations",
        "notifications": "/settings/notifications",
    },
}


def config_mapping(tmp_path: Path, smtp_port: int, **sections: Any) -> dict[str, Any]:
    """The mailer config (as read from YAML) with its store under `tmp_path`, sending to the
    SMTP server on `smtp_port`, with quick delivery; `sections` override keys per section."""
    mapping: dict[str, Any] = {
        "store": {"path": str(tmp_path / "mailer.db")},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": "5s"},
        "delivery": {
            "poll_interval": "0.05s",
            "backoff_initial": "0.05s",
            "backoff_max": "0.2s",
            "lease": "30s",
        },
        "dedup": {"duplicate_window": "1h"},
        "operators": {"addresses": ["oncall@ops.example"]},
        "brand": copy.deepcopy(BRAND),
    }
    for name, value in sections.items():
        mapping[name] = {**mapping.get(name, {}), **value} if isinstance(value, dict) else value
    return mapping


def write_mailer_config(workdir: Path, smtp_port: int, **sections: Any) -> Path:
    """`config_mapping` with short SMTP timeouts and backoff, overridden per section, written
    as `workdir`/mailer.yml for a mailer process; returns the file's path."""
    defaults: dict[str, Any] = {
        "smtp": {"timeout": "2s"},
        "delivery": {
            "poll_interval": "0.1s",
            "lease": "5s",
            "backoff_initial": "0.2s",
            "backoff_max": "2s",
        },
    }
    for name, value in sections.items():
        defaults[name] = {**defaults.get(name, {}), **value}
    path = workdir / "mailer.yml"
    path.write_text(yaml.safe_dump(config_mapping(workdir, smtp_port, **defaults)))
    return path
