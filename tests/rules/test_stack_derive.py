"""stack/derive.py: loopback copies of the shipped configs with shortened timings."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack import derive

LOCAL = derive.local_addresses(exporter=19730, mailer=19731, alertmanager=19093, prometheus=19090)


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("192h", 192 * 3600),
        ("1d", 86400),
        ("500ms", 0.5),
        ("0s", 0),
        ("1w", 7 * 86400),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert derive.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "m5", "5 m", "1.5h", "-5m"])
def test_parse_duration_rejects_non_durations(bad: str) -> None:
    with pytest.raises(derive.DeriveError, match="not a duration"):
        derive.parse_duration(bad)


@pytest.mark.parametrize(
    "seconds,text",
    [
        (0, "0s"),
        (0.5, "500ms"),
        (30, "30s"),
        (90, "1m30s"),
        (5400, "1h30m"),
        (192 * 3600, "192h"),
        (3 * 3600 + 12 * 60, "3h12m"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert derive.format_duration(seconds) == text
    assert derive.parse_duration(text) == seconds


def test_by_factor_keeps_zero_and_a_minimum() -> None:
    scale = derive.by_factor(60, minimum=1)
    assert (scale(0), scale(30), scale(300), scale(3600)) == (0, 1, 5, 60)
    with pytest.raises(derive.DeriveError):
        derive.by_factor(0)


def test_by_mapping_matches_by_value_and_falls_back() -> None:
    scale = derive.by_mapping({"60m": "10s", "5m": "2s"}, otherwise=derive.by_factor(10))
    assert (scale(3600), scale(300), scale(100)) == (10, 2, 10)
    assert derive.by_mapping({"5m": "1s"})(30) == 30


def test_by_mapping_names_every_bad_entry() -> None:
    with pytest.raises(derive.DeriveError) as error:
        derive.by_mapping({"5x": "1s", "5m": "soon"})
    assert "'5x'" in str(error.value) and "'soon'" in str(error.value)


def test_local_addresses_rejects_unknown_services() -> None:
    with pytest.raises(derive.DeriveError, match="grafana"):
        derive.local_addresses(grafana=3000)


def test_rules_get_for_keep_firing_for_and_ranges_scaled_and_nothing_else() -> None:
    document: dict[str, Any] = {
        "groups": [
            {
                "name": "g",
                "interval": "1m",
                "rules": [
                    {
                        "alert": "A",
                        "expr": "rate(x[15m]) > 0 and max_over_time(y[1h:5m]) > 26 * 3600",
                        "for": "10m",
                        "keep_firing_for": "15m",
                        "labels": {"severity": "warning"},
                        "annotations": {"description": "{{ $value }} in [15m]"},
                    },
                    {"record": "r", "expr": "sum(z)"},
                ],
            }
        ]
    }
    derived = derive.derive_rules(document, derive.by_factor(60))
    group = derived["groups"][0]
    assert group["interval"] == "1s"
    alert, record = group["rules"]
    assert alert["expr"] == "rate(x[15s]) > 0 and max_over_time(y[1m:5s]) > 26 * 3600"
    assert (alert["for"], alert["keep_firing_for"]) == ("10s", "15s")
    assert alert["annotations"] == {"description": "{{ $value }} in [15m]"}
    assert record == {"record": "r", "expr": "sum(z)"}
    assert document["groups"][0]["rules"][0]["for"] == "10m", "the input is left unchanged"


def test_prometheus_targets_rewritten_and_timeout_kept_within_interval() -> None:
    shipped = derive.load_yaml(derive.PROMETHEUS_CONFIG)
    derived = derive.derive_prometheus(
        shipped, LOCAL, ["/rules/a.yml"], derive.by_mapping({"30s": "1s"})
    )
    assert derived["global"]["scrape_interval"] == "1s"
    assert derived["global"]["scrape_timeout"] == "1s"  # 10s would exceed the 1s interval
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in derived["scrape_configs"]
    }
    assert targets == {
        "sysnotify-exporter": ["127.0.0.1:19730"],
        "sysnotify-mailer": ["127.0.0.1:19731"],
        "alertmanager": ["127.0.0.1:19093"],
        "prometheus": ["127.0.0.1:19090"],
    }
    assert derived["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:19093"
    ]
    assert derived["rule_files"] == ["/rules/a.yml"]


def test_unused_address_is_an_error_naming_it() -> None:
    shipped = derive.load_yaml(derive.PROMETHEUS_CONFIG)
    with pytest.raises(derive.DeriveError, match="nowhere:1"):
        derive.derive_prometheus(shipped, {"nowhere:1": "127.0.0.1:1"}, [], derive.by_factor(1))


def test_alertmanager_urls_and_route_timings(tmp_path: Path) -> None:
    shipped = derive.load_yaml(derive.ALERTMANAGER_CONFIG)
    derived = derive.derive_alertmanager(shipped, LOCAL, derive.by_factor(60))
    urls = [
        hook["url"] for receiver in derived["receivers"] for hook in receiver["webhook_configs"]
    ]
    assert urls == [
        "http://127.0.0.1:19731/alertmanager/webhook",
        "http://127.0.0.1:19731/operators/webhook",
    ]
    route = derived["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "5s",
        "4m",
    )
    privacy = [r for r in route["routes"][2]["routes"] if r["matchers"] == ['category="privacy"']]
    assert privacy[0]["active_time_intervals"] == ["tuesdays"]
    always = derive.derive_alertmanager(shipped, LOCAL, derive.by_factor(60), always_active=True)
    assert all("active_time_intervals" not in r for r in always["route"]["routes"][2]["routes"])


def test_write_stack_output_passes_promtool_and_amtool(
    binary: Callable[[str], str], tmp_path: Path
) -> None:
    derived = derive.write_stack(tmp_path / "out", LOCAL, derive.by_factor(60), "secret-token")
    assert derived.alertmanager_args == ("--data.retention=3h20m",)
    token = derived.alertmanager.parent / "secrets" / "webhook-token"
    assert token.read_text() == "secret-token\n"
    assert token.stat().st_mode & 0o077 == 0
    assert [path.name for path in derived.rule_files] == sorted(
        path.name for path in derive.RULES_DIR.glob("*.yml")
    )
    prometheus = yaml.safe_load(derived.prometheus.read_text())
    assert prometheus["rule_files"] == [str(path) for path in derived.rule_files]
    for argv in (
        [binary("promtool"), "check", "config", str(derived.prometheus)],
        [binary("amtool"), "check-config", str(derived.alertmanager)],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_write_stack_writes_nothing_on_a_bad_request(tmp_path: Path) -> None:
    with pytest.raises(derive.DeriveError):
        derive.write_stack(
            tmp_path / "out", {"nowhere:1": "127.0.0.1:1"}, derive.by_factor(60), "token"
        )
    with pytest.raises(derive.DeriveError, match="empty"):
        derive.write_stack(tmp_path / "out", LOCAL, derive.by_factor(60), " ")
    assert not (tmp_path / "out").exists()
