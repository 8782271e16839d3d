"""Static rules for the committed Grafana dashboards and their provisioning.

Every panel uses the `datasource` variable, has a unit and a description; rate() and its
kin use $__rate_interval; panels are timeseries, stat, table or bargauge only; uids are fixed;
every metric a query uses is one the project exports (docs/contracts.md); every query is valid
PromQL (checked by promtool); the committed JSON is what scripts/gen-dashboards.py writes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.dashboards import (
    PROMETHEUS_SERIES,
    dashboard_queries,
    exported_metrics,
    iter_panels,
    load_dashboards,
    metric_names,
    substitute_variables,
    variable_queries,
)
from tests.support.paths import REPO_ROOT

EXPECTED = {
    "sysnotify-integration-health.json": (
        "sysnotify-integration-health",
        "sysnotify — Integration health",
    ),
    "sysnotify-notification-pipeline.json": (
        "sysnotify-notification-pipeline",
        "sysnotify — Notification pipeline",
    ),
}
ALLOWED_PANEL_TYPES = {"timeseries", "stat", "table", "bargauge"}
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# Grafana unit ids the dashboards may use; a typo ("second") would silently show raw numbers.
KNOWN_UNITS = {
    "none",
    "short",
    "percent",
    "percentunit",
    "s",
    "ms",
    "m",
    "h",
    "d",
    "dtdurations",
    "dateTimeAsIso",
    "dateTimeFromNow",
    "cps",
    "cpm",
    "ops",
    "opm",
    "reqps",
    "reqpm",
    "bytes",
}
RANGE_FUNCTIONS = re.compile(
    r"\b(rate|irate|increase|delta|idelta|deriv|resets|changes)\s*\(([^()\[]*)\[([^\]]*)\]"
)

DASHBOARDS = load_dashboards()
PANELS = [
    (name, panel) for name, dashboard in DASHBOARDS.items() for panel in iter_panels(dashboard)
]
PANEL_IDS = [f"{name}:{panel['title']}" for name, panel in PANELS]
QUERIES = dashboard_queries()
QUERY_IDS = [f"{panel}:{index}" for index, (_, panel, _) in enumerate(QUERIES)]


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen-dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_each_dashboard_has_its_fixed_uid_and_title() -> None:
    found = {name: (dashboard["uid"], dashboard["title"]) for name, dashboard in DASHBOARDS.items()}
    assert found == EXPECTED


def test_dashboards_are_read_only_and_let_grafana_assign_ids() -> None:
    for name, dashboard in DASHBOARDS.items():
        assert dashboard["editable"] is False, name
        assert dashboard.get("id") is None, name


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_the_datasource_variable_is_a_prometheus_datasource_variable(name: str) -> None:
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_query_variables_use_the_datasource_variable(name: str) -> None:
    for variable in DASHBOARDS[name]["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE_REF, variable["name"]


def test_the_integration_dashboard_selects_an_account_from_abm_account_info() -> None:
    variables = {
        v["name"]: v for v in DASHBOARDS["sysnotify-integration-health.json"]["templating"]["list"]
    }
    assert variables["account"]["query"] == "label_values(abm_account_info, account)"
    assert variables["account"]["multi"] is False


def test_every_integration_panel_query_is_for_the_selected_account() -> None:
    for dashboard, panel, expr in QUERIES:
        if dashboard == EXPECTED["sysnotify-integration-health.json"][1]:
            selectors = re.findall(r"\b[a-zA-Z_:][\w:]*\{[^}]*\}", expr)
            assert selectors, f"{panel}: {expr}"
            for selector in selectors:
                assert 'account="$account"' in selector, f"{panel}: {selector}"


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_uses_the_datasource_variable(name: str, panel: dict[str, Any]) -> None:
    assert panel["datasource"] == DATASOURCE_REF
    assert panel["targets"], "a panel without queries"
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE_REF, target["refId"]


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_type_unit_and_description(name: str, panel: dict[str, Any]) -> None:
    assert panel["type"] in ALLOWED_PANEL_TYPES
    assert panel["fieldConfig"]["defaults"].get("unit") in KNOWN_UNITS
    for override in panel["fieldConfig"].get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "unit":
                assert prop["value"] in KNOWN_UNITS
    assert len(panel.get("description", "").strip()) > 20


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in iter_panels(DASHBOARDS[name]):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_ids_and_ref_ids_are_unique(name: str, panel: dict[str, Any]) -> None:
    ref_ids = [target["refId"] for target in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))
    ids = [p["id"] for p in iter_panels(DASHBOARDS[name])]
    assert ids.count(panel["id"]) == 1


@pytest.mark.parametrize(("dashboard", "panel", "expr"), QUERIES, ids=QUERY_IDS)
def test_rate_functions_use_the_rate_interval(dashboard: str, panel: str, expr: str) -> None:
    for function, _, window in RANGE_FUNCTIONS.findall(expr):
        assert window == "$__rate_interval", f"{function}() over [{window}] in {expr}"
    assert "$__interval" not in expr and "$__range" not in expr


@pytest.mark.parametrize(("dashboard", "panel", "expr"), QUERIES, ids=QUERY_IDS)
def test_queries_use_only_exported_metrics(dashboard: str, panel: str, expr: str) -> None:
    used = metric_names(expr)
    assert used, f"no metric found in {expr}"
    unknown = used - exported_metrics() - PROMETHEUS_SERIES
    assert not unknown, f"not in docs/contracts.md: {sorted(unknown)}"


def test_variable_queries_use_only_exported_metrics() -> None:
    assert variable_queries(), "the integration dashboard has an account variable"
    for _, variable, query in variable_queries():
        used = metric_names(query)
        assert used and used <= exported_metrics(), f"${variable}: {query}"


def test_every_exported_metric_is_on_a_dashboard() -> None:
    shown = set().union(*(metric_names(expr) for _, _, expr in QUERIES))
    exported = exported_metrics()
    # A histogram is shown through its buckets; its base name, _sum and _count need not be.
    histograms = {name.removesuffix("_bucket") for name in exported if name.endswith("_bucket")}
    not_needed = {base + suffix for base in histograms for suffix in ("", "_sum", "_count")}
    assert exported - not_needed - shown == set()


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(x_bucket{a="$b"}[$__rate_interval]))', {"x_bucket"}),
        (
            "time() - abm_sync_last_success_timestamp_seconds",
            {"abm_sync_last_success_timestamp_seconds"},
        ),
        ("a / on (account) group_left (policy) b_info", {"a", "b_info"}),
        ('count(ALERTS{alertstate="firing"}) or vector(0)', {"ALERTS"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", {"h_bucket"}),
        ("60 * sum(rate(c_total[1m] offset 1h))", {"c_total"}),
        ("label_values(abm_account_info, account)", {"abm_account_info"}),
        ("1e3 * m", {"m"}),
    ],
)
def test_metric_names_reads_selectors_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exported_metrics_come_from_the_contracts() -> None:
    exported = exported_metrics()
    assert "abm_credential_expiry_timestamp_seconds" in exported
    assert "sysnotify_mailer_emails_sent_total" in exported
    assert "sysnotify_mailer_delivery_latency_seconds_bucket" in exported
    assert "abm_not_a_metric" not in exported


def test_substitute_variables_replaces_every_form() -> None:
    expr = 'rate(x{account="$account"}[$__rate_interval]) + y{a="${account}"} + z{b="[[account]]"}'
    assert substitute_variables(expr, {"account": "acc-1"}) == (
        'rate(x{account="acc-1"}[1m]) + y{a="acc-1"} + z{b="acc-1"}'
    )
    with pytest.raises(KeyError, match="account"):
        substitute_variables(expr)


def promtool_check(promtool: str, exprs: list[str], workdir: Path) -> subprocess.CompletedProcess:
    """Runs `promtool check rules` over the expressions as recording rules."""
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{index}", "expr": expr}
                    for index, expr in enumerate(exprs)
                ],
            }
        ]
    }
    path = workdir / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    return subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )


def test_every_query_is_valid_promql(binary: Callable[[str], str], tmp_path: Path) -> None:
    exprs = [substitute_variables(expr, {"account": "acc-0001"}) for _, _, expr in QUERIES]
    result = promtool_check(binary("promtool"), exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promql_check_rejects_a_broken_query(
    binary: Callable[[str], str], tmp_path: Path
) -> None:
    result = promtool_check(binary("promtool"), ["sum(rate(x[1m])"], tmp_path)
    assert result.returncode != 0


def test_datasource_provisioning_points_at_the_compose_prometheus() -> None:
    config = yaml.safe_load(
        (REPO_ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    [datasource] = config["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "sysnotify-prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_dashboard_provisioning_is_a_file_provider() -> None:
    config = yaml.safe_load(
        (REPO_ROOT / "grafana/provisioning/dashboards/sysnotify.yml").read_text()
    )
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
