"""A smaller fuzz sample against the real servers: the mailer under gunicorn and the exporter
as `sysnotify-exporter serve`, over HTTP on loopback.

The in-process fuzz tests cover thousands of examples; this sample checks that the real
servers (gunicorn, werkzeug's request parsing, the exporter's server) answer the same way:
never 5xx, no email, no change to the stores.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from stack.process import Service, free_port, http_ready
from tests.support.alertmanager import fixture_payload
from tests.support.fuzz import JSON, RAW_BODIES, fuzz, mutated
from tests.support.mailer_config import ADMIN_TOKEN, WEBHOOK_TOKEN, write_mailer_config
from tests.support.mailer_process import mailer_service
from tests.support.paths import BIN
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

INGEST_TOKEN = "live-fuzz-ingest-token-0123456789"
MAILER_TABLES = ("recipients", "alert_state", "outbox", "undeliverable")


class Servers:
    def __init__(
        self, workdir: Path, mailer_port: int, exporter_port: int, smtp: SmtpServer
    ) -> None:
        self.workdir = workdir
        self.mailer = f"http://127.0.0.1:{mailer_port}"
        self.exporter = f"http://127.0.0.1:{exporter_port}"
        self.smtp = smtp

    def mailer_state(self) -> dict[str, int]:
        conn = sqlite3.connect(self.workdir / "mailer.db")
        try:
            return {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in MAILER_TABLES
            }
        finally:
            conn.close()

    def exporter_version(self) -> str:
        metrics = requests.get(f"{self.exporter}/metrics", timeout=10).text
        return "\n".join(
            line
            for line in metrics.splitlines()
            if line.startswith(("sysnotify_exporter_accounts", "sysnotify_exporter_last_event"))
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("fuzz-live")
    smtp = SmtpServer()
    smtp.start()
    mailer_port, exporter_port = free_port(), free_port()
    config = write_mailer_config(workdir, smtp.port)
    exporter = Service(
        "exporter",
        [
            str(BIN / "sysnotify-exporter"),
            "serve",
            "--listen",
            f"127.0.0.1:{exporter_port}",
            "--db",
            str(workdir / "facts.db"),
        ],
        workdir / "exporter.log",
        env={"SYSNOTIFY_INGEST_TOKEN": INGEST_TOKEN},
        ready=http_ready(f"http://127.0.0.1:{exporter_port}/healthz"),
        ready_timeout=60,
    )
    try:
        with mailer_service(workdir, config, mailer_port), exporter:
            servers = Servers(workdir, mailer_port, exporter_port, smtp)
            requests.put(
                f"{servers.mailer}/api/v1/accounts/acc-1001/primary",
                json={"address": "p@x.example"},
                timeout=10,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ).raise_for_status()
            yield servers
    finally:
        smtp.stop()


def post_json(url: str, data: bytes | str, token: str) -> requests.Response:
    return requests.post(
        url,
        data=data,
        timeout=30,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def refused(response: requests.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["error"]


@fuzz(150)
@given(
    body=st.one_of(
        JSON,
        mutated(fixture_payload("credential_expired_firing")).filter(
            lambda b: (
                not (
                    isinstance(b, dict)
                    and isinstance(b.get("alerts"), list)
                    and all(isinstance(a, dict) for a in b["alerts"])
                )
            )
        ),
    ),
    raw=st.one_of(st.none(), RAW_BODIES),
)
def test_live_mailer_refuses_bad_webhooks(live: Servers, body: Any, raw: bytes | None) -> None:
    before = live.mailer_state()
    data = raw if raw is not None else json.dumps(body).encode()
    response = post_json(f"{live.mailer}/alertmanager/webhook", data, WEBHOOK_TOKEN)
    assert response.status_code < 500, response.text[:300]
    if response.status_code != 200:
        refused(response)
        assert live.mailer_state() == before
    assert live.smtp.messages == []


@fuzz(100)
@given(body=JSON, address=st.one_of(st.text(max_size=30), st.emails()))
def test_live_admin_api_never_fails(live: Servers, body: Any, address: str) -> None:
    before = live.mailer_state()
    response = post_json(
        f"{live.mailer}/api/v1/accounts/acc-1001/recipients",
        json.dumps(body if body else {"address": address}),
        ADMIN_TOKEN,
    )
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        refused(response)
        assert live.mailer_state() == before
    elif response.status_code == 201:  # a valid subscriber: take it away again
        added = response.json()["address"]
        requests.delete(
            f"{live.mailer}/api/v1/accounts/acc-1001/recipients/{added}",
            timeout=10,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ).raise_for_status()


@fuzz(150)
@given(
    body=st.one_of(JSON, st.fixed_dictionaries({"events": st.lists(JSON, max_size=3)})),
    raw=st.one_of(st.none(), RAW_BODIES),
)
def test_live_exporter_refuses_bad_batches(live: Servers, body: Any, raw: bytes | None) -> None:
    before = live.exporter_version()
    data = raw if raw is not None else json.dumps(body).encode()
    response = post_json(f"{live.exporter}/api/v1/events", data, INGEST_TOKEN)
    assert response.status_code < 500, response.text[:300]
    if response.status_code != 200:
        refused(response)
        assert live.exporter_version() == before
