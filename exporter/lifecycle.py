"""Which facts the lifecycle events leave out: pure functions over validated events.

An integration the customer disconnected, or an account that left the platform, is *ended*:
its facts are dropped (by the store, in the transaction that applies the event), its series
stop, and facts about it that arrive while it is ended are accepted and dropped. Connecting or
onboarding it again starts fresh: a fact that describes a time before that (a credential check,
an API window, a day of visits, a sync, a privacy request) is dropped as well, so nothing from
before the disconnect comes back, however late or often it is sent again.

Each account has a lifecycle *scope* per integration (its `system`) and one for itself (`""`);
the latest event of a scope (by its `at`) decides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sysnotify.exporter.events import LIFECYCLE, Event
from sysnotify.exporter.store import DAY

ACCOUNT_SCOPE = ""


@dataclass(frozen=True)
class ScopeState:
    """The latest lifecycle event of one scope: whether it ended it, and when."""

    ended: bool
    at: float


def lifecycle_scope(event: Event) -> tuple[str, str]:
    """(account, system) of a lifecycle event; system "" for the account events."""
    return (event[1], event[2] if len(event) == 4 else ACCOUNT_SCOPE)


def _fact_scopes(event: Event) -> tuple[tuple[str, str], ...]:
    """The scopes a fact belongs to: its account's, and its integration's where it has one."""
    account = event[1]
    if event[0] in ("credential", "api_usage"):
        return ((account, ACCOUNT_SCOPE), (account, event[2]))
    return ((account, ACCOUNT_SCOPE),)


def _fact_time(event: Event) -> float | None:
    """The end of what a fact describes, in epoch seconds; None for an account's name."""
    kind = event[0]
    if kind == "credential":
        return float(event[6])
    if kind == "api_usage":
        return float(event[5]) + DAY  # the window's end: a window that overlaps the restart
    if kind == "web_visits":
        return float(event[2] + 1) * DAY
    if kind in ("sync_started", "sync_finished", "privacy_optout"):
        return float(event[3])
    return None


def is_dropped(event: Event, scopes: Mapping[tuple[str, str], ScopeState]) -> bool:
    """Whether a fact is about something ended, or describes a time before it started again.
    Lifecycle events themselves are never dropped (the store keeps the latest per scope)."""
    if event[0] in LIFECYCLE:
        return False
    time = _fact_time(event)
    if time is None:
        return False
    for scope in _fact_scopes(event):
        state = scopes.get(scope)
        if state is not None and (state.ended or time < state.at):
            return True
    return False
