"""Reading Alertmanager's config as Alertmanager resolves it: defaults, inheritance, `continue`,
routes that never deliver, the mailer's webhooks, and every fault named at once.

Each config here is also given to the real `amtool check-config` (the last test), so the
resolution is tested on configs Alertmanager accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sysnotify.mailer.alertmanager_config import (
    AlertmanagerConfigError,
    format_duration,
    from_mapping,
    parse_duration,
    parse_flag_duration,
    read,
)
from tests.support.alertmanager import amtool_check_config

MAILER = {"name": "mailer", "webhook_configs": [{"url": "http://mailer:9731/alertmanager/webhook"}]}
OPERATORS = {"name": "operators", "webhook_configs": [{"url": "http://mailer/operators/webhook"}]}
ELSEWHERE = {"name": "pager", "webhook_configs": [{"url": "http://pager.example/hook"}]}


def config(route: dict[str, Any], *receivers: dict[str, Any]) -> dict[str, Any]:
    return {"route": route, "receivers": list(receivers or (MAILER, OPERATORS, ELSEWHERE))}


# name -> a config Alertmanager accepts, and the delivering routes it resolves to:
# (where, receiver, group_wait, group_interval, repeat_interval) in seconds.
RESOLVED: dict[str, tuple[dict[str, Any], list[tuple[str, str, float, float, float]]]] = {
    "defaults": (
        config({"receiver": "mailer"}),
        [("route", "mailer", 30, 300, 4 * 3600)],
    ),
    "inherited-and-overridden": (
        config(
            {
                "receiver": "operators",
                "group_interval": "10m",
                "routes": [
                    {
                        "matchers": ['audience="customer"'],
                        "receiver": "mailer",
                        "repeat_interval": "24h",
                        "routes": [
                            {"matchers": ['category="sync"'], "repeat_interval": "12h"},
                            {"match": {"category": "privacy"}, "group_wait": "1m"},
                        ],
                    }
                ],
            }
        ),
        [
            ("route", "operators", 30, 600, 4 * 3600),
            ("route.routes[0]", "mailer", 30, 600, 24 * 3600),
            ("route.routes[0].routes[0]", "mailer", 30, 600, 12 * 3600),
            ("route.routes[0].routes[1]", "mailer", 60, 600, 24 * 3600),
        ],
    ),
    # A child without matchers takes every alert its parent gets: the parent never delivers,
    # and a sibling after it is reached only when it says `continue`.
    "catch-all-child": (
        config(
            {
                "receiver": "operators",
                "routes": [
                    {"match_re": {"severity": "critical|warning"}, "receiver": "pager"},
                    {"receiver": "mailer", "repeat_interval": "2h"},
                    {"matchers": ['team="x"'], "repeat_interval": "1m"},
                ],
            }
        ),
        [
            ("route.routes[0]", "pager", 30, 300, 4 * 3600),
            ("route.routes[1]", "mailer", 30, 300, 2 * 3600),
        ],
    ),
    "catch-all-child-that-continues": (
        config(
            {
                "receiver": "operators",
                "routes": [
                    {"receiver": "pager", "continue": True},
                    {"matchers": ['team="x"'], "receiver": "mailer", "repeat_interval": "90m"},
                ],
            }
        ),
        [
            ("route.routes[0]", "pager", 30, 300, 4 * 3600),
            ("route.routes[1]", "mailer", 30, 300, 90 * 60),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_routes_resolve_as_alertmanager_resolves_them(name: str) -> None:
    document, expected = RESOLVED[name]
    routes = from_mapping(document).routes
    assert [
        (r.where, r.receiver, r.group_wait, r.group_interval, r.repeat_interval) for r in routes
    ] == [(where, receiver, float(w), float(i), float(r)) for where, receiver, w, i, r in expected]


def test_a_route_is_named_by_its_place_and_matchers() -> None:
    routes = from_mapping(RESOLVED["inherited-and-overridden"][0]).routes
    assert [str(route) for route in routes] == [
        "route",
        'route.routes[0] (audience="customer")',
        'route.routes[0].routes[0] (category="sync")',
        'route.routes[0].routes[1] (category="privacy")',
    ]
    (pager, _) = from_mapping(RESOLVED["catch-all-child"][0]).routes
    assert str(pager) == 'route.routes[0] (severity=~"critical|warning")'


def test_only_routes_to_receivers_with_a_mailer_webhook_reach_the_mailer() -> None:
    document = RESOLVED["catch-all-child-that-continues"][0]
    resolved = from_mapping(document)
    assert resolved.mailer_receivers == ("mailer", "operators")
    assert [route.where for route in resolved.routes_to_mailer()] == ["route.routes[1]"]


@pytest.mark.parametrize(
    ("url", "is_mailer"),
    [
        ("http://mailer:9731/alertmanager/webhook", True),
        ("https://mail.example/sysnotify/operators/webhook/", True),  # behind a proxy prefix
        ("http://mailer:9731/alertmanager/webhook?debug=1", True),
        ("http://mailer:9731/alertmanager", False),
        ("http://chat.example/operators/webhooks", False),
    ],
)
def test_a_webhook_is_the_mailers_by_its_path(url: str, is_mailer: bool) -> None:
    document = config({"receiver": "r"}, {"name": "r", "webhook_configs": [{"url": url}]})
    assert bool(from_mapping(document).mailer_webhooks) is is_mailer


def test_webhook_settings_default_as_in_alertmanager() -> None:
    document = config(
        {"receiver": "mailer"},
        MAILER,
        {
            "name": "strict",
            "webhook_configs": [
                {
                    "url": "http://mailer/alertmanager/webhook",
                    "send_resolved": False,
                    "max_alerts": 20,
                }
            ],
        },
    )
    first, second = from_mapping(document).mailer_webhooks
    assert (first.receiver, first.send_resolved, first.max_alerts) == ("mailer", True, 0)
    assert (second.receiver, second.send_resolved, second.max_alerts) == ("strict", False, 20)
    assert second.where == "receivers[1].webhook_configs[0]"


def test_every_fault_is_named_at_once() -> None:
    document = {
        "route": {
            "receiver": "mailer",
            "group_interval": "0s",
            "repeat_interval": "daily",
            "routes": [{"receiver": "nobody", "matchers": 'alertname="X"'}],
        },
        "receivers": [
            {
                "name": "mailer",
                "webhook_configs": [
                    {
                        "url": "http://mailer/alertmanager/webhook",
                        "send_resolved": "yes",
                        "max_alerts": -1,
                    }
                ],
            },
            {"webhook_configs": []},
        ],
    }
    with pytest.raises(AlertmanagerConfigError) as error:
        from_mapping(document, "am.yml")
    assert error.value.problems == [
        "am.yml: receivers[0].webhook_configs[0].send_resolved: must be true or false",
        "am.yml: receivers[0].webhook_configs[0].max_alerts: must be a whole number, 0 or more",
        "am.yml: receivers[1].name: required",
        "am.yml: route.group_interval: cannot be zero",
        "am.yml: route.repeat_interval: not a duration: 'daily' (e.g. 30s, 5m, 4h, 1h30m)",
        "am.yml: route.routes[0].receiver: 'nobody' is not defined under receivers",
        "am.yml: route.routes[0].matchers: must be a list",
    ]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "am.yml: must be a mapping with route and receivers"),
        ({"receivers": [MAILER]}, "am.yml: route: required, a mapping (the root route)"),
        ({"route": {}, "receivers": [MAILER]}, "am.yml: route.receiver: required"),
        ({"route": {"receiver": "mailer"}}, "am.yml: receivers: required, a list of receivers"),
    ],
)
def test_a_config_without_route_or_receivers_is_refused(document: Any, problem: str) -> None:
    with pytest.raises(AlertmanagerConfigError) as error:
        from_mapping(document, "am.yml")
    assert error.value.problems[0].startswith(problem)


def test_read_names_the_file_it_cannot_read_or_parse(tmp_path: Path) -> None:
    with pytest.raises(AlertmanagerConfigError, match="am.yml: cannot read"):
        read(tmp_path / "am.yml")
    (tmp_path / "am.yml").write_text("route: {receiver: [")
    with pytest.raises(AlertmanagerConfigError, match="am.yml: not valid YAML"):
        read(tmp_path / "am.yml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("0s", 0), ("30s", 30), ("1h30m", 5400), ("192h", 691200), ("1w1d", 691200)],
)
def test_config_durations_follow_prometheus(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1.5h", "30m1h", "1d 2h", "-1h"])
def test_config_durations_out_of_order_or_fractional_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("120h", 432000), ("200h", 720000), ("1.5h", 5400), ("90m30s", 5430)]
)
def test_flag_durations_follow_go(text: str, seconds: float) -> None:
    assert parse_flag_duration(text) == seconds


@pytest.mark.parametrize("text", ["8d", "1w", "200", "h", "-5h"])
def test_flag_durations_have_no_days(text: str) -> None:
    with pytest.raises(ValueError, match="no d or w"):
        parse_flag_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (600, "10m"), (691200 + 300, "192h5m"), (1.5, "1s500ms")]
)
def test_durations_are_written_as_the_shipped_configs_write_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_amtool_accepts_each_config_resolved_here(
    binary: Callable[[str], str], tmp_path: Path, name: str
) -> None:
    result = amtool_check_config(binary("amtool"), RESOLVED[name][0], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
