"""Fixtures of the mailer tests: a real SMTP server on loopback, configs, apps and clocks.

`smtp_server` is an aiosmtpd Controller on 127.0.0.1 that records every message it accepts
and can be told to refuse transiently (421/451) or permanently (550), or be stopped and
started again on the same port.
"""

from __future__ import annotations

import asyncio
import copy
import email
import email.policy
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sysnotify.mailer.web.app import create_app, mailer_of
from sysnotify.mailer.config import MailerConfig, config_from_mapping
from stack.process import Service, free_port, http_ready
from sysnotify.gunicorn import bind_address, mailer_argv

BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "alertmanager"
WEBHOOK_TOKEN = "webhook-secret-token"
ADMIN_TOKEN = "admin-secret-token"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class RecordingHandler:
    """aiosmtpd handler: keeps accepted messages; refuses on demand."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.rcpt_reply: str | None = None  # e.g. "451 try later" or "550 no such user"
        self.rcpt_reply_count = 0  # how many RCPTs get it; 0 = until cleared
        self.refused_addresses: dict[str, str] = {}  # address -> reply, always
        self.sessions = 0  # EHLOs seen: one per SMTP connection
        self.data_delay = 0.0  # seconds to wait before accepting DATA (slow server)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            if address in self.refused_addresses:
                return self.refused_addresses[address]
            if self.rcpt_reply is not None:
                reply = self.rcpt_reply
                if self.rcpt_reply_count:
                    self.rcpt_reply_count -= 1
                    if self.rcpt_reply_count == 0:
                        self.rcpt_reply = None
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          message))  # type: ignore[arg-type]
        return "250 Message accepted"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.handler = RecordingHandler()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def fail(self, reply: str, count: int = 0) -> None:
        """Answer RCPT with `reply` (e.g. "451 4.3.0 try later") `count` times (0: always)."""
        with self.handler.lock:
            self.handler.rcpt_reply = reply
            self.handler.rcpt_reply_count = count

    def heal(self) -> None:
        with self.handler.lock:
            self.handler.rcpt_reply = None

    def refuse(self, address: str, reply: str = "550 5.1.1 no such user") -> None:
        with self.handler.lock:
            self.handler.refused_addresses[address] = reply

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.messages if r.rcpt_tos == [address]]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class FakeClock:
    """A Unix-time clock that only moves when told to."""

    def __init__(self, start: float = 1_795_800_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


BRAND = {
    "product_name": "Acme Insights",
    "sender_name": "Acme Insights",
    "sender_address": "no-reply@acme.example",
    "console_url": "https://console.acme.example",
    "support_email": "support@acme.example",
    "company_name": "Acme Inc.",
    "footer_text": "You receive this because you administer this account.",
    "console_paths": {"credentials": "/settings/integrations",
                      "notifications": "/settings/notifications"},
}


def config_mapping(tmp_path: Path, smtp_port: int, **sections: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "store": {"path": str(tmp_path / "mailer.db")},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": "5s"},
        "delivery": {"poll_interval": "0.05s", "backoff_initial": "0.05s",
                     "backoff_max": "0.2s", "lease": "30s"},
        "dedup": {"duplicate_window": "1h"},
        "operators": {"addresses": ["oncall@ops.example"]},
        "brand": copy.deepcopy(BRAND),
    }
    for name, value in sections.items():
        mapping[name] = {**mapping.get(name, {}), **value} if isinstance(value, dict) else value
    return mapping


TOKENS_ENV = {"SYSNOTIFY_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "SYSNOTIFY_ADMIN_TOKEN": ADMIN_TOKEN}


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., MailerConfig]:
    def build(smtp_port: int = 25, **sections: Any) -> MailerConfig:
        return config_from_mapping(config_mapping(tmp_path, smtp_port, **sections), TOKENS_ENV,
                                   base_dir=tmp_path)

    return build


@pytest.fixture
def make_app(make_config: Callable[..., MailerConfig], smtp_server: SmtpServer,
             clock: FakeClock) -> Iterator[Callable[..., Any]]:
    """Builds apps on the test's store with the real renderer and SMTP server; delivery is
    driven by the test (`deliver(app)`) unless start_delivery=True."""
    apps = []

    def build(start_delivery: bool = False, **sections: Any) -> Any:
        app = create_app(make_config(smtp_server.port, **sections), clock=clock,
                         start_delivery=start_delivery)
        apps.append(app)
        return app

    yield build
    for app in apps:
        mailer_of(app).stop_delivery()
        for worker in mailer_of(app).workers:
            worker.sender.close()
        mailer_of(app).store.close()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def deliver(app: Any) -> dict[str, int]:
    """Runs this app's delivery until nothing is due; returns outcome counts."""
    return mailer_of(app).workers[0].drain()


def fixture_payload(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def post(client: Any, payload: Any, path: str = "/alertmanager/webhook",
         token: str = WEBHOOK_TOKEN) -> Any:
    return client.post(path, json=payload, headers={"Authorization": f"Bearer {token}"})


def admin(client: Any, method: str, path: str, body: Any = None,
          token: str = ADMIN_TOKEN) -> Any:
    return client.open(f"/api/v1{path}", method=method, json=body,
                       headers={"Authorization": f"Bearer {token}"})


def mailer_service(workdir: Path, config: Path, port: int, workers: int = 2,
                   log_name: str = "mailer.log") -> Service:
    """The mailer under real gunicorn (not started); tokens from the environment."""
    argv = mailer_argv(bind_address("127.0.0.1", port), workers, ("--graceful-timeout", "5"))
    env = {**TOKENS_ENV, "SYSNOTIFY_MAILER_CONFIG": str(config)}
    return Service("mailer", argv, workdir / log_name, env=env,
                   ready=http_ready(f"http://127.0.0.1:{port}/readyz"), ready_timeout=60)


def wait_until(condition: Callable[[], Any], timeout: float = 60.0,
               interval: float = 0.1) -> Any:
    """Polls until `condition()` is truthy or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


# An Alertmanager that posts every group to the mailer on `port` with the bearer `token`
# (fill in with str.format), with the timings shortened for tests.
ALERTMANAGER_WEBHOOK_CONFIG = """\
route:
  receiver: mailer
  group_by: [account, alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: mailer
    webhook_configs:
      - url: http://127.0.0.1:{port}/alertmanager/webhook
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization: {{credentials: {token}}}
"""
