"""Config loading: every problem named at once, unknown keys rejected, secrets kept secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sysnotify.mailer.config import ConfigError, config_from_mapping, load_config, parse_duration
from tests.support.mailer_config import TOKENS_ENV, config_mapping

EXAMPLE = Path(__file__).resolve().parents[2] / "mailer" / "config.example.yml"


def problems_of(mapping: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(mapping, TOKENS_ENV if env is None else env)
    return caught.value.problems


def test_valid_config_maps_brand_and_defaults(tmp_path: Path) -> None:
    config = config_from_mapping(config_mapping(tmp_path, 2525), TOKENS_ENV)
    assert config.brand.product_name == "Acme Insights"
    assert config.brand.console_paths["credentials"] == "/settings/integrations"
    assert config.smtp.port == 2525 and config.smtp.security == "none"
    assert config.dedup.duplicate_window_seconds == 3600
    assert config.delivery.max_attempts == 12
    assert config.webhook.max_body_bytes == 1_048_576
    assert config.operators.addresses == ("oncall@ops.example",)


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    mapping = config_mapping(tmp_path, 25)
    mapping["smtp"]["security"] = "ssl"
    mapping["smtp"]["port"] = 70000
    mapping["smtp"]["hots"] = "typo"
    mapping["delivery"]["max_attempts"] = 0
    mapping["dedup"]["duplicate_window"] = "soon"
    mapping["brand"].pop("console_url")
    mapping["brand"]["sender_address"] = "not an address"
    mapping["notifications"] = {"send_recovery": {"web_visits_dropped": True, "nope": True}}
    mapping["dedup"]["receiver_windows"] = {"operators": "often"}
    mapping["extra"] = 1
    problems = problems_of(mapping, env={})
    text = "\n".join(problems)
    for expected in [
        "webhook token: set SYSNOTIFY_WEBHOOK_TOKEN",
        "smtp.security: must be one of starttls, tls, none",
        "smtp.port: must be between 1 and 65535",
        "smtp: unknown keys: hots",
        "delivery.max_attempts: must be >= 1",
        "dedup.duplicate_window: not a duration: 'soon'",
        "brand.console_url: required",
        "brand.sender_address: not a valid email address",
        "notification 'web_visits_dropped' has no recovery template",
        "unknown notification 'nope'",
        "top level: unknown keys: extra",
        "dedup.receiver_windows.operators: not a duration: 'often'",
    ]:
        assert expected in text
    assert len(problems) >= 10


def test_secrets_come_from_env_files_or_config_files_and_never_show(tmp_path: Path) -> None:
    token_file = tmp_path / "webhook.token"
    token_file.write_text("from-file\n")
    password_file = tmp_path / "smtp.password"
    password_file.write_text("s3cret-password\n")
    mapping = config_mapping(
        tmp_path, 25, smtp={"username": "mailer", "password_file": str(password_file)}
    )
    config = config_from_mapping(mapping, {"SYSNOTIFY_WEBHOOK_TOKEN_FILE": str(token_file)})
    assert config.webhook.token == "from-file"
    assert config.smtp.password == "s3cret-password"
    assert config.admin.token is None
    shown = repr(config)
    assert "from-file" not in shown and "s3cret-password" not in shown
    # The environment variable wins over files.
    config = config_from_mapping(
        mapping,
        {"SYSNOTIFY_WEBHOOK_TOKEN": "env-token", "SYSNOTIFY_WEBHOOK_TOKEN_FILE": str(token_file)},
    )
    assert config.webhook.token == "env-token"


def test_unreadable_secret_file_and_missing_password_are_named(tmp_path: Path) -> None:
    mapping = config_mapping(
        tmp_path, 25, smtp={"username": "mailer"}, webhook={"token_file": "missing.token"}
    )
    problems = problems_of(mapping, env={})
    assert any(p.startswith("webhook.token_file: cannot read") for p in problems)
    assert any(p.startswith("smtp.username is set but no password") for p in problems)
    assert not any(p.startswith("webhook token:") for p in problems)


def test_lease_must_outlast_the_smtp_timeout(tmp_path: Path) -> None:
    mapping = config_mapping(tmp_path, 25, smtp={"timeout": "60s"}, delivery={"lease": "90s"})
    assert any(p.startswith("delivery.lease:") for p in problems_of(mapping))


def test_load_config_reads_the_env_path_and_names_a_missing_variable(tmp_path: Path) -> None:
    path = tmp_path / "mailer.yml"
    path.write_text(yaml.safe_dump(config_mapping(tmp_path, 25)))
    config = load_config(env={**TOKENS_ENV, "SYSNOTIFY_MAILER_CONFIG": str(path)})
    assert config.store.path == tmp_path / "mailer.db"
    with pytest.raises(ConfigError, match="SYSNOTIFY_MAILER_CONFIG is not set"):
        load_config(env={})
    path.write_text("store: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path, env=TOKENS_ENV)


def test_shipped_example_config_is_valid(tmp_path: Path) -> None:
    config = load_config(EXAMPLE, env=TOKENS_ENV)
    assert config.smtp.host


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800), (45, 45), ("250ms", 0.25)],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_brand_colours_and_urls_are_named_with_every_other_problem(tmp_path: Path) -> None:
    mapping = config_mapping(tmp_path, 25, smtp={"port": 0})
    mapping["brand"].update(
        {
            "primary_color": "red;}</style>",
            "text_color": "#12",
            "accent_color": "#ABCDEF",
            "console_url": "console.acme.example",
            "logo_url": "javascript:alert(1)",
            "logo_colour": "#fff",
        }
    )
    problems = problems_of(mapping)
    assert sorted(problems) == sorted(
        [
            "smtp.port: must be between 1 and 65535",
            "brand.primary_color: 'red;}</style>' is not a hex colour like #1f4e79 or #fff",
            "brand.text_color: '#12' is not a hex colour like #1f4e79 or #fff",
            "brand.console_url: 'console.acme.example' is not an absolute http(s) URL with a host",
            "brand.logo_url: 'javascript:alert(1)' is not an absolute http(s) URL with a host",
            "brand: unknown keys: logo_colour",
        ]
    )


@pytest.mark.parametrize("url", ["https://", "http:///path", "ftp://files.example", "//x.example"])
def test_urls_need_http_or_https_and_a_host(tmp_path: Path, url: str) -> None:
    mapping = config_mapping(tmp_path, 25)
    mapping["brand"]["console_url"] = url
    assert problems_of(mapping) == [
        f"brand.console_url: {url!r} is not an absolute http(s) URL with a host"
    ]


def test_a_secret_file_key_is_a_known_key_when_the_environment_holds_the_secret(
    tmp_path: Path,
) -> None:
    mapping = config_mapping(tmp_path, 25, webhook={"token_file": "missing.token"})
    config = config_from_mapping(mapping, TOKENS_ENV)
    assert config.webhook.token == TOKENS_ENV["SYSNOTIFY_WEBHOOK_TOKEN"]


def test_the_document_must_be_a_mapping() -> None:
    assert "top level: must be a mapping" in problems_of(["store"])
