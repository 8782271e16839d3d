"""The whole sysnotify stack as plain processes on 127.0.0.1: for `make demo` and tests/e2e.

Configuration is derived from the shipped files (stack/derive.py): addresses rewritten to
loopback ports and timings shortened by `scale`, never a second hand-kept copy. The SMTP side is
a local sink (stack/smtp_sink.py) that keeps every email as an .eml file.

    with LocalStack(workdir) as stack:
        stack.add_recipients(scenario.ACCOUNTS)
        stack.post_events(scenario.trouble_events(now))
        mails = stack.wait_for_mail(lambda m: ..., timeout=120)
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from stack import derive, servers
from stack.process import Service, free_port, http_ready
from stack.scenario import DemoAccount, Event
from stack.smtp_sink import MailSink, ReceivedMail, create_inbox_app
from sysnotify.gunicorn import bind_address, mailer_argv

BIN = Path(sys.executable).parent

# The `brand:` section of the mailer config for the demo, the tests and the benchmarks.
DEMO_BRAND: dict[str, str] = {
    "product_name": "Acme ABM",
    "sender_address": "no-reply@acme-abm.example",
    "sender_name": "Acme ABM notifications",
    "console_url": "https://console.acme-abm.example",
    "support_email": "support@acme-abm.example",
    "company_name": "Acme ABM Inc.",
    "footer_text": "You receive this email because you manage this account's integrations.",
}


@dataclass(frozen=True)
class Ports:
    exporter: int
    mailer: int
    prometheus: int
    alertmanager: int
    smtp: int
    inbox: int

    @classmethod
    def pick(cls, **fixed: int) -> Ports:
        chosen = {name: fixed.get(name) or free_port() for name in cls.__dataclass_fields__}
        return cls(**chosen)


@dataclass(frozen=True)
class Tokens:
    ingest: str
    webhook: str
    admin: str

    @classmethod
    def generate(cls) -> Tokens:
        return cls(*(secrets.token_urlsafe(24) for _ in range(3)))


class LocalStack:
    """Starts exporter, SMTP sink, mailer (gunicorn), Alertmanager and Prometheus, in that order.

    `scale` shortens the shipped timings (default: minutes become seconds). With
    `always_active`, time-of-week routing windows (the Tuesday privacy reminders) are opened
    for every day so a run shows them now.
    """

    def __init__(
        self,
        workdir: Path,
        scale: derive.Scaling | None = None,
        always_active: bool = True,
        mailer_workers: int = 2,
        duplicate_window: str = "30s",
        operator_addresses: Sequence[str] = ("oncall@operators.example",),
        ports: Ports | None = None,
        serve_inbox: bool = False,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.scale = scale or derive.by_factor(60)
        self.always_active = always_active
        self.mailer_workers = mailer_workers
        self.duplicate_window = duplicate_window
        self.operator_addresses = tuple(operator_addresses)
        self.ports = ports or Ports.pick()
        self.tokens = Tokens.generate()
        self.serve_inbox = serve_inbox
        self.maildir = self.workdir / "mail"
        self.services: dict[str, Service] = {}
        self.sink: MailSink | None = None
        self._inbox_server: Any = None

    # -- URLs -----------------------------------------------------------------------------
    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, service)}"

    # -- start / stop ---------------------------------------------------------------------
    def start(self) -> LocalStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_all(self) -> None:
        configs = derive.write_stack(
            self.workdir / "config",
            derive.local_addresses(
                exporter=self.ports.exporter,
                mailer=self.ports.mailer,
                alertmanager=self.ports.alertmanager,
                prometheus=self.ports.prometheus,
            ),
            self.scale,
            webhook_token=self.tokens.webhook,
            always_active=self.always_active,
        )
        self.sink = MailSink(self.maildir, port=self.ports.smtp).start()
        if self.serve_inbox:
            self._start_inbox()
        self._start(
            "exporter",
            [
                str(BIN / "sysnotify-exporter"),
                "serve",
                "--listen",
                f"127.0.0.1:{self.ports.exporter}",
                "--db",
                str(self.workdir / "exporter.db"),
            ],
            env={"SYSNOTIFY_INGEST_TOKEN": self.tokens.ingest},
            ready=http_ready(self.url("exporter") + "/healthz"),
        )
        mailer_config = self._write_mailer_config()
        self._start(
            "mailer",
            mailer_argv(
                bind_address("127.0.0.1", self.ports.mailer),
                self.mailer_workers,
                ("--graceful-timeout", "5"),
            ),
            env={
                "SYSNOTIFY_MAILER_CONFIG": str(mailer_config),
                "SYSNOTIFY_WEBHOOK_TOKEN": self.tokens.webhook,
                "SYSNOTIFY_ADMIN_TOKEN": self.tokens.admin,
            },
            ready=http_ready(self.url("mailer") + "/readyz"),
        )
        am = servers.alertmanager(
            configs.alertmanager,
            self.workdir,
            port=self.ports.alertmanager,
            extra_args=configs.alertmanager_args,
        )
        self.services["alertmanager"] = am.start()
        prom = servers.prometheus(configs.prometheus, self.workdir, port=self.ports.prometheus)
        self.services["prometheus"] = prom.start()

    def _start(
        self, name: str, argv: list[str], env: dict[str, str], ready: Callable[[], bool]
    ) -> None:
        service = Service(
            name, argv, self.workdir / f"{name}.log", ready=ready, env=env, ready_timeout=60
        )
        self.services[name] = service.start()

    def _start_inbox(self) -> None:
        import threading

        from werkzeug.serving import make_server

        self._inbox_server = make_server(
            "127.0.0.1", self.ports.inbox, create_inbox_app(self.maildir)
        )
        threading.Thread(target=self._inbox_server.serve_forever, daemon=True).start()

    def _write_mailer_config(self) -> Path:
        config = {
            "store": {"path": str(self.workdir / "mailer.db")},
            "smtp": {
                "host": "127.0.0.1",
                "port": self.ports.smtp,
                "security": "none",
                "timeout": "10s",
            },
            "delivery": {"poll_interval": "200ms", "backoff_initial": "1s", "backoff_max": "5s"},
            "dedup": {"duplicate_window": self.duplicate_window},
            "operators": {"addresses": list(self.operator_addresses)},
            "brand": dict(DEMO_BRAND),
        }
        path = self.workdir / "mailer.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def stop(self) -> None:
        for name in ("prometheus", "alertmanager", "mailer", "exporter"):
            service = self.services.pop(name, None)
            if service is not None:
                service.stop()
        if self._inbox_server is not None:
            self._inbox_server.shutdown()
            self._inbox_server = None
        if self.sink is not None:
            self.sink.stop()
            self.sink = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- driving it ----------------------------------------------------------------------
    def post_events(self, events: Sequence[Event], batch_size: int = 1000) -> None:
        """Sends events to the exporter's ingest API; raises on any non-2xx answer."""
        for start in range(0, len(events), batch_size):
            response = requests.post(
                self.url("exporter") + "/api/v1/events",
                json={"events": list(events[start : start + batch_size])},
                headers={"Authorization": f"Bearer {self.tokens.ingest}"},
                timeout=30,
            )
            if response.status_code // 100 != 2:
                raise RuntimeError(
                    f"ingest answered {response.status_code}: {response.text[:2000]}"
                )

    def add_recipients(self, accounts: Iterable[DemoAccount]) -> None:
        """Registers each account's primary administrator and subscribers via the admin API."""
        for acct in accounts:
            self.admin("put", f"/accounts/{acct.account}/primary", {"address": acct.primary})
            for m in acct.subscribers:
                self.admin(
                    "post",
                    f"/accounts/{acct.account}/recipients",
                    {"address": m.address, "categories": list(m.categories)},
                )

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Calls the mailer's admin API (`path` after /api/v1); returns the JSON answer, raises
        on any non-2xx one."""
        url = self.url("mailer") + "/api/v1" + path
        headers = {"Authorization": f"Bearer {self.tokens.admin}"}
        response = requests.request(method, url, json=body, headers=headers, timeout=10)
        if response.status_code // 100 != 2:
            raise RuntimeError(
                f"{method.upper()} {url}: {response.status_code} {response.text[:500]}"
            )
        return response.json()

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = requests.get(
            self.url("prometheus") + "/api/v1/query", params={"query": promql}, timeout=10
        )
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def firing_alerts(self) -> list[dict[str, Any]]:
        """Prometheus' view: active alerts (pending and firing) with labels and state."""
        response = requests.get(self.url("prometheus") + "/api/v1/alerts", timeout=10)
        response.raise_for_status()
        return list(response.json()["data"]["alerts"])

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        response = requests.get(self.url("alertmanager") + "/api/v2/alerts", timeout=10)
        response.raise_for_status()
        return list(response.json())

    def mails(self) -> list[ReceivedMail]:
        assert self.sink is not None, "stack not started"
        return self.sink.messages()

    def customer_mails(self) -> list[ReceivedMail]:
        return [m for m in self.mails() if not set(m.rcpt_tos) & set(self.operator_addresses)]

    def wait_for(
        self, condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5
    ) -> Any:
        """Polls `condition` until it returns something truthy; else TimeoutError naming `what`."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout:.0f}s waiting for {what}; "
                    f"mails so far: {[m.subject for m in self.mails()]}"
                )
            time.sleep(interval)

    def amtool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                servers.binaries.require("amtool"),
                f"--alertmanager.url={self.url('alertmanager')}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )

    def mailer_metrics(self) -> str:
        return requests.get(self.url("mailer") + "/metrics", timeout=10).text

    def describe(self) -> str:
        return json.dumps(
            {name: self.url(name) for name in ("exporter", "mailer", "prometheus", "alertmanager")},
            indent=2,
        )
