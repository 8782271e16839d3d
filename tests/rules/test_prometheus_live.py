"""The shipped prometheus.yml and rules, derived to loopback, in a real Prometheus.

promtool proves the rules' behaviour; this proves the server itself loads them all (including
`keep_firing_for`, new in Prometheus 2.42) through the derived config, and that the operator
alerts fire when nothing can be scraped.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
import yaml

from stack import derive, servers
from stack.process import Service, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 90.0  # an upper bound for slow machines, not a speed expectation


def dead_port(stack: ExitStack) -> int:
    """A port bound but not listening for the whole test: connections to it are refused, and
    no other process on the machine can start a server on it meanwhile."""
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.bind(("127.0.0.1", 0))
    return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(
    binary: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus-live")
    with ExitStack() as stack:
        # Every scrape fails, as when the services are down.
        addresses = derive.local_addresses(
            exporter=dead_port(stack), mailer=dead_port(stack), alertmanager=dead_port(stack)
        )
        port = free_port()
        addresses[derive.SHIPPED_ADDRESSES["prometheus"]] = f"127.0.0.1:{port}"
        derived = derive.write_stack(workdir / "config", addresses, derive.by_factor(60), "token")
        with servers.prometheus(derived.prometheus, workdir, port=port) as service:
            yield service


def shipped_rule_names() -> set[str]:
    names = set()
    for path in (REPO / "alert_rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule.get("alert") or rule["record"] for rule in group["rules"]}
    return names


def test_every_rule_is_loaded_and_healthy(prometheus: Service) -> None:
    url = prometheus.url  # type: ignore[attr-defined]
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        groups = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        # Health is "unknown" until a rule's first evaluation.
        if all(rule["health"] != "unknown" for rule in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {rule["name"] for rule in rules} == shipped_rule_names()
    unhealthy = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not unhealthy


def test_operator_alerts_fire_when_nothing_can_be_scraped(prometheus: Service) -> None:
    url = prometheus.url  # type: ignore[attr-defined]
    expected = {"Watchdog", "SysnotifyExporterDown", "SysnotifyMailerDown"}
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        alerts = requests.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        firing = {alert["labels"]["alertname"] for alert in alerts if alert["state"] == "firing"}
        if expected <= firing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert firing == expected
    for alert in alerts:
        assert alert["labels"]["audience"] == "operator"
