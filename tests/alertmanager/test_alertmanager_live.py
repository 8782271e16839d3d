"""The shipped alertmanager.yml, derived to loopback, in a real Alertmanager.

Alerts are posted to its API; the test reads which are inhibited (status.inhibitedBy, state
suppressed) and what reaches a recording webhook server standing in for the mailer: the right
path per receiver, the bearer token from the credentials file (resolved against the config
file's directory, not the working directory), and no inhibited alert.

Other test runs on the same machine may start servers on ports this run picked after they were
freed, so everything read back is filtered to this run: alerts by a `run` label, webhook
requests by the sending Alertmanager's externalURL.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from stack import derive, servers
from stack.process import Service, free_port

pytestmark = pytest.mark.integration

TOKEN = "live-test-token"
RUN = uuid.uuid4().hex
WAIT_SECONDS = 60.0  # an upper bound for slow machines, not a speed expectation


@dataclass
class Recorder:
    """Webhook requests received: (path, Authorization header, JSON body)."""

    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str, sender: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                body
                for got_path, _, body in self.requests
                if got_path == path and body.get("externalURL") == sender
            ]

    def authorizations(self, sender: str) -> set[str]:
        with self.lock:
            return {auth for _, auth, body in self.requests if body.get("externalURL") == sender}


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, int]]:
    record = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with record.lock:
                record.requests.append((self.path, self.headers.get("Authorization", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def alertmanager(
    binary: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    recorder: tuple[Recorder, int],
) -> Iterator[Service]:
    binary("alertmanager")
    workdir = tmp_path_factory.mktemp("alertmanager-live")
    _, port = recorder
    # group_wait 30s becomes 5s, not 0.5s: Alertmanager's inhibitor learns about source alerts
    # asynchronously, and a group flushed before that would notify an alert it should hold back
    # (in production the 30s group_wait covers this).
    scale = derive.by_mapping({"30s": "5s"}, otherwise=derive.by_factor(60))
    derived = derive.write_stack(
        workdir / "config", derive.local_addresses(mailer=port), scale, TOKEN
    )
    service = servers.alertmanager(
        derived.alertmanager, workdir, extra_args=derived.alertmanager_args
    )
    # Not the config directory: the token file must be found relative to the config file.
    service.cwd = workdir
    with service:
        yield service


def alert(alertname: str, **labels: str) -> dict[str, Any]:
    audience = "operator" if alertname == "Watchdog" else "customer"
    return {
        "labels": {
            "alertname": alertname,
            "audience": audience,
            "severity": "warning",
            "run": RUN,
            **labels,
        },
        "annotations": {"summary": f"{alertname} for the live test."},
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }


POSTED = [
    alert("CredentialExpired", account="acc-1", system="salesforce", category="credentials"),
    alert(
        "CredentialExpiringSoon",
        account="acc-1",
        system="salesforce",
        category="credentials",
        reminder="7d",
    ),
    alert(
        "CredentialExpiringSoon",
        account="acc-1",
        system="eloqua",
        category="credentials",
        reminder="7d",
    ),
    alert(
        "CredentialExpiringSoon",
        account="acc-2",
        system="salesforce",
        category="credentials",
        reminder="14d",
    ),
    alert("ApiDailyLimitReached", account="acc-1", platform="hubspot", category="api_limits"),
    alert("ApiDailyLimitApproaching", account="acc-1", platform="hubspot", category="api_limits"),
    alert("ApiDailyLimitApproaching", account="acc-1", platform="marketo", category="api_limits"),
    alert("DataSyncDelayed", account="acc-1", category="sync"),
    alert("DataSyncDelayed", account="acc-2", category="sync"),
    alert("Watchdog", category="pipeline"),
]

# (alertname, account, system or platform) -> the source alert that must inhibit it.
INHIBITED = {
    ("CredentialExpiringSoon", "acc-1", "salesforce"): ("CredentialExpired", "acc-1", "salesforce"),
    ("ApiDailyLimitApproaching", "acc-1", "hubspot"): ("ApiDailyLimitReached", "acc-1", "hubspot"),
    ("DataSyncDelayed", "acc-1", ""): ("ApiDailyLimitReached", "acc-1", "hubspot"),
}


def key(labels: dict[str, str]) -> tuple[str, str, str]:
    return (
        labels["alertname"],
        labels.get("account", ""),
        labels.get("system", labels.get("platform", "")),
    )


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def alerts_state(alertmanager: Service) -> dict[tuple[str, str, str], dict[str, Any]]:
    url = alertmanager.url  # type: ignore[attr-defined]
    response = requests.post(f"{url}/api/v2/alerts", json=POSTED, timeout=10)
    assert response.status_code == 200, response.text

    def settled() -> dict[tuple[str, str, str], dict[str, Any]] | None:
        got = requests.get(
            f"{url}/api/v2/alerts", params={"filter": f'run="{RUN}"'}, timeout=10
        ).json()
        by_key = {key(item["labels"]): item for item in got}
        if len(by_key) != len(POSTED):
            return None
        inhibited = {k for k, item in by_key.items() if item["status"]["inhibitedBy"]}
        return by_key if inhibited == set(INHIBITED) else None

    return wait_for(settled, "the inhibitions to apply")  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", sorted(INHIBITED))
def test_inhibited_alert_is_suppressed_by_its_source(
    alerts_state: dict[tuple[str, str, str], dict[str, Any]], target: tuple[str, str, str]
) -> None:
    status = alerts_state[target]["status"]
    assert status["state"] == "suppressed"
    assert status["inhibitedBy"] == [alerts_state[INHIBITED[target]]["fingerprint"]]


def test_other_alerts_stay_active(alerts_state: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    active = {k for k, item in alerts_state.items() if item["status"]["state"] == "active"}
    assert active == set(alerts_state) - set(INHIBITED)
    # Same alertname, other system/platform/account: not held back.
    assert ("CredentialExpiringSoon", "acc-1", "eloqua") in active
    assert ("CredentialExpiringSoon", "acc-2", "salesforce") in active
    assert ("ApiDailyLimitApproaching", "acc-1", "marketo") in active
    assert ("DataSyncDelayed", "acc-2", "") in active


def notified(recorder: Recorder, path: str, sender: str) -> set[tuple[str, str, str]]:
    return {
        key(item["labels"])
        for body in recorder.bodies(path, sender)
        for item in body["alerts"]
        if item["labels"].get("run") == RUN
    }


def test_webhooks_get_each_audience_with_the_token_and_no_inhibited_alert(
    alertmanager: Service,
    alerts_state: dict[tuple[str, str, str], dict[str, Any]],
    recorder: tuple[Recorder, int],
) -> None:
    record, _ = recorder
    sender = alertmanager.url  # type: ignore[attr-defined]
    customer = {k for k in alerts_state if k[0] != "Watchdog"} - set(INHIBITED)
    wait_for(
        lambda: notified(record, "/alertmanager/webhook", sender) >= customer,
        "the customer notifications",
    )
    wait_for(lambda: notified(record, "/operators/webhook", sender), "the Watchdog notification")

    assert notified(record, "/alertmanager/webhook", sender) == customer
    assert notified(record, "/operators/webhook", sender) == {("Watchdog", "", "")}
    assert record.authorizations(sender) == {f"Bearer {TOKEN}"}
    for body in record.bodies("/alertmanager/webhook", sender):
        assert body["receiver"] == "mailer"
        # One account and one alertname per notification.
        assert set(body["groupLabels"]) == {"account", "alertname"}
    for body in record.bodies("/operators/webhook", sender):
        assert body["receiver"] == "operators"
