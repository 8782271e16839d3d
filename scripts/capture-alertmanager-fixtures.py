#!/usr/bin/env python3
"""Captures webhook payloads from a real Alertmanager into tests/fixtures/alertmanager/.

Starts Alertmanager (0.25 on Debian 12) on loopback with short group_wait/group_interval and
webhook receivers pointing at a small capture HTTP server, posts alerts to /api/v2/alerts
(firing, then resolved), and saves each body Alertmanager sends as <scenario>.json. The
alerts' labels and annotations are those of the email samples (mailer/rendering/samples.py),
which follow docs/contracts.md. Run it from the repository root, as a module, so that the
repository's `stack` package is importable:

    .venv/bin/python -m scripts.capture-alertmanager-fixtures [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from stack import servers
from stack.process import free_port
from sysnotify.mailer.rendering import samples

REPO = Path(__file__).resolve().parent.parent

TOKEN = "capture-token"
TIMEOUT = 60.0

AM_CONFIG = """\
route:
  receiver: mailer
  group_by: [account, alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['audience="operator"']
      receiver: operators
      group_by: [alertname]
    # Simulates a routing mistake that groups several accounts into one notification.
    - matchers: ['misrouted="true"']
      receiver: mailer
      group_by: [alertname]
receivers:
  - name: mailer
    webhook_configs:
      - url: http://127.0.0.1:{port}/alertmanager/webhook
        send_resolved: true
        http_config:
          authorization: {{credentials: {token}}}
  - name: operators
    webhook_configs:
      - url: http://127.0.0.1:{port}/operators/webhook
        send_resolved: true
        http_config:
          authorization: {{credentials: {token}}}
"""


class Captured:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def wait_for(
        self, what: str, predicate: Callable[[str, dict[str, Any]], bool]
    ) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with self.lock:
                for path, body in self.bodies:
                    if predicate(path, body):
                        return body
            time.sleep(0.1)
        raise SystemExit(f"no webhook for {what} within {TIMEOUT:.0f}s")


def capture_server(captured: Captured) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
            else:
                with captured.lock:
                    captured.bodies.append((self.path, body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def am_alert(
    view: Any, account: str | None, account_name: str, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    # The account's name is an annotation, as the rules send it (a label would be part of the
    # alert's identity); the sample views may still carry it as a label.
    labels = {k: v for k, v in view.labels.items() if k != "account_name"}
    annotations = dict(view.annotations)
    if account is None:
        labels.pop("account", None)
    else:
        labels["account"] = account
        annotations["account_name"] = account_name
    labels.update(extra or {})
    return {
        "labels": labels,
        "annotations": annotations,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=ALERTS",
    }


def with_system(view: Any, system: str) -> Any:
    labels = dict(view.labels, system=system)
    return type(view)(**{**view.__dict__, "labels": labels})


def operator_alert() -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "SysnotifyMailerDeliveryFailing",
            "audience": "operator",
            "category": "pipeline",
            "severity": "critical",
        },
        "annotations": {
            "summary": "The mailer fails to deliver emails.",
            "description": "4 emails failed permanently in the last 15 minutes.",
            "runbook_url": "https://github.com/sysnotify/sysnotify/blob/main/docs/runbooks.md"
            "#sysnotifymailerdeliveryfailing",
        },
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=ALERTS",
    }


def post_alerts(am_url: str, alerts: list[dict[str, Any]], resolve: bool = False) -> None:
    if resolve:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        alerts = [{**a, "endsAt": now} for a in alerts]
    response = requests.post(f"{am_url}/api/v2/alerts", json=alerts, timeout=10)
    response.raise_for_status()


def group_account(body: dict[str, Any]) -> str:
    return body.get("groupLabels", {}).get("account", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/fixtures/alertmanager")
    args = parser.parse_args()

    firing_kinds = {
        "credential_expiring": samples.credential_expiring_alerts()[0],
        "api_limit_approaching": samples.api_limit_approaching_alerts()[0],
        "api_limit_reached": samples.api_limit_reached_alerts()[0],
        "web_visits_dropped": samples.web_visits_dropped_alerts()[0],
        "few_pages_tracked": samples.few_pages_tracked_alerts()[0],
        "privacy_optout_reminder": samples.privacy_optout_alerts()[0],
        "data_sync_delayed": samples.data_sync_delayed_alerts()[0],
        "unknown_alertname": samples.generic_alerts()[0],
    }
    expired = samples.credential_expired_alerts()[0]
    # Every scenario has its own account, so each is its own aggregation group.
    scenario_alerts: dict[str, list[dict[str, Any]]] = {
        "credential_expired": [am_alert(expired, "acc-1001", "Globex")],
        "credential_expired_grouped": [
            am_alert(with_system(expired, system), "acc-1002", "Initech")
            for system in ("salesforce", "marketo", "hubspot")
        ],
        "misrouted_two_accounts": [
            am_alert(firing_kinds["web_visits_dropped"], account, name, {"misrouted": "true"})
            for account, name in (("acc-4001", "Umbrella"), ("acc-4002", "Hooli"))
        ],
        "no_account_label": [am_alert(firing_kinds["data_sync_delayed"], None, "")],
        "operator": [operator_alert()],
    }
    for index, (name, view) in enumerate(firing_kinds.items()):
        scenario_alerts[name] = [am_alert(view, f"acc-20{index:02d}", "Acme Corp")]

    captured = Captured()
    server = capture_server(captured)
    port = server.server_address[1]
    args.out.mkdir(parents=True, exist_ok=True)
    saved: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="am-capture-") as tmp:
        workdir = Path(tmp)
        config = workdir / "alertmanager.yml"
        config.write_text(AM_CONFIG.format(port=port, token=TOKEN))
        with servers.alertmanager(config, workdir) as am:
            url = am.url  # type: ignore[attr-defined]
            post_alerts(url, [a for alerts in scenario_alerts.values() for a in alerts])

            def firing_of(alerts: list[dict[str, Any]]) -> Callable[..., bool]:
                names = {a["labels"]["alertname"] for a in alerts}
                accounts = {a["labels"].get("account", "") for a in alerts}

                def match(path: str, body: dict[str, Any]) -> bool:
                    return (
                        body["status"] == "firing"
                        and {a["labels"]["alertname"] for a in body["alerts"]} == names
                        and {a["labels"].get("account", "") for a in body["alerts"]} == accounts
                        and len(body["alerts"]) == len(alerts)
                    )

                return match

            for name, alerts in scenario_alerts.items():
                saved[f"{name}_firing"] = captured.wait_for(name, firing_of(alerts))

            # Resolutions: a whole group, part of a group, a kind without recovery email.
            resolve = {
                "credential_expired": scenario_alerts["credential_expired"],
                "credential_expired_grouped_partly": scenario_alerts["credential_expired_grouped"][
                    2:
                ],
                "data_sync_delayed": scenario_alerts["data_sync_delayed"],
                "api_limit_reached": scenario_alerts["api_limit_reached"],
                "operator": scenario_alerts["operator"],
            }
            post_alerts(url, [a for alerts in resolve.values() for a in alerts], resolve=True)
            for name, alerts in resolve.items():
                names = {a["labels"]["alertname"] for a in alerts}
                account = alerts[0]["labels"].get("account", "")

                def resolved_match(
                    path: str, body: dict[str, Any], names: set[str] = names, account: str = account
                ) -> bool:
                    return (
                        any(a["status"] == "resolved" for a in body["alerts"])
                        and {a["labels"]["alertname"] for a in body["alerts"]} == names
                        and all(a["labels"].get("account", "") == account for a in body["alerts"])
                    )

                saved[f"{name}_resolved"] = captured.wait_for(name + " resolved", resolved_match)
            version = requests.get(f"{url}/api/v2/status", timeout=5).json()["versionInfo"]
    server.shutdown()

    for name, body in sorted(saved.items()):
        (args.out / f"{name}.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    print(
        f"captured {len(saved)} payloads from Alertmanager {version.get('version')} into {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
