"""A real ``sysnotify-exporter serve`` process on loopback: its /metrics through real
``promtool check metrics``, and a real Prometheus scraping it and answering PromQL with the
values the facts imply."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from stack import servers
from stack.process import Service, free_port, http_ready

pytestmark = pytest.mark.integration

TOKEN = "live-test-token-0123456789"
EXE = str(Path(sys.executable).parent / "sysnotify-exporter")


@pytest.fixture
def exporter(tmp_path):
    port = free_port()
    config = tmp_path / "exporter.yml"
    config.write_text(yaml.safe_dump({"max_body_bytes": 256 * 1024, "access_log": True}))
    service = Service(
        "exporter",
        [
            EXE,
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            str(tmp_path / "facts.db"),
            "--config",
            str(config),
        ],
        tmp_path / "exporter.log",
        ready=http_ready(f"http://127.0.0.1:{port}/healthz"),
        env={"SYSNOTIFY_INGEST_TOKEN": TOKEN},
    )
    service.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    with service:
        yield service


def post(url: str, events: list, token: str = TOKEN) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_real_metrics_pass_promtool_check_metrics(exporter, binary):
    result = subprocess.run(
        [
            EXE,
            "simulate",
            "--accounts",
            "40",
            "--seed",
            "11",
            "--post",
            exporter.url,
            "--token",
            TOKEN,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    body = requests.get(f"{exporter.url}/metrics", timeout=30).text
    for family in (
        "abm_account_info",
        "abm_credential_expiry_timestamp_seconds",
        "abm_api_daily_calls_used",
        "abm_web_visits_weekly_average",
        "abm_sync_last_duration_seconds",
        "abm_privacy_optout_oldest_pending_timestamp_seconds",
        "sysnotify_exporter_events_ingested_total",
    ):
        assert f"\n{family}{{" in body, family
    check = subprocess.run(
        [binary("promtool"), "check", "metrics"],
        input=body,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == "", check.stdout + check.stderr


def test_a_chunked_body_over_the_limit_is_413_and_the_token_is_not_logged(exporter):
    def chunks():
        yield b'{"events": ['
        for i in range(4000):
            yield json.dumps({"type": "account", "account": f"a{i}", "name": "n" * 50}).encode()
            yield b","
        yield b"{}]}"

    response = requests.post(
        f"{exporter.url}/api/v1/events",
        data=chunks(),
        timeout=30,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert (
        post(
            exporter.url, [{"type": "account", "account": "a", "name": "b"}], token=TOKEN + "-wrong"
        ).status_code
        == 401
    )
    assert post(exporter.url, [{"type": "account", "account": "a", "name": "b"}]).ok
    assert requests.get(f"{exporter.url}/metrics", timeout=30).text.count("abm_account_info{") == 1
    exporter.stop()
    log = exporter.log_path.read_text()
    assert "POST /api/v1/events" in log  # the access log is on, and still has no token
    assert TOKEN not in log


def query(prometheus_url: str, promql: str) -> list[dict]:
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]


def wait_for(prometheus_url: str, promql: str, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = query(prometheus_url, promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_prometheus_scrapes_the_values_the_facts_imply(exporter, binary, tmp_path):
    binary("prometheus")
    now = datetime.now(UTC)
    today = now.date()
    changed = (now - timedelta(days=80)).replace(microsecond=0)
    events = [
        {"type": "account", "account": "acc-prom", "name": "Prom Test GmbH"},
        {
            "type": "credential",
            "account": "acc-prom",
            "system": "eloqua",
            "policy": "expire_90_days",
            "password_changed_at": changed.isoformat(),
            "valid": True,
            "checked_at": now.isoformat(),
        },
        {
            "type": "web_visits",
            "account": "acc-prom",
            "day": (today - timedelta(40)).isoformat(),
            "page": "/",
            "visits": 0,
        },
        *[
            {
                "type": "web_visits",
                "account": "acc-prom",
                "day": (today - timedelta(d)).isoformat(),
                "page": f"/p{d % 2}",
                "visits": 10,
            }
            for d in range(1, 8)
        ],
        {
            "type": "sync_started",
            "account": "acc-prom",
            "run_id": "r1",
            "at": (now - timedelta(hours=2)).isoformat(),
        },
        {
            "type": "sync_finished",
            "account": "acc-prom",
            "run_id": "r1",
            "at": (now - timedelta(hours=1, minutes=30)).isoformat(),
            "status": "success",
        },
    ]
    assert post(exporter.url, events).ok
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "sysnotify-exporter",
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [exporter.url.removeprefix("http://")]}],
                    }
                ],
            }
        )
    )
    with servers.prometheus(config, tmp_path / "prom") as prometheus:
        url = prometheus.url  # type: ignore[attr-defined]
        up = wait_for(url, 'up{job="sysnotify-exporter"} == 1')
        assert up, "Prometheus never scraped the exporter"
        visits = wait_for(url, 'abm_web_visits_last_week{account="acc-prom"}')
        assert [r["value"][1] for r in visits] == ["70"]
        pages = query(url, 'abm_web_pages_tracked_last_week{account="acc-prom"}')
        assert [r["value"][1] for r in pages] == ["2"]
        expiry = query(url, 'abm_credential_expiry_timestamp_seconds{account="acc-prom"}')
        assert float(expiry[0]["value"][1]) == changed.timestamp() + 90 * 86400
        assert expiry[0]["metric"]["system"] == "eloqua"
        duration = query(url, 'abm_sync_last_duration_seconds{account="acc-prom"}')
        assert [r["value"][1] for r in duration] == ["1800"]
        named = query(
            url,
            "abm_web_visits_last_week * on (account) group_left (account_name) abm_account_info",
        )
        assert named[0]["metric"]["account_name"] == "Prom Test GmbH"

        # A new fact shows up at the next scrapes.
        assert post(
            exporter.url,
            [
                {
                    "type": "web_visits",
                    "account": "acc-prom",
                    "day": (today - timedelta(1)).isoformat(),
                    "page": "/p1",
                    "visits": 40,
                }
            ],
        ).ok
        assert wait_for(url, 'abm_web_visits_last_week{account="acc-prom"} == 100')


def metric_lines(url: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample /metrics answers (comments left out)."""
    text = requests.get(f"{url}/metrics", timeout=30).text
    return {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_a_hostile_tenant_cannot_blind_the_others(exporter, tmp_path):
    now = datetime.now(UTC)
    good = [f"acc-good-{i}" for i in range(5)]
    events = []
    for acc in good:
        events += [
            {"type": "account", "account": acc, "name": f"Good {acc}"},
            {
                "type": "credential",
                "account": acc,
                "system": "hubspot",
                "policy": "no_rotation",
                "valid": True,
                "checked_at": now.isoformat(),
            },
            *[
                {
                    "type": "web_visits",
                    "account": acc,
                    "day": (now.date() - timedelta(d)).isoformat(),
                    "page": "/",
                    "visits": 10,
                }
                for d in range(1, 15)
            ],
        ]
    assert post(exporter.url, events).status_code == 200
    before = metric_lines(exporter.url)
    good_series = {name: value for name, value in before.items() if "acc-good-" in name}
    assert len(good_series) == 5 * 8  # info, credential (2), web (3), privacy, last event

    # What the hostile tenant sends is refused whole, each answer JSON naming the fault.
    day = (now.date() - timedelta(1)).isoformat()
    hostile = {"type": "web_visits", "account": "acc-hostile", "day": day, "page": "/"}
    big = [{**hostile, "visits": 2**62}, {**hostile, "page": "/b", "visits": 2**62}]
    answers = [post(exporter.url, big)]
    raw = json.dumps({"events": [{**hostile, "visits": 0}]})
    for number in (str(2**63), "1" + "0" * 400, "1e400", "NaN", "-5", "2.5", "true"):
        answers.append(
            requests.post(
                f"{exporter.url}/api/v1/events",
                data=raw.replace('"visits": 0', f'"visits": {number}'),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                timeout=30,
            )
        )
    future = {
        "type": "credential",
        "account": "acc-good-0",
        "system": "hubspot",
        "policy": "no_rotation",
        "valid": False,
        "checked_at": "2999-01-01T00:00:00Z",
    }
    answers.append(post(exporter.url, [future]))
    for answer in answers:
        assert answer.status_code == 422, answer.text[:300]
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json()["errors"][0]["reason"]
    deep = requests.post(
        f"{exporter.url}/api/v1/events",
        data="[" * 100_000 + "]" * 100_000,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert deep.status_code == 400 and deep.json()["error"]
    refused = metric_lines(exporter.url)
    assert {name: value for name, value in refused.items() if "acc-" in name} == {
        name: value for name, value in before.items() if "acc-" in name
    }
    assert refused['sysnotify_exporter_batches_rejected_total{reason="invalid"}'] == 9

    # A row no validation accepts now, as an older release stored it: only its account is
    # left out.
    with sqlite3.connect(tmp_path / "facts.db", timeout=30) as conn:
        conn.execute("INSERT INTO accounts VALUES ('acc-hostile', 'Hostile Inc', 0)")
        conn.execute("INSERT INTO web_accounts VALUES ('acc-hostile', ?)", (19000,))
        for page in ("/a", "/b"):
            conn.execute(
                "INSERT INTO web_visits VALUES ('acc-hostile', ?, ?, ?)",
                (int(now.timestamp() // 86400) - 1, page, 2**62),
            )
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")
    after = metric_lines(exporter.url)
    assert {name: value for name, value in after.items() if "acc-good-" in name} == good_series
    assert not any("acc-hostile" in name for name in after)
    assert after["sysnotify_exporter_store_up"] == 1
    assert after["sysnotify_exporter_accounts_skipped"] == 1
    assert after["sysnotify_exporter_accounts"] == 6
    exporter.stop()
    assert "account 'acc-hostile' left out of /metrics" in exporter.log_path.read_text()
