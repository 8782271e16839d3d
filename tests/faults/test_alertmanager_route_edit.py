"""A route edit on a real Alertmanager while customer problems are open.

Alertmanager 0.25 runs the shipped alertmanager.yml (derived to loopback, timings shortened)
and notifies a gunicorn mailer. Two accounts' CredentialExpired alerts are mailed; then a
matcher is added to the customer route and Alertmanager reloads its config. Every groupKey
changes (a groupKey starts with the route's matchers), so Alertmanager notifies each new group
at once, as new. The mailer sends nothing for it, not even a reminder although its duplicate
window has passed, and each recovery, which arrives through the new group, is sent once and
threads under its problem email.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from stack import derive, servers
from stack.process import Service, free_port
from tests.support.alertmanager import alerts_for
from tests.support.faults import phases, primary_of, report
from tests.support.mailer_config import WEBHOOK_TOKEN, write_mailer_config
from tests.support.mailer_process import mailer_service, set_primaries
from tests.support.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ACCOUNTS = ["acc-route-1", "acc-route-2"]
DUPLICATE_WINDOW = 2.0  # seconds: shorter than the wait before the edit, see below
ADDED_MATCHER = 'severity=~"info|warning|critical"'  # matches every customer alert as before


def push(alertmanager: Service, alerts: list[dict[str, Any]]) -> None:
    url = f"{alertmanager.url}/api/v2/alerts"  # type: ignore[attr-defined]
    requests.post(url, json=alerts, timeout=10).raise_for_status()


def add_matcher_to_the_customer_route(config: Path) -> None:
    document = yaml.safe_load(config.read_text())
    (customer,) = [
        route
        for route in document["route"]["routes"]
        if route.get("matchers") == ['audience="customer"']
    ]
    customer["matchers"].append(ADDED_MATCHER)
    config.write_text(yaml.safe_dump(document, sort_keys=False))


def alerts_received(port: int) -> float:
    """The alerts the mailer has received in webhooks so far (its own counter)."""
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("sysnotify_mailer_notifications_received_total{")
    )


def episode_groups(store: Path) -> list[str]:
    """The groupKey that last reported each episode, read without the app."""
    conn = sqlite3.connect(store)
    try:
        return [row[0] for row in conn.execute("SELECT group_key FROM alert_state")]
    finally:
        conn.close()


def test_a_route_edit_resends_nothing_and_each_recovery_arrives_once(
    tmp_path: Path, smtp_server: Any, binary: Any
) -> None:
    binary("alertmanager")
    config = write_mailer_config(
        tmp_path, smtp_server.port, dedup={"duplicate_window": f"{DUPLICATE_WINDOW}s"}
    )
    set_primaries(config, {account: primary_of(account) for account in ACCOUNTS})
    port = free_port()
    # group_wait 30s -> 1s and group_interval 5m -> 2s; the repeat intervals (hours) become
    # minutes: no repeat falls inside the test, so any second email would be the edit's.
    scale = derive.by_mapping({"5m": "2s"}, otherwise=derive.by_factor(60))
    derived = derive.write_stack(
        tmp_path / "config", derive.local_addresses(mailer=port), scale, WEBHOOK_TOKEN
    )
    alertmanager = servers.alertmanager(
        derived.alertmanager, tmp_path, extra_args=derived.alertmanager_args
    )
    store = tmp_path / "mailer.db"
    with mailer_service(tmp_path, config, port), alertmanager:
        started = datetime.now(UTC) - timedelta(minutes=1)
        push(alertmanager, alerts_for(ACCOUNTS, started, ends_at=started + timedelta(hours=1)))
        assert wait_until(lambda: all(phases(smtp_server)[(a, "problem")] for a in ACCOUNTS), 60)
        old_groups = set(episode_groups(store))
        received = alerts_received(port)
        time.sleep(DUPLICATE_WINDOW + 1)  # a repeat now would be a reminder: the edit must not be

        add_matcher_to_the_customer_route(derived.alertmanager)
        reloaded = requests.post(f"{alertmanager.url}/-/reload", timeout=10)  # type: ignore[attr-defined]
        assert reloaded.status_code == 200, reloaded.text
        # Alertmanager notifies each new group at once (after group_wait).
        assert wait_until(lambda: alerts_received(port) >= received + len(ACCOUNTS), 60)
        new_groups = set(episode_groups(store))
        wait_until(lambda: False, timeout=6)  # three group intervals: a re-send would be here
        after_edit = dict(phases(smtp_server))

        ended = datetime.now(UTC)
        push(alertmanager, alerts_for(ACCOUNTS, started, ends_at=ended))
        assert wait_until(lambda: all(phases(smtp_server)[(a, "recovery")] for a in ACCOUNTS), 60)
        wait_until(lambda: False, timeout=6)  # a second recovery would arrive by now

    counts = phases(smtp_server)
    ids = collections.Counter(m.message["Message-ID"] for m in smtp_server.messages)
    report(
        "alertmanager_route_edit",
        accounts=len(ACCOUNTS),
        emails=len(smtp_server.messages),
        after_the_edit=sum(after_edit.values()) - len(ACCOUNTS),
        doubled=sum(n - 1 for n in ids.values()),
    )
    assert after_edit == {(a, "problem"): 1 for a in ACCOUNTS}
    assert dict(counts) == {(a, p): 1 for a in ACCOUNTS for p in ("problem", "recovery")}
    assert all(ADDED_MATCHER in group for group in new_groups)  # every groupKey changed,
    assert old_groups.isdisjoint(new_groups)  # and the episodes follow their new groups
    for account in ACCOUNTS:
        mails = {
            m.message["X-Sysnotify-Phase"]: m.message
            for m in smtp_server.messages
            if m.message["X-Sysnotify-Account"] == account
        }
        assert mails["recovery"]["In-Reply-To"] == mails["problem"]["Message-ID"]
