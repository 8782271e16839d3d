"""The committed Grafana dashboards as data, for the static checks and the end-to-end tests.

`dashboard_queries()` lists every panel query as (dashboard title, panel title, expr);
`substitute_variables()` turns an expr into plain PromQL a real Prometheus can run;
`metric_names()` reads the metric names a PromQL expression uses, and `exported_metrics()` the
names the project exports according to docs/contracts.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.support.paths import REPO_ROOT

DASHBOARDS_DIR = REPO_ROOT / "grafana" / "dashboards"
CONTRACTS = REPO_ROOT / "docs" / "contracts.md"

# Series Prometheus itself produces, which queries may use besides the exported metrics.
PROMETHEUS_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE", "up"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Grafana's built-in interval variables, and the values that stand for them in plain PromQL.
DEFAULT_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "datasource": "sysnotify-prometheus",
}

PROMQL_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, dict[str, Any]]:
    """File name -> parsed dashboard JSON, for every dashboard in `directory`."""
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including panels nested in rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(directory: Path = DASHBOARDS_DIR) -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, expr) for every target of every panel."""
    return [
        (dashboard["title"], panel["title"], target["expr"])
        for dashboard in load_dashboards(directory).values()
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_queries(directory: Path = DASHBOARDS_DIR) -> list[tuple[str, str, str]]:
    """(dashboard title, variable name, query) for every query-type template variable."""
    result = []
    for dashboard in load_dashboards(directory).values():
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query", "")
            result.append((dashboard["title"], variable["name"], str(query)))
    return result


def substitute_variables(expr: str, values: Mapping[str, str] | None = None) -> str:
    """`expr` with Grafana's $name / ${name} / [[name]] variables replaced by `values`.

    Built-in interval variables default to DEFAULT_VARIABLES.

    :raise KeyError: for a variable that has no value, naming it.
    """
    merged = {**DEFAULT_VARIABLES, **(values or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in merged:
            raise KeyError(f"no value for dashboard variable ${name} in {expr!r}")
        return merged[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", replace, expr)


_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$:])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, keywords or label names).

    Also reads the metric of a Grafana `label_values(metric, label)` variable query.
    """
    label_values = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr)
    if label_values:
        expr = label_values.group(1)
    text = _STRING.sub(" ", expr)
    text = _BRACES.sub(" ", text)  # label matchers: {account="$account"}
    text = _BRACKETS.sub(" ", text)  # ranges and subqueries: [$__rate_interval]
    text = _LABEL_LISTS.sub(" ", text)  # by (le), on (account), group_left (policy)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", name):  # durations such as offset 1h
            continue
        names.add(name)
    return names


def exported_metrics(contracts: Path = CONTRACTS) -> set[str]:
    """Every series name the project exports according to docs/contracts.md.

    Metric names are the backquoted `abm_*` and `sysnotify_*` names; a histogram's name
    (its row says `histogram`) stands for its _bucket, _sum and _count series.
    """
    text = contracts.read_text()
    names = set(re.findall(r"`((?:abm|sysnotify)_[a-z0-9_]+)`", text))
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1] == "histogram":
            base = cells[0].strip("`")
            names.update(base + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names
