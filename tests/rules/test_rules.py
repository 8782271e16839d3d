"""The alert rules: promtool checks and unit tests, and the contract every rule must keep.

promtool does the behavioural testing (tests/rules/*_test.yml); the checks here make sure those
unit tests exist for every alert on both sides, and that labels and annotations follow
docs/contracts.md, which the mailer and the routing rely on.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sysnotify.mailer.catalog import DEFAULT_KINDS
from sysnotify.mailer.intake.decide import ACCOUNT_NAME, DISPLAY_LABELS

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "alert_rules"
TESTS_DIR = Path(__file__).resolve().parent
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*_test.yml"))
RUNBOOK_URL = "https://github.com/sysnotify/sysnotify/blob/main/docs/runbooks.md#{anchor}"

CUSTOMER_CATEGORIES = {"credentials", "api_limits", "web_visits", "privacy", "sync"}
SEVERITIES = {"info", "warning", "critical"}
# Data annotations the email templates read (docs/contracts.md), and the label naming the
# system or platform, per customer alert.
CUSTOMER_ALERTS: dict[str, tuple[str | None, set[str]]] = {
    "CredentialExpiringSoon": ("system", {"expires_at", "days_left"}),
    "CredentialExpired": ("system", {"reason", "expired_at"}),
    "ApiDailyLimitApproaching": ("platform", {"calls_used", "calls_limit", "usage_ratio"}),
    "ApiDailyLimitReached": ("platform", {"calls_used", "calls_limit", "usage_ratio"}),
    "WebVisitsDropped": (None, {"visits_last_week", "visits_weekly_average", "visits_ratio"}),
    "FewWebPagesTracked": (None, {"pages_tracked", "pages_threshold"}),
    "PrivacyOptOutPending": (None, {"pending_requests", "oldest_pending_at"}),
    "DataSyncDelayed": (None, {"reason", "running_seconds", "last_success_at"}),
}
# The account's display name reaches the mailer as this annotation, looked up when the alert is
# evaluated (empty while the account's data is missing); never as a label, which would make a
# renamed account's alerts new alerts.
ACCOUNT_NAME_ANNOTATION = (
    '{{ with printf "abm_account_info{account=%q}" $labels.account | query }}'
    '{{ . | first | label "account_name" }}{{ end }}'
)
OPERATOR_ALERTS = {
    "SysnotifyExporterDown",
    "SysnotifyAccountDataStale",
    "SysnotifyAccountsSkipped",
    "SysnotifyMailerDown",
    "SysnotifyMailerDeliveryFailing",
    "SysnotifyOutboxBacklog",
    "SysnotifyWebhookAlertsTruncated",
    "Watchdog",
}


def alerting_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


ALERTS = {rule["alert"]: rule for rule in alerting_rules()}


def test_rule_files_pass_promtool_check(binary: Callable[[str], str]) -> None:
    result = subprocess.run(
        [binary("promtool"), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(binary: Callable[[str], str], test_file: Path) -> None:
    result = subprocess.run(
        [binary("promtool"), "test", "rules", test_file.name],
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool_check(binary: Callable[[str], str]) -> None:
    result = subprocess.run(
        [binary("promtool"), "check", "config", "prometheus.yml"],
        cwd=REPO / "prometheus",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The rule files are found through the relative glob, all of them.
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


def test_every_rules_file_has_a_unit_test_file_that_loads_it() -> None:
    for rules in RULE_FILES:
        test_file = TESTS_DIR / f"{rules.stem}_test.yml"
        assert test_file.exists(), f"{rules.name} has no {test_file.name}"
        assert (
            f"../../alert_rules/{rules.name}" in yaml.safe_load(test_file.read_text())["rule_files"]
        ), f"{test_file.name} does not load {rules.name}"


def unit_test_evaluations() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """alertname -> {"firing": [expected alerts...], "quiet": [...]} across all test files."""
    seen: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for evaluation in test.get("alert_rule_test", []):
                entry = seen.setdefault(evaluation["alertname"], {"firing": [], "quiet": []})
                expected = evaluation.get("exp_alerts") or []
                if expected:
                    entry["firing"].extend(expected)
                else:
                    entry["quiet"].append(evaluation)
    return seen


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_every_alert_is_unit_tested_firing_and_quiet(alertname: str) -> None:
    evaluations = unit_test_evaluations().get(alertname, {"firing": [], "quiet": []})
    assert evaluations["firing"], f"{alertname}: no promtool evaluation expects it to fire"
    if alertname != "Watchdog":  # vector(1) has no quiet side
        assert evaluations["quiet"], f"{alertname}: no promtool evaluation expects it quiet"
    for expected in evaluations["firing"]:
        annotations = set(expected.get("exp_annotations", {}))
        assert {"summary", "description", "runbook_url"} <= annotations, (alertname, expected)
        if alertname in CUSTOMER_ALERTS:
            assert CUSTOMER_ALERTS[alertname][1] <= annotations, (alertname, expected)


def test_alerts_are_exactly_the_contract_ones() -> None:
    assert set(ALERTS) == set(CUSTOMER_ALERTS) | OPERATOR_ALERTS


def test_mailer_catalog_knows_every_customer_alert() -> None:
    assert {kind.alertname for kind in DEFAULT_KINDS} == set(CUSTOMER_ALERTS)


@pytest.mark.parametrize("alertname", sorted(CUSTOMER_ALERTS))
def test_customer_alert_labels_annotations_and_missing_data_guard(alertname: str) -> None:
    rule = ALERTS[alertname]
    labels, annotations = rule["labels"], rule["annotations"]
    assert labels["audience"] == "customer"
    assert labels["category"] in CUSTOMER_CATEGORIES
    assert labels["severity"] in SEVERITIES
    scope_label, data_annotations = CUSTOMER_ALERTS[alertname]
    assert set(annotations) == {"summary", "description", "runbook_url", ACCOUNT_NAME} | (
        data_annotations
    )
    assert annotations[ACCOUNT_NAME] == ACCOUNT_NAME_ANNOTATION
    assert "{{" not in annotations["summary"], "summary is a static sentence"
    assert annotations["runbook_url"] == RUNBOOK_URL.format(anchor=alertname.lower())
    expr = rule["expr"]
    assert "and on (account) abm_account_info" in expr  # named accounts only, as before
    if scope_label:
        assert scope_label in expr
    # A vanished series must not look like a fix: keep_firing_for plus the held ALERTS series
    # while the exporter does not publish the account.
    assert rule.get("keep_firing_for"), f"{alertname} has no keep_firing_for"
    assert f'ALERTS{{alertname="{alertname}", alertstate="firing"}}' in expr
    assert "unless on (account) sysnotify_exporter_account_last_event_timestamp_seconds" in expr


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_no_alert_carries_a_display_name_as_a_label(alertname: str) -> None:
    """A label is part of the alert's identity in Prometheus and Alertmanager: a display name
    there makes every rename end the alert (a false recovery) and start a new one."""
    rule = ALERTS[alertname]
    assert not DISPLAY_LABELS & set(rule.get("labels", {}))
    assert "group_left" not in rule["expr"], "a join would copy the info metric's labels"
    for expected in unit_test_evaluations().get(alertname, {"firing": []})["firing"]:
        assert not DISPLAY_LABELS & set(expected.get("exp_labels", {})), expected


@pytest.mark.parametrize("alertname", sorted(OPERATOR_ALERTS))
def test_operator_alert_labels_and_annotations(alertname: str) -> None:
    rule = ALERTS[alertname]
    assert rule["labels"]["audience"] == "operator"
    assert rule["labels"]["category"] == "pipeline"
    expected_severity = {"none"} if alertname == "Watchdog" else SEVERITIES
    assert rule["labels"]["severity"] in expected_severity
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
    assert rule["annotations"]["runbook_url"] == RUNBOOK_URL.format(anchor=alertname.lower())


def test_operator_alerts_use_the_contract_self_metrics() -> None:
    contracts = (REPO / "docs" / "contracts.md").read_text()
    documented = set(re.findall(r"`(sysnotify_[a-z_]+)`", contracts))
    used = set()
    for alertname in OPERATOR_ALERTS:
        used |= set(re.findall(r"\bsysnotify_[a-z_]+", ALERTS[alertname]["expr"]))
    assert used, "operator alerts read no sysnotify_ self-metrics"
    assert used <= documented, f"not in docs/contracts.md: {sorted(used - documented)}"


def test_every_rules_file_names_its_defaults_at_the_top() -> None:
    for path in RULE_FILES:
        head = path.read_text().split("groups:", 1)[0]
        assert "Defaults" in head and "for:" in head, f"{path.name}: defaults not documented"
