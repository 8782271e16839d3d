"""Two Alertmanagers clustered by gossip on loopback, both fed the same alerts (as Prometheus
does: it sends every alert to every Alertmanager), both sending to the mailer.

Part one: both peers up; every account gets one problem email and, once its alert resolves,
one recovery email. Part two: new alerts reach both peers, then the first peer (the one that
notifies without waiting) is stopped; the survivor notifies after its peer wait, and again
every email arrives exactly once.
"""

from __future__ import annotations

import collections
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from stack import servers
from stack.process import Service, free_port
from tests.support.alertmanager import ALERTMANAGER_WEBHOOK_CONFIG, alerts_for
from tests.support.faults import phases, primary_of, report
from tests.support.mailer_config import WEBHOOK_TOKEN, write_mailer_config
from tests.support.mailer_process import mailer_service, set_primaries
from tests.support.polling import wait_until
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Peer i waits i x peer-timeout before notifying, and skips what the notification log says a
# peer already sent; 2s keeps the test short (the default is 15s).
CLUSTER_ARGS = (
    "--cluster.peer-timeout=2s",
    "--cluster.gossip-interval=100ms",
    "--cluster.pushpull-interval=2s",
)
ACCOUNTS_PER_PART = 10


def push(peers: list[Service], alerts: list[dict[str, Any]]) -> None:
    for peer in peers:
        requests.post(
            f"{peer.url}/api/v2/alerts",
            json=alerts,  # type: ignore[attr-defined]
            timeout=10,
        ).raise_for_status()


def cluster_size(peer: Service) -> int:
    status = requests.get(f"{peer.url}/api/v2/status", timeout=5).json()  # type: ignore[attr-defined]
    return len(status["cluster"].get("peers") or [])


def test_clustered_alertmanagers_one_email_per_notification_even_with_a_peer_stopped(
    tmp_path: Path, smtp_server: SmtpServer, binary: Any
) -> None:
    binary("alertmanager")
    first = [f"acc-c{n:02d}" for n in range(ACCOUNTS_PER_PART)]
    second = [f"acc-d{n:02d}" for n in range(ACCOUNTS_PER_PART)]
    config = write_mailer_config(tmp_path, smtp_server.port)
    set_primaries(config, {a: primary_of(a) for a in first + second})
    port = free_port()
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(ALERTMANAGER_WEBHOOK_CONFIG.format(port=port, token=WEBHOOK_TOKEN))
    cluster_a, cluster_b = free_port(), free_port()
    am_a = servers.alertmanager(
        am_config,
        tmp_path,
        name="am-a",
        cluster_port=cluster_a,
        peers=[f"127.0.0.1:{cluster_b}"],
        extra_args=CLUSTER_ARGS,
    )
    am_b = servers.alertmanager(
        am_config,
        tmp_path,
        name="am-b",
        cluster_port=cluster_b,
        peers=[f"127.0.0.1:{cluster_a}"],
        extra_args=CLUSTER_ARGS,
    )
    with mailer_service(tmp_path, config, port), am_a, am_b:
        assert wait_until(lambda: cluster_size(am_a) == cluster_size(am_b) == 2, timeout=30)

        # Part one: both peers up.
        started = datetime.now(UTC) - timedelta(minutes=1)
        push([am_a, am_b], alerts_for(first, started))
        assert wait_until(lambda: all(phases(smtp_server)[(a, "problem")] for a in first), 60)
        push([am_a, am_b], alerts_for(first, started, ends_at=datetime.now(UTC)))
        assert wait_until(lambda: all(phases(smtp_server)[(a, "recovery")] for a in first), 60)

        # Part two: the same, with the first peer stopped right after it got the alerts.
        started = datetime.now(UTC) - timedelta(minutes=1)
        push([am_a, am_b], alerts_for(second, started))
        am_a.stop()
        assert wait_until(lambda: all(phases(smtp_server)[(a, "problem")] for a in second), 60)
        push([am_b], alerts_for(second, started, ends_at=datetime.now(UTC)))
        assert wait_until(lambda: all(phases(smtp_server)[(a, "recovery")] for a in second), 60)
        # Several group intervals and peer waits: a late duplicate would have arrived by now.
        wait_until(lambda: False, timeout=8)
        requests_seen = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

    counts = phases(smtp_server)
    expected = {(a, p): 1 for a in first + second for p in ("problem", "recovery")}
    ids = collections.Counter(m.message["Message-ID"] for m in smtp_server.messages)
    webhooks = sum(
        float(line.rsplit(" ", 1)[1])
        for line in requests_seen.splitlines()
        if line.startswith("sysnotify_mailer_webhook_requests_total{")
    )
    report(
        "alertmanager_cluster",
        expected=len(expected),
        delivered=len(smtp_server.messages),
        doubled=sum(n - 1 for n in ids.values()),
        webhook_requests=webhooks,
    )
    assert dict(counts) == expected
    assert all(n == 1 for n in ids.values())
    for mail in smtp_server.messages:
        assert mail.rcpt_tos == [primary_of(mail.message["X-Sysnotify-Account"])]
