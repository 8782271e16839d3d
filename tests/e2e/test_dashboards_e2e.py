"""Every Grafana panel query runs against the end-to-end Prometheus: valid PromQL, data returned,
and only metrics the running stack really exports."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests

from stack import scenario
from stack.local import LocalStack
from tests.support import dashboards

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

QUERIES = dashboards.dashboard_queries()
# Plain-PromQL values for Grafana's variables: a rate window that spans several of the
# shortened (1s) scrapes, and an account of the story that has every kind of data.
VARIABLES = {"__rate_interval": "30s", "__interval": "5s", "__range": "5m"}
# Panels that are empty by design on a healthy stack: they show trouble in the pipeline itself.
EMPTY_WHEN_HEALTHY = {
    "Oldest pending email age",  # absent while nothing waits in the outbox
}


@pytest.fixture(scope="module")
def populated(local_stack: LocalStack) -> LocalStack:
    """The story's troubles posted and their emails delivered, so every panel has something."""
    local_stack.add_recipients(scenario.ACCOUNTS)
    local_stack.post_events(scenario.trouble_events(datetime.now(UTC)))
    local_stack.wait_for(
        lambda: (
            {m.header("X-Sysnotify-Account") for m in local_stack.customer_mails()}
            >= {"acc-umbrella", "acc-initech", "acc-globex"}
        ),
        240,
        "the story's emails",
    )
    # Rates need a few scrapes (1s apart) after the deliveries.
    time.sleep(10)
    return local_stack


def run_query(stack: LocalStack, expr: str) -> list[dict]:
    response = requests.get(
        stack.url("prometheus") + "/api/v1/query", params={"query": expr}, timeout=10
    )
    assert response.status_code == 200, f"{expr}: {response.text}"
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.mark.parametrize(
    ("dashboard", "panel", "expr"), QUERIES, ids=[f"{d}/{p}" for d, p, _ in QUERIES]
)
def test_panel_query_is_valid_and_returns_data(
    populated: LocalStack, dashboard: str, panel: str, expr: str
) -> None:
    # A per-account panel must show data for some account of the story (each has other
    # troubles); a pipeline panel for the stack as a whole.
    accounts = [a.account for a in scenario.ACCOUNTS] if "$account" in expr else [""]
    results = {
        account: run_query(
            populated, dashboards.substitute_variables(expr, {**VARIABLES, "account": account})
        )
        for account in accounts
    }
    if panel in EMPTY_WHEN_HEALTHY:
        return
    assert any(results.values()), f"no data for {dashboard} / {panel}: {expr}"


def test_variable_queries_find_the_story_accounts(populated: LocalStack) -> None:
    for dashboard, name, query in dashboards.variable_queries():
        if "label_values" in query:
            metric = query.split("(", 1)[1].split(",", 1)[0].strip()
            values = requests.get(
                populated.url("prometheus") + "/api/v1/series",
                params={"match[]": metric},
                timeout=10,
            ).json()["data"]
            assert values, (dashboard, name, query)


def test_every_metric_a_dashboard_uses_is_exported_by_the_running_stack(
    populated: LocalStack,
) -> None:
    stored = set(
        requests.get(
            populated.url("prometheus") + "/api/v1/label/__name__/values", timeout=10
        ).json()["data"]
    )
    # Families declared by the exporter and mailer, including those without samples right now
    # (e.g. the oldest pending email, absent while the outbox is empty).
    declared = set()
    for service in ("exporter", "mailer"):
        text = requests.get(populated.url(service) + "/metrics", timeout=30).text
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                name, kind = line.split()[2:4]
                declared.add(name)
                if kind == "histogram":
                    declared |= {name + suffix for suffix in ("_bucket", "_sum", "_count")}
                if kind == "counter":
                    declared.add(name + "_total" if not name.endswith("_total") else name)
    used = set().union(*(dashboards.metric_names(expr) for _, _, expr in QUERIES))
    assert sorted(used - stored - declared) == []
