"""From facts to series: the metric families of the contract and how each value is computed.

Everything here is a pure function of :class:`sysnotify.exporter.store.AccountFacts` and
``now`` (epoch seconds), so each rule is unit-tested with a fixed clock. docs/exporter.md
states, per metric, when a series is absent rather than zero; the rules below are where that is
decided.

Windows (all in UTC days; ``today`` is the day holding ``now``):

* last week: the 7 complete days ``today-7 .. today-1``. Today is left out because its count
  is still growing; including it would make every metric dip at midnight.
* the norm: the four 7-day windows before the last week, ``today-35 .. today-8``; the weekly
  average is their mean, days without visits counting as zero. With less history, the mean is
  taken over the full weeks that exist (absent until there is one).
* the API window of a snapshot: ``window_start .. window_start + 24h``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sysnotify.exporter.events import MAX_API_CALLS, MAX_DAILY_VISITS
from sysnotify.exporter.store import DAY, AccountFacts

EXPIRY_PERIOD = 90 * DAY
NORM_WEEKS = 4


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    labels: tuple[str, ...]
    type: str = "gauge"


# Store-derived families, in exposition order. Indices below (F_*) refer to this tuple.
FAMILIES: tuple[Family, ...] = (
    Family(
        "abm_account_info",
        "Known customer account: always 1, carries the account's display name.",
        ("account", "account_name"),
    ),
    Family(
        "abm_credential_info",
        "Connected system credential of an account: always 1, carries its password policy.",
        ("account", "system", "policy"),
    ),
    Family(
        "abm_credential_valid",
        "Whether the latest validation of the credential succeeded (1) or failed (0).",
        ("account", "system"),
    ),
    Family(
        "abm_credential_expiry_timestamp_seconds",
        "When the credential's password expires, in seconds since the Unix epoch.",
        ("account", "system"),
    ),
    Family(
        "abm_api_daily_calls_used",
        "API calls the integration used in the current daily window.",
        ("account", "platform"),
    ),
    Family(
        "abm_api_daily_calls_limit",
        "Contracted daily allowance of API calls of the integration.",
        ("account", "platform"),
    ),
    Family(
        "abm_web_visits_last_week",
        "Web-tag visits tracked in the 7 complete UTC days before today.",
        ("account",),
    ),
    Family(
        "abm_web_visits_weekly_average",
        "Mean weekly web-tag visits over the four 7-day windows before the last week.",
        ("account",),
    ),
    Family(
        "abm_web_pages_tracked_last_week",
        "Distinct pages with tracked visits in the 7 complete UTC days before today.",
        ("account",),
    ),
    Family(
        "abm_sync_running",
        "Whether the account's latest daily sync run is still running (1) or not (0).",
        ("account",),
    ),
    Family(
        "abm_sync_last_started_timestamp_seconds",
        "Start of the latest sync run, in seconds since the Unix epoch.",
        ("account",),
    ),
    Family(
        "abm_sync_last_success_timestamp_seconds",
        "End of the latest successful sync run, in seconds since the Unix epoch.",
        ("account",),
    ),
    Family(
        "abm_sync_last_duration_seconds",
        "Duration of the latest finished sync run, in seconds.",
        ("account",),
    ),
    Family(
        "abm_privacy_optout_pending_requests",
        "Privacy opt-out requests received and not yet handled.",
        ("account",),
    ),
    Family(
        "abm_privacy_optout_oldest_pending_timestamp_seconds",
        "When the oldest pending privacy opt-out request arrived, in seconds since the Unix epoch.",
        ("account",),
    ),
    Family(
        "sysnotify_exporter_account_last_event_timestamp_seconds",
        "When the exporter last applied an event for the account, in seconds since the Unix epoch.",
        ("account",),
    ),
)
(
    F_ACCOUNT_INFO,
    F_CREDENTIAL_INFO,
    F_CREDENTIAL_VALID,
    F_CREDENTIAL_EXPIRY,
    F_API_USED,
    F_API_LIMIT,
    F_WEB_LAST_WEEK,
    F_WEB_AVERAGE,
    F_WEB_PAGES,
    F_SYNC_RUNNING,
    F_SYNC_STARTED,
    F_SYNC_SUCCESS,
    F_SYNC_DURATION,
    F_PRIVACY_PENDING,
    F_PRIVACY_OLDEST,
    F_ACCOUNT_LAST_EVENT,
) = range(len(FAMILIES))

# Store-wide families computed with the per-account ones (same cache lifetime).
GLOBAL_FAMILIES: tuple[Family, ...] = (
    Family("sysnotify_exporter_accounts", "Accounts known to the fact store.", ()),
    Family(
        "sysnotify_exporter_accounts_skipped",
        "Accounts left out of this exposition because their facts could not be turned into "
        "series; the exporter's log names each and why.",
        (),
    ),
    Family(
        "sysnotify_exporter_last_event_timestamp_seconds",
        "When the exporter last applied an event (any account), in seconds since the Unix epoch.",
        (),
    ),
)

# (family index, label values in the family's label order, value)
Sample = tuple[int, tuple[str, ...], float]


def utc_day(now: float) -> int:
    """Days since 1970-01-01 of the UTC day holding `now`."""
    return int(now // DAY)


def next_midnight(now: float) -> float:
    return (utc_day(now) + 1) * DAY


def credential_expiry(policy: str, password_changed_at: float | None) -> float | None:
    """password_changed_at + 90 days under expire_90_days; None (no series) otherwise."""
    if policy != "expire_90_days" or password_changed_at is None:
        return None
    return password_changed_at + EXPIRY_PERIOD


def api_calls_used_now(used: int, window_start: float, now: float) -> int:
    """The snapshot's count while its 24-hour window lasts, 0 once the window has ended.

    A window starting after `now` (a platform clock slightly ahead) counts as current.
    """
    return used if now < window_start + DAY else 0


def api_window_end(window_start: float, now: float) -> float | None:
    """When the snapshot's window ends, if that is still ahead of `now`."""
    end = window_start + DAY
    return end if end > now else None


def web_history_covers_last_week(first_day: int | None, today: int) -> bool:
    """Last-week figures are published once the tag's history covers the whole week."""
    return first_day is not None and first_day <= today - 7


def norm_weeks_available(first_day: int, today: int) -> int:
    """How many of the four norm weeks lie entirely within the tag's history."""
    return max(0, min(NORM_WEEKS, (today - 7 - first_day) // 7))


def weekly_average(norm_weeks: tuple[int, ...], first_day: int | None, today: int) -> float | None:
    """Mean of the norm weeks that history covers (most recent first); None if none does."""
    if first_day is None:
        return None
    weeks = norm_weeks_available(first_day, today)
    if weeks == 0:
        return None
    return sum(norm_weeks[:weeks]) / weeks


def sync_running(last_started_at: float | None, latest_finished: bool) -> int | None:
    """1 while the latest started run has no finish, 0 once it has; None without runs."""
    if last_started_at is None:
        return None
    return 0 if latest_finished else 1


class UnpublishableFacts(ValueError):
    """An account's facts cannot be turned into series; the message says why."""


def _is_time(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _is_count(value: Any, maximum: float, minimum: int = 0) -> bool:
    return type(value) is int and minimum <= value <= maximum


def facts_problem(facts: AccountFacts) -> str | None:
    """Why `facts` cannot be published, or None when they can.

    Validation keeps such values out; they come from stores written by older releases, or by
    hand. Each count must be an integer within the maxima of
    :mod:`sysnotify.exporter.events`, each time a finite number: anything else would publish
    nonsense for the account (or fail to render at all).
    """
    if facts.problem is not None:
        return facts.problem
    for system, _policy, changed, _valid, checked in facts.credentials:
        if not _is_time(checked) or (changed is not None and not _is_time(changed)):
            return f"the {system} credential has a time that is not a finite number"
    for platform, used, limit, window_start in facts.api:
        if not (_is_count(used, MAX_API_CALLS) and _is_count(limit, MAX_API_CALLS, 1)):
            return f"the {platform} API usage is not a count from 0 to {MAX_API_CALLS}"
        if not _is_time(window_start):
            return f"the {platform} API window start is not a finite number"
    if not all(_is_count(week, 7 * MAX_DAILY_VISITS) for week in facts.web_weeks):
        return f"a week's web visits are not a count from 0 to {7 * MAX_DAILY_VISITS}"
    if not _is_count(facts.privacy_pending, math.inf):
        return "the pending privacy requests are not a count"
    times = (
        facts.last_event_at,
        facts.sync_last_started_at,
        facts.sync_last_success_at,
        facts.sync_last_duration,
        facts.privacy_oldest_pending_at,
    )
    if not all(value is None or _is_time(value) for value in times):
        return "a sync, privacy or event time is not a finite number"
    return None


def publishable_samples(facts: AccountFacts, now: float) -> list[Sample]:
    """:func:`account_samples`, once :func:`facts_problem` finds nothing wrong.

    :raise UnpublishableFacts: naming what is wrong, when the facts cannot be published.
    """
    problem = facts_problem(facts)
    if problem is not None:
        raise UnpublishableFacts(problem)
    return account_samples(facts, now)


def account_samples(facts: AccountFacts, now: float) -> list[Sample]:
    """Every series of one account at `now`, in family order."""
    account = facts.account
    own = (account,)
    samples: list[Sample] = []
    add = samples.append
    if facts.name is not None:
        add((F_ACCOUNT_INFO, (account, facts.name), 1.0))
    credentials = sorted(facts.credentials)
    for system, policy, _changed, _valid, _checked in credentials:
        add((F_CREDENTIAL_INFO, (account, system, policy), 1.0))
    for system, _policy, _changed, valid, _checked in credentials:
        add((F_CREDENTIAL_VALID, (account, system), 1.0 if valid else 0.0))
    for system, policy, changed, _valid, _checked in credentials:
        expiry = credential_expiry(policy, changed)
        if expiry is not None:
            add((F_CREDENTIAL_EXPIRY, (account, system), expiry))
    api = sorted(facts.api)
    for platform, used, _limit, window_start in api:
        add((F_API_USED, (account, platform), float(api_calls_used_now(used, window_start, now))))
    for platform, _used, limit, _window_start in api:
        add((F_API_LIMIT, (account, platform), float(limit)))
    today = utc_day(now)
    covers_last_week = web_history_covers_last_week(facts.web_first_day, today)
    if covers_last_week:
        add((F_WEB_LAST_WEEK, own, float(facts.web_weeks[0])))
    average = weekly_average(facts.web_weeks[1:], facts.web_first_day, today)
    if average is not None:
        add((F_WEB_AVERAGE, own, average))
    if covers_last_week:
        add((F_WEB_PAGES, own, float(facts.web_pages_last_week)))
    running = sync_running(facts.sync_last_started_at, facts.sync_latest_finished)
    if running is not None:
        add((F_SYNC_RUNNING, own, float(running)))
        add((F_SYNC_STARTED, own, float(facts.sync_last_started_at)))  # type: ignore[arg-type]
    if facts.sync_last_success_at is not None:
        add((F_SYNC_SUCCESS, own, float(facts.sync_last_success_at)))
    if facts.sync_last_duration is not None:
        add((F_SYNC_DURATION, own, float(facts.sync_last_duration)))
    add((F_PRIVACY_PENDING, own, float(facts.privacy_pending)))
    if facts.privacy_pending and facts.privacy_oldest_pending_at is not None:
        add((F_PRIVACY_OLDEST, own, float(facts.privacy_oldest_pending_at)))
    if facts.last_event_at is not None:
        add((F_ACCOUNT_LAST_EVENT, own, float(facts.last_event_at)))
    return samples


def account_boundary(facts: AccountFacts, now: float) -> float:
    """The next instant at which this account's series change without any new event."""
    boundary = next_midnight(now)
    for _platform, _used, _limit, window_start in facts.api:
        end = api_window_end(window_start, now)
        if end is not None and end < boundary:
            boundary = end
    return boundary


def next_boundary(facts: Iterable[AccountFacts], now: float) -> float:
    boundary = next_midnight(now)
    for one in facts:
        boundary = min(boundary, account_boundary(one, now))
    return boundary
