"""The mailer as a real process: under gunicorn, driven through its CLI and over HTTP."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from stack.process import Service, http_ready
from sysnotify.gunicorn import bind_address, mailer_argv
from tests.support.alertmanager import fixture_payload
from tests.support.mailer_config import TOKENS_ENV, WEBHOOK_TOKEN
from tests.support.paths import BIN

# Captured notifications (tests/fixtures/alertmanager/) that the gunicorn tests post, and the
# three recipients `register_all` subscribes to everything in each of their accounts.
FIRING = [
    "credential_expired_firing",
    "credential_expired_grouped_firing",
    "data_sync_delayed_firing",
    "web_visits_dropped_firing",
    "api_limit_reached_firing",
    "privacy_optout_reminder_firing",
]
RECIPIENTS = ("primary@customer.example", "team@customer.example", "backup@customer.example")


def mailer_service(
    workdir: Path, config: Path, port: int, workers: int = 2, log_name: str = "mailer.log"
) -> Service:
    """The mailer under real gunicorn (not started); tokens from the environment."""
    argv = mailer_argv(bind_address("127.0.0.1", port), workers, ("--graceful-timeout", "5"))
    env = {**TOKENS_ENV, "SYSNOTIFY_MAILER_CONFIG": str(config)}
    return Service(
        "mailer",
        argv,
        workdir / log_name,
        env=env,
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
        ready_timeout=60,
    )


def scrape(port: int) -> dict[str, float]:
    """The mailer's /metrics as {'name{labels}': value}; one scrape lands on one worker."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def cli(config: Path, *argv: str) -> None:
    """Runs `sysnotify-mailer --config CONFIG ARGV...` (same store as the app); fails on error."""
    subprocess.run(
        [str(BIN / "sysnotify-mailer"), "--config", str(config), *argv],
        check=True,
        capture_output=True,
        env={"PATH": str(BIN)},
    )


def set_primaries(config: Path, primaries: dict[str, str]) -> None:
    """Registers each account's primary administrator with the CLI (same store as the app)."""
    for account, address in primaries.items():
        cli(config, "recipients", "set-primary", account, address)


def register_all(config: Path) -> int:
    """Three recipients subscribed to everything per account; returns the emails expected."""
    accounts = sorted(
        {a["labels"]["account"] for name in FIRING for a in fixture_payload(name)["alerts"]}
    )
    for account in accounts:
        cli(config, "recipients", "set-primary", account, RECIPIENTS[0])
        for address in RECIPIENTS[1:]:
            cli(
                config,
                "recipients",
                "add",
                account,
                address,
                "--categories",
                "credentials,api_limits,web_visits,privacy,sync",
            )
    return len(accounts) * len(RECIPIENTS)


def post_webhook(
    port: int, payload: Any, path: str = "/alertmanager/webhook", token: str = WEBHOOK_TOKEN
) -> requests.Response:
    return requests.post(
        f"http://127.0.0.1:{port}{path}",
        json=payload,
        timeout=60,
        headers={"Authorization": f"Bearer {token}"},
    )


def post_all(port: int, payloads: Sequence[Any], threads: int = 4) -> list[int]:
    """Posts every payload (like Alertmanager's concurrent aggregation groups); the statuses."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda p: post_webhook(port, p).status_code, payloads))


def post_fixtures(port: int, names: list[str]) -> list[int]:
    """Posts the captured notifications `names`, four at a time; the statuses."""

    def send(name: str) -> int:
        return requests.post(
            f"http://127.0.0.1:{port}/alertmanager/webhook",
            json=fixture_payload(name),
            timeout=30,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        ).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(send, names))
