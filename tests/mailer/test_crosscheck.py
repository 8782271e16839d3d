"""Each rule of `sysnotify-mailer check-config`, on both sides of its threshold, with small
Alertmanager configs (each also accepted by the real `amtool check-config`, last test)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sysnotify.mailer.alertmanager_config import from_mapping, parse_flag_duration
from sysnotify.mailer.config import DedupConfig
from sysnotify.mailer.crosscheck import Report, check
from tests.support.alertmanager import amtool_check_config

HOUR = 3600.0
DAY = 24 * HOUR


# The Watchdog to the operators' endpoint, repeating fast: in every config below.
WATCHDOG = {
    "matchers": ['alertname="Watchdog"'],
    "receiver": "operators",
    "group_interval": "1m",
    "repeat_interval": "10m",
}


def alertmanager(*routes: dict[str, Any], **webhook: Any) -> dict[str, Any]:
    """The Watchdog and `routes` under a root route to a pager that is not the mailer; the
    receivers `mailer` and `operators` are the mailer's endpoints. `webhook` sets keys of the
    `mailer` receiver's webhook."""
    return {
        "route": {"receiver": "pager", "routes": [WATCHDOG, *routes]},
        "receivers": [
            {
                "name": "mailer",
                "webhook_configs": [{"url": "http://mailer:9731/alertmanager/webhook", **webhook}],
            },
            {
                "name": "operators",
                "webhook_configs": [{"url": "http://mailer:9731/operators/webhook"}],
            },
            {"name": "pager", "webhook_configs": [{"url": "http://pager.example/hook"}]},
        ],
    }


def customer_route(**settings: Any) -> dict[str, Any]:
    """Customer alerts to the `mailer` receiver (Alertmanager's default timings unless set)."""
    return {"matchers": ['audience="customer"'], "receiver": "mailer", **settings}


# Every Alertmanager config the tests check, by name (the last test gives each to amtool).
CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": alertmanager(customer_route()),
    "send_resolved true": alertmanager(customer_route(), send_resolved=True),
    "send_resolved false": alertmanager(customer_route(), send_resolved=False),
    "max_alerts 0": alertmanager(customer_route(), max_alerts=0),
    "max_alerts 1": alertmanager(customer_route(), max_alerts=1),
    "192h": alertmanager(customer_route(repeat_interval="192h")),
    "168h": alertmanager(customer_route(repeat_interval="168h")),
    "23h50m every 10m": alertmanager(
        customer_route(repeat_interval="23h50m", group_interval="10m")
    ),
    "192h, max_alerts 5": alertmanager(customer_route(repeat_interval="192h"), max_alerts=5),
    "nested, continue": alertmanager(
        customer_route(
            repeat_interval="24h",
            routes=[
                {"matchers": ['category="sync"'], "repeat_interval": "30m"},
                # `continue`: its alerts also go on to the next route
                {"matchers": ['category="api"'], "repeat_interval": "45m", "continue": True},
                {"matchers": ['severity="critical"'], "repeat_interval": "2h"},
            ],
        ),
        # Not the mailer: a pager's fast repeats are none of the mailer's business.
        {"matchers": ['team="ops"'], "repeat_interval": "1m"},
    ),
    # The parent's 30m would be too short, but a child without matchers takes all its alerts.
    "catch-all child": alertmanager(
        customer_route(repeat_interval="30m", routes=[{"repeat_interval": "12h"}])
    ),
    "pager only": {"route": {"receiver": "pager"}, "receivers": alertmanager()["receivers"]},
}


def run(
    document: dict[str, Any],
    duplicate_window: float = HOUR,
    receiver_windows: dict[str, float] | None = None,
    state_retention: float = 30 * DAY,
    retention: str = "200h",
) -> Report:
    dedup = DedupConfig(
        duplicate_window_seconds=duplicate_window,
        state_retention_seconds=state_retention,
        receiver_windows={"operators": 300.0} if receiver_windows is None else receiver_windows,
    )
    return check(from_mapping(document), dedup, parse_flag_duration(retention))


def test_the_baseline_agrees() -> None:
    report = run(CONFIGS["baseline"])
    assert report.problems == ()
    assert report.summary[0] == "2 route(s) reach the mailer through receiver(s) mailer, operators"


def assert_problem(report: Report, expected: str | None) -> None:
    """`expected` None: the configs agree; else theirs is one problem, starting so."""
    if expected is None:
        assert report.problems == ()
    else:
        (problem,) = report.problems
        assert problem.startswith(expected), problem


# -- the duplicate window against every repeat_interval reaching the mailer ------------------

CUSTOMER = 'route.routes[1] (audience="customer") -> receiver mailer: '
WATCHDOG_ROUTE = 'route.routes[0] (alertname="Watchdog") -> receiver operators: '


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (4 * HOUR - 1, None),
        (
            4 * HOUR,
            f"{CUSTOMER}repeat_interval 4h is not longer than the mailer's duplicate window 4h "
            "(dedup.duplicate_window): reminders within the window are taken for re-deliveries "
            "and swallowed; set dedup.receiver_windows.mailer shorter than 4h",
        ),
    ],
)
def test_the_duplicate_window_must_be_shorter_than_the_repeat_interval(
    window: float, expected: str | None
) -> None:
    # The customer route inherits Alertmanager's default repeat_interval, 4h.
    assert_problem(run(CONFIGS["baseline"], duplicate_window=window), expected)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (599.0, None),
        (
            600.0,
            f"{WATCHDOG_ROUTE}repeat_interval 10m is not longer than the mailer's duplicate "
            "window 10m (dedup.receiver_windows.operators)",
        ),
    ],
)
def test_a_receiver_window_is_checked_against_that_receivers_routes(
    window: float, expected: str | None
) -> None:
    assert_problem(run(CONFIGS["baseline"], receiver_windows={"operators": window}), expected)


def test_without_a_receiver_window_the_default_window_meets_the_fast_route() -> None:
    assert_problem(
        run(CONFIGS["baseline"], receiver_windows={}),
        f"{WATCHDOG_ROUTE}repeat_interval 10m is not longer than the mailer's duplicate "
        "window 1h (dedup.duplicate_window)",
    )


def test_every_route_reaching_the_mailer_is_checked_and_named() -> None:
    problems = run(CONFIGS["nested, continue"]).problems
    assert [problem.split(" -> ")[0] for problem in problems] == [
        'route.routes[1].routes[0] (category="sync")',
        'route.routes[1].routes[1] (category="api")',
    ]


def test_a_route_whose_alerts_all_go_to_a_child_never_repeats_by_itself() -> None:
    assert_problem(run(CONFIGS["catch-all child"]), None)


# -- send_resolved and max_alerts ----------------------------------------------------------

MAILER_WEBHOOK = (
    "receiver mailer (receivers[0].webhook_configs[0], http://mailer:9731/alertmanager/webhook): "
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("baseline", None),
        ("send_resolved true", None),
        ("send_resolved false", f"{MAILER_WEBHOOK}send_resolved is false"),
    ],
)
def test_send_resolved_must_stay_on(name: str, expected: str | None) -> None:
    assert_problem(run(CONFIGS[name]), expected)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("baseline", None),
        ("max_alerts 0", None),
        ("max_alerts 1", f"{MAILER_WEBHOOK}max_alerts is 1: Alertmanager cuts the alerts"),
    ],
)
def test_max_alerts_must_be_zero(name: str, expected: str | None) -> None:
    assert_problem(run(CONFIGS[name]), expected)


# -- retention: Alertmanager's notification log and the mailer's alert state ----------------


@pytest.mark.parametrize(
    ("retention", "expected"),
    [
        ("192h5m1s", None),
        (
            "192h5m",
            f"{CUSTOMER}Alertmanager's --data.retention 192h5m (--alertmanager-retention) is "
            "not longer than its repeat_interval 192h plus group_interval 5m",
        ),
    ],
)
def test_alertmanagers_retention_must_outlast_the_longest_wait_for_a_repeat(
    retention: str, expected: str | None
) -> None:
    # Repeated on the first 5m group_interval tick after 192h: up to 192h5m after the last.
    assert_problem(run(CONFIGS["192h"], retention=retention), expected)


def test_alertmanagers_default_retention_is_too_short_for_a_weekly_repeat() -> None:
    (problem,) = run(CONFIGS["168h"], retention="120h").problems
    assert "--data.retention 120h" in problem and "repeats it every 120h" in problem


@pytest.mark.parametrize(
    ("state_retention", "expected"),
    [
        (DAY + 1, None),
        (
            DAY,
            f"{CUSTOMER}dedup.state_retention 24h is not longer than its repeat_interval "
            "23h50m plus group_interval 10m",
        ),
    ],
    ids=["longer", "equal"],
)
def test_the_mailers_state_retention_must_outlast_the_longest_wait_for_a_repeat(
    state_retention: float, expected: str | None
) -> None:
    assert_problem(run(CONFIGS["23h50m every 10m"], state_retention=state_retention), expected)


# -- configs that do not meet at all -------------------------------------------------------


@pytest.mark.parametrize(
    ("receiver", "expected"),
    [
        ("operators", None),
        ("operator", "dedup.receiver_windows.operator: no route delivers to a receiver operator"),
        ("pager", "dedup.receiver_windows.pager: no route delivers to a receiver pager with a "),
    ],
)
def test_a_receiver_window_must_name_a_receiver_that_reaches_the_mailer(
    receiver: str, expected: str | None
) -> None:
    report = run(CONFIGS["baseline"], receiver_windows={"operators": 300.0, receiver: 300.0})
    assert_problem(report, expected)
    if expected:
        assert report.problems[0].endswith("(receivers reaching it: mailer, operators)")


def test_an_alertmanager_that_never_reaches_the_mailer_is_a_problem() -> None:
    assert_problem(
        run(CONFIGS["pager only"], receiver_windows={}),
        "no route delivers to a receiver with a webhook to the mailer",
    )


def test_every_problem_is_named_at_once() -> None:
    report = run(
        CONFIGS["192h, max_alerts 5"],
        duplicate_window=200 * HOUR,
        retention="120h",
        receiver_windows={},
    )
    assert [problem.split(": ")[0] for problem in report.problems] == [
        MAILER_WEBHOOK.removesuffix(": "),
        'route.routes[0] (alertname="Watchdog") -> receiver operators',  # the window
        'route.routes[1] (audience="customer") -> receiver mailer',  # the window
        'route.routes[1] (audience="customer") -> receiver mailer',  # the retention
    ]
    assert report.summary == ()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_amtool_accepts_every_config_checked_here(
    binary: Callable[[str], str], tmp_path: Path, name: str
) -> None:
    result = amtool_check_config(binary("amtool"), CONFIGS[name], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
