"""`sysnotify-mailer check-config`: the mailer's config checked against Alertmanager's.

The mailer's deduplication only works with Alertmanager's timings, and some webhook settings
lose emails without any error. Each check below names a way a customer would get a wrong
email, or none:

- every repeat_interval of a route that delivers to a mailer webhook is longer than the
  mailer's duplicate window for that receiver (`dedup.receiver_windows.<receiver>`, else
  `dedup.duplicate_window`); otherwise each reminder within the window is taken for a
  re-delivery and swallowed;
- those webhooks keep `send_resolved` on (no recovery email otherwise) and `max_alerts` at 0
  (an alert cut from a notification gets neither its problem nor its recovery email);
- Alertmanager's `--data.retention` and the mailer's `dedup.state_retention` both outlast the
  longest wait for a repeat (repeat_interval plus one group_interval, see
  sysnotify.mailer.alertmanager_config.Route.latest_repeat): Alertmanager would otherwise
  forget what it sent and repeat early, and the mailer would forget what it mailed and send
  the reminder as a new problem;
- every `dedup.receiver_windows` entry names a receiver that reaches the mailer (a typo there
  silently falls back to the default window);
- some route reaches the mailer at all.

Routes are resolved as Alertmanager does (sysnotify.mailer.alertmanager_config).
"""

from __future__ import annotations

from dataclasses import dataclass

from sysnotify.mailer.alertmanager_config import AlertmanagerConfig, Route
from sysnotify.mailer.alertmanager_config import format_duration as duration
from sysnotify.mailer.config import DedupConfig

# Alertmanager's default `--data.retention` (cmd/alertmanager/main.go, 0.25 to today).
DEFAULT_DATA_RETENTION = "120h"


@dataclass(frozen=True)
class Report:
    problems: tuple[str, ...]  # empty when the two configs agree
    summary: tuple[str, ...]  # what was found to agree, a line each


def check(alertmanager: AlertmanagerConfig, dedup: DedupConfig, data_retention: float) -> Report:
    """Every disagreement between Alertmanager's config and the mailer's dedup settings.

    :param data_retention: Alertmanager's `--data.retention`, in seconds.
    """
    routes = alertmanager.routes_to_mailer()
    problems = [*_webhook_problems(alertmanager), *_unused_windows(routes, dedup)]
    if not routes:
        problems.append(
            "no route delivers to a receiver with a webhook to the mailer (a url ending in "
            "/alertmanager/webhook or /operators/webhook): the mailer would receive nothing"
        )
        return Report(tuple(problems), ())
    for route in routes:
        problems += _window_problems(route, dedup)
        problems += _retention_problems(route, dedup, data_retention)
    if problems:
        return Report(tuple(problems), ())
    return Report((), _summary(alertmanager, routes, dedup, data_retention))


def _webhook_problems(alertmanager: AlertmanagerConfig) -> list[str]:
    problems = []
    for webhook in alertmanager.mailer_webhooks:
        where = f"receiver {webhook.receiver} ({webhook.where}, {webhook.url})"
        if not webhook.send_resolved:
            problems.append(
                f"{where}: send_resolved is false: resolved alerts never reach the mailer, so "
                "no recovery email is sent; remove it or set it to true"
            )
        if webhook.max_alerts:
            problems.append(
                f"{where}: max_alerts is {webhook.max_alerts}: Alertmanager cuts the alerts "
                "beyond it from each notification, and those get neither their problem nor "
                "their recovery email; set 0 and keep groups small with group_by"
            )
    return problems


def _window_key(receiver: str, dedup: DedupConfig) -> str:
    if receiver in dedup.receiver_windows:
        return f"dedup.receiver_windows.{receiver}"
    return "dedup.duplicate_window"


def _window_problems(route: Route, dedup: DedupConfig) -> list[str]:
    window = dedup.window_for(route.receiver)
    if window < route.repeat_interval:
        return []
    return [
        f"{route} -> receiver {route.receiver}: repeat_interval "
        f"{duration(route.repeat_interval)} is not longer than the mailer's duplicate window "
        f"{duration(window)} ({_window_key(route.receiver, dedup)}): reminders within the "
        "window are taken for re-deliveries and swallowed; set "
        f"dedup.receiver_windows.{route.receiver} shorter than "
        f"{duration(route.repeat_interval)}"
    ]


def _retention_problems(route: Route, dedup: DedupConfig, data_retention: float) -> list[str]:
    wait = (
        f"repeat_interval {duration(route.repeat_interval)} plus group_interval "
        f"{duration(route.group_interval)}"
    )
    problems = []
    if data_retention <= route.latest_repeat:
        problems.append(
            f"{route} -> receiver {route.receiver}: Alertmanager's --data.retention "
            f"{duration(data_retention)} (--alertmanager-retention) is not longer than its "
            f"{wait}: Alertmanager forgets the notification before the repeat is due and "
            f"repeats it every {duration(data_retention)}; start Alertmanager with a longer "
            "--data.retention"
        )
    if dedup.state_retention_seconds <= route.latest_repeat:
        problems.append(
            f"{route} -> receiver {route.receiver}: dedup.state_retention "
            f"{duration(dedup.state_retention_seconds)} is not longer than its {wait}: the "
            "mailer forgets the alerts before their reminder and mails it as a new problem"
        )
    return problems


def _unused_windows(routes: tuple[Route, ...], dedup: DedupConfig) -> list[str]:
    reached = {route.receiver for route in routes}
    return [
        f"dedup.receiver_windows.{receiver}: no route delivers to a receiver {receiver} with a "
        f"webhook to the mailer (receivers reaching it: {', '.join(sorted(reached)) or 'none'})"
        for receiver in dedup.receiver_windows
        if receiver not in reached
    ]


def _summary(
    alertmanager: AlertmanagerConfig,
    routes: tuple[Route, ...],
    dedup: DedupConfig,
    data_retention: float,
) -> tuple[str, ...]:
    receivers = [r for r in alertmanager.mailer_receivers if any(x.receiver == r for x in routes)]
    windows = ", ".join(f"{r} {duration(dedup.window_for(r))}" for r in receivers)
    repeats = sorted(route.repeat_interval for route in routes)
    longest = max(routes, key=lambda route: route.latest_repeat)
    return (
        f"{len(routes)} route(s) reach the mailer through receiver(s) {', '.join(receivers)}",
        f"repeat intervals {duration(repeats[0])} to {duration(repeats[-1])}, each longer than "
        f"its receiver's duplicate window ({windows})",
        f"the longest wait for a repeat, {duration(longest.latest_repeat)} ({longest}), is "
        f"shorter than Alertmanager's data retention ({duration(data_retention)}) and "
        f"dedup.state_retention ({duration(dedup.state_retention_seconds)})",
        f"{len(alertmanager.mailer_webhooks)} mailer webhook(s), each with send_resolved on "
        "and max_alerts 0",
    )
