"""Alertmanager in tests: its captured webhook payloads, a config that posts to the mailer,
alerts shaped as Prometheus posts them, and amtool's verdict on a config."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import FIXTURES


def fixture_payload(name: str) -> dict[str, Any]:
    """The captured webhook payload tests/fixtures/alertmanager/<name>.json."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


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


def alerts_for(
    accounts: list[str], starts_at: datetime, ends_at: datetime | None = None
) -> list[dict[str, Any]]:
    """Prometheus-shaped alerts (one CredentialExpired per account), as posted to /api/v2."""
    alerts = []
    for account in accounts:
        alert: dict[str, Any] = {
            "labels": {
                "alertname": "CredentialExpired",
                "account": account,
                "account_name": f"Customer {account}",
                "system": "salesforce",
                "audience": "customer",
                "category": "credentials",
                "severity": "critical",
            },
            "annotations": {
                "summary": "An integration password has expired.",
                "description": "The salesforce password expired.",
                "reason": "expired",
            },
            "startsAt": starts_at.isoformat(),
        }
        if ends_at is not None:
            alert["endsAt"] = ends_at.isoformat()
        alerts.append(alert)
    return alerts


def amtool_check_config(
    amtool: str, document: Mapping[str, Any], workdir: Path
) -> subprocess.CompletedProcess[str]:
    """`amtool check-config` on `document`, written as YAML into `workdir`."""
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(dict(document)))
    return subprocess.run(
        [amtool, "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
