"""Alertmanager in tests: its captured webhook payloads, a config that posts to the mailer,
alerts shaped as Prometheus posts them, and amtool's verdict on a config."""

from __future__ import annotations

import copy
import hashlib
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


def regrouped(payload: dict[str, Any], route: str = '{}/{tier="gold"}') -> dict[str, Any]:
    """The payload as Alertmanager sends it after a matcher was added to the route: the same
    alerts in another aggregation group (a groupKey is the route's matchers, then the group's
    labels)."""
    edited = copy.deepcopy(payload)
    edited["groupKey"] = route + ":" + payload["groupKey"].split(":", 1)[1]
    return edited


def with_starts_at(payload: dict[str, Any], starts_at: str) -> dict[str, Any]:
    """The payload with every alert's startsAt replaced (a restarted Prometheus, an HA replica)."""
    edited = copy.deepcopy(payload)
    for alert in edited["alerts"]:
        alert["startsAt"] = starts_at
    return edited


def named(payload: dict[str, Any], name: str, *, as_label: bool) -> dict[str, Any]:
    """The payload with the account's display name `name`: as a label, as older rules sent it
    (so part of each alert's label set and fingerprint), or as the `account_name` annotation the
    rules send now. Fingerprints are recomputed from the labels, as Alertmanager's are."""
    edited = copy.deepcopy(payload)
    for alert in edited["alerts"]:
        alert["labels"].pop("account_name", None)
        alert["annotations"].pop("account_name", None)
        alert["labels" if as_label else "annotations"]["account_name"] = name
        text = "\n".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        alert["fingerprint"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return edited


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
                "system": "salesforce",
                "audience": "customer",
                "category": "credentials",
                "severity": "critical",
            },
            "annotations": {
                "account_name": f"Customer {account}",
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
