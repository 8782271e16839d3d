"""alertmanager/alertmanager.yml: amtool checks, routing of every alert, cadence and documentation.

The alerts routed here are read from alert_rules/, so a new alert is routed and checked without
editing this file. Inhibitions are checked against a real Alertmanager in
test_alertmanager_live.py.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack import derive

REPO = Path(__file__).resolve().parents[2]
CONFIG_PATH = REPO / "alertmanager" / "alertmanager.yml"
CONFIG = yaml.safe_load(CONFIG_PATH.read_text())
DAY = 86400.0


def alert_rules() -> dict[str, dict[str, str]]:
    """alertname -> the labels its alerts carry (rule labels plus the expression's labels)."""
    alerts = {}
    for path in sorted((REPO / "alert_rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                labels = {"alertname": rule["alert"], **rule["labels"]}
                if rule["labels"]["audience"] == "customer":
                    labels["account"] = "acc-1"
                    for scope in ("system", "platform"):
                        if f"by (account, {scope})" in rule["expr"]:
                            labels[scope] = "salesforce"
                    if rule["alert"] == "CredentialExpiringSoon":
                        labels["reminder"] = "7d"
                alerts[rule["alert"]] = labels
    return alerts


ALERTS = alert_rules()


def amtool_route(
    amtool: str, labels: dict[str, str], receiver: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG_PATH}",
            f"--verify.receivers={receiver}",
            *(f"{key}={value}" for key, value in labels.items()),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_amtool_accepts_the_config(binary: Callable[[str], str], tmp_path: Path) -> None:
    # A copy beside its token file, as the demo, compose and the tests lay it out.
    copy = tmp_path / "alertmanager.yml"
    copy.write_text(CONFIG_PATH.read_text())
    (tmp_path / derive.WEBHOOK_TOKEN_FILE).parent.mkdir()
    (tmp_path / derive.WEBHOOK_TOKEN_FILE).write_text("test-token\n")
    for path in (CONFIG_PATH, copy):
        result = subprocess.run(
            [binary("amtool"), "check-config", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_amtool_routes_each_alert_to_its_audience_receiver(
    binary: Callable[[str], str], alertname: str
) -> None:
    labels = ALERTS[alertname]
    receiver = "mailer" if labels["audience"] == "customer" else "operators"
    result = amtool_route(binary("amtool"), labels, receiver)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


@pytest.mark.parametrize(
    "labels,receiver",
    [
        # Operator alerts never reach the customers' receiver, whatever else they carry.
        (
            {
                "alertname": "SysnotifyExporterDown",
                "audience": "operator",
                "category": "credentials",
            },
            "operators",
        ),
        # Without an audience label an alert is an operator matter.
        ({"alertname": "SomethingNew", "account": "acc-1"}, "operators"),
        # A new customer alert in a new category still reaches the mailer (generic notification).
        (
            {
                "alertname": "SomethingNew",
                "audience": "customer",
                "category": "other",
                "account": "acc-1",
            },
            "mailer",
        ),
    ],
)
def test_amtool_routes_edge_cases(
    binary: Callable[[str], str], labels: dict[str, str], receiver: str
) -> None:
    result = amtool_route(binary("amtool"), labels, receiver)
    assert result.returncode == 0, result.stdout + result.stderr


def matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    for matcher in route.get("matchers", []):
        name, value = re.fullmatch(r'(\w+)="([^"]*)"', matcher).groups()  # type: ignore[union-attr]
        if labels.get(name, "") != value:
            return False
    return True


def leaf_route(labels: dict[str, str]) -> list[dict[str, Any]]:
    """The chain of routes an alert takes (first match at each level, as none use `continue`)."""
    chain = [CONFIG["route"]]
    while True:
        child = next((r for r in chain[-1].get("routes", []) if matches(r, labels)), None)
        if child is None:
            return chain
        chain.append(child)


def effective(chain: list[dict[str, Any]], key: str) -> Any:
    return next(route[key] for route in reversed(chain) if key in route)


EXPECTED_REPEAT = {
    "CredentialExpiringSoon": 192 * 3600,
    "CredentialExpired": DAY,
    "ApiDailyLimitApproaching": 12 * 3600,
    "ApiDailyLimitReached": 12 * 3600,
    "WebVisitsDropped": 3 * DAY,
    "FewWebPagesTracked": 3 * DAY,
    "PrivacyOptOutPending": 6 * DAY,
    "DataSyncDelayed": 12 * 3600,
}


@pytest.mark.parametrize("alertname", sorted(EXPECTED_REPEAT))
def test_customer_cadence_per_category(alertname: str) -> None:
    chain = leaf_route(ALERTS[alertname])
    assert effective(chain, "receiver") == "mailer"
    assert effective(chain, "group_by") == ["account", "alertname"]
    repeat = derive.parse_duration(effective(chain, "repeat_interval"))
    assert repeat == EXPECTED_REPEAT[alertname]


def test_expiry_reminders_never_repeat_within_a_stage() -> None:
    # Stages: 14d lasts 7 days, 7d lasts 6 days, 1d lasts 1 day. A repeat inside a stage would
    # make an email that is not at 14, 7 or 1 day(s) before.
    repeat = derive.parse_duration(
        effective(leaf_route(ALERTS["CredentialExpiringSoon"]), "repeat_interval")
    )
    assert repeat > 7 * DAY


def test_privacy_reminders_go_out_exactly_once_each_tuesday() -> None:
    chain = leaf_route(ALERTS["PrivacyOptOutPending"])
    assert chain[-1].get("active_time_intervals") == ["tuesdays"]
    (interval,) = [i for i in CONFIG["time_intervals"] if i["name"] == "tuesdays"]
    assert interval["time_intervals"] == [{"weekdays": ["tuesday"], "location": "UTC"}]
    repeat = derive.parse_duration(effective(chain, "repeat_interval"))
    # Longer than a Tuesday (no second email the same day), and due again before the next
    # Tuesday starts, whenever on a Tuesday the last one went out (at most a day into it).
    assert DAY < repeat <= 7 * DAY - DAY


def test_no_other_route_is_time_restricted() -> None:
    def restricted(route: dict[str, Any]) -> list[str]:
        found = [str(route.get("matchers"))] if "active_time_intervals" in route else []
        for child in route.get("routes", []):
            found += restricted(child)
        return found

    assert restricted(CONFIG["route"]) == ["['category=\"privacy\"']"]


def all_repeat_intervals(route: dict[str, Any]) -> list[float]:
    found = [derive.parse_duration(route["repeat_interval"])] if "repeat_interval" in route else []
    for child in route.get("routes", []):
        found += all_repeat_intervals(child)
    return found


def test_data_retention_outlasts_every_repeat_interval_and_is_documented() -> None:
    retention = derive.parse_duration(derive.ALERTMANAGER_DATA_RETENTION)
    assert retention >= max(all_repeat_intervals(CONFIG["route"]))
    flag = f"--data.retention={derive.ALERTMANAGER_DATA_RETENTION}"
    assert flag in CONFIG_PATH.read_text()
    assert flag in (REPO / "docs" / "alerts.md").read_text()


def test_watchdog_repeats_often_to_the_operators() -> None:
    chain = leaf_route(ALERTS["Watchdog"])
    assert effective(chain, "receiver") == "operators"
    assert derive.parse_duration(effective(chain, "repeat_interval")) <= 3600


def test_webhooks_use_the_shared_token_file_and_work_on_alertmanager_0_25() -> None:
    receivers = {receiver["name"]: receiver for receiver in CONFIG["receivers"]}
    assert set(receivers) == {"mailer", "operators"}
    urls = {}
    for name, receiver in receivers.items():
        (webhook,) = receiver["webhook_configs"]
        # timeout and url_file only exist from Alertmanager 0.26/0.28; 0.25 rejects them.
        assert set(webhook) == {"url", "send_resolved", "max_alerts", "http_config"}
        assert webhook["send_resolved"] is True
        assert webhook["max_alerts"] == 0
        assert webhook["http_config"] == {
            "authorization": {"type": "Bearer", "credentials_file": str(derive.WEBHOOK_TOKEN_FILE)}
        }
        urls[name] = webhook["url"]
    assert urls == {
        "mailer": "http://mailer:9731/alertmanager/webhook",
        "operators": "http://mailer:9731/operators/webhook",
    }


def test_inhibitions_are_the_documented_three() -> None:
    assert CONFIG["inhibit_rules"] == [
        {
            "source_matchers": ['alertname="CredentialExpired"'],
            "target_matchers": ['alertname="CredentialExpiringSoon"'],
            "equal": ["account", "system"],
        },
        {
            "source_matchers": ['alertname="ApiDailyLimitReached"'],
            "target_matchers": ['alertname="ApiDailyLimitApproaching"'],
            "equal": ["account", "platform"],
        },
        {
            "source_matchers": ['alertname="ApiDailyLimitReached"'],
            "target_matchers": ['alertname="DataSyncDelayed"'],
            "equal": ["account"],
        },
    ]


KEY_LINE = re.compile(r"^\s*(?:-\s+)?([A-Za-z_]+):(?:\s|$)")


@pytest.mark.parametrize(
    "path", [CONFIG_PATH, REPO / "prometheus" / "prometheus.yml"], ids=lambda path: path.name
)
def test_every_key_says_required_or_optional_with_default(path: Path) -> None:
    undocumented = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("#") or not KEY_LINE.match(line):
            continue
        comment = line.split("#", 1)[1] if "#" in line else ""
        if not re.match(r"\s*(Required\b|Optional \(default: [^)]+\))", comment):
            undocumented.append(f"{path.name}:{number}: {line.strip()}")
    assert not undocumented, "\n".join(undocumented)
