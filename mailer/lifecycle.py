"""Lifecycle commands: an integration disconnected or connected, an account offboarded or
onboarded. The admin API and the `sysnotify-mailer integration|account` CLI both use this
module on the same store.

The platform sends these as the customer acts, together with the matching exporter events
(docs/contracts.md). Each command is one store transaction:

- disconnecting an integration ends the account's open episodes whose alerts name it (their
  `system` or `platform` label) silently, and takes it out of every email still to be sent: an
  email about it alone is cancelled (status failed, "cancelled: integration_disconnected"),
  one that also lists other integrations goes out without it. Its alerts are set aside from
  then on (sysnotify.mailer.intake.ended): no recovery when they resolve, no reminders;
- offboarding an account ends all its open episodes, cancels all its emails still to be sent
  ("cancelled: account_offboarded") and removes its recipients (the customer has left: their
  addresses are not kept). Its alerts are set aside from then on;
- connecting and onboarding only lift the mark. The episodes ended before stay ended, so only
  a problem that starts afterwards is mailed, as a new episode; an onboarded account's
  recipients are registered again like a new account's.

Repeating a command changes nothing more; its answer says whether it changed anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sysnotify.exporter.events import SYSTEMS
from sysnotify.mailer import counters
from sysnotify.mailer.intake.ended import (
    ACCOUNT_OFFBOARDED,
    INTEGRATION_DISCONNECTED,
    AccountLifecycle,
    closed,
)
from sysnotify.mailer.recipients import RecipientError, validate_account
from sysnotify.mailer.store import LifecycleTransaction, Store


class LifecycleError(ValueError):
    """A lifecycle command that cannot be applied; the message says what is wrong."""


@dataclass(frozen=True)
class LifecycleResult:
    """What one command did."""

    account: str
    system: str | None  # None for the account commands
    state: str  # disconnected, connected, offboarded, onboarded
    changed: bool  # False when it was so already
    episodes_ended: int = 0
    emails_cancelled: int = 0
    emails_shortened: int = 0  # emails still sent, without the ended integration's alerts
    recipients_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"account": self.account}
        if self.system is not None:
            result["system"] = self.system
        return result | {
            "state": self.state,
            "changed": self.changed,
            "episodes_ended": self.episodes_ended,
            "emails_cancelled": self.emails_cancelled,
            "emails_shortened": self.emails_shortened,
            "recipients_removed": self.recipients_removed,
        }


def validate_system(system: object) -> str:
    if not isinstance(system, str) or system not in SYSTEMS:
        shown = system[:60] if isinstance(system, str) else system
        raise LifecycleError(f"unknown system {shown!r}; must be one of: {', '.join(SYSTEMS)}")
    return system


def _account(account: str) -> str:
    try:
        return validate_account(account)
    except RecipientError as error:
        raise LifecycleError(str(error)) from None


class Lifecycle:
    """The lifecycle commands over the store."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def disconnect(self, account: str, system: str) -> LifecycleResult:
        account, system = _account(account), validate_system(system)
        ended = AccountLifecycle(disconnected=frozenset({system}))
        now = self.clock()
        with self.store.change_lifecycle() as tx:
            changed = tx.set_disconnected(account, system, True, now)
            episodes = self._end_episodes(tx, account, ended, now)
            cancelled, shortened = self._withdraw_emails(
                tx, account, ended, INTEGRATION_DISCONNECTED, now
            )
        return LifecycleResult(
            account, system, "disconnected", changed, episodes, cancelled, shortened
        )

    def connect(self, account: str, system: str) -> LifecycleResult:
        account, system = _account(account), validate_system(system)
        with self.store.change_lifecycle() as tx:
            changed = tx.set_disconnected(account, system, False, self.clock())
        return LifecycleResult(account, system, "connected", changed)

    def offboard(self, account: str) -> LifecycleResult:
        account = _account(account)
        ended = AccountLifecycle(offboarded=True)
        now = self.clock()
        with self.store.change_lifecycle() as tx:
            changed = tx.set_offboarded(account, True, now)
            episodes = self._end_episodes(tx, account, ended, now)
            cancelled, _ = self._withdraw_emails(tx, account, ended, ACCOUNT_OFFBOARDED, now)
            removed = tx.remove_recipients(account)
        return LifecycleResult(
            account, None, "offboarded", changed, episodes, cancelled, 0, removed
        )

    def onboard(self, account: str) -> LifecycleResult:
        account = _account(account)
        with self.store.change_lifecycle() as tx:
            changed = tx.set_offboarded(account, False, self.clock())
        return LifecycleResult(account, None, "onboarded", changed)

    def status(self, account: str) -> dict[str, Any]:
        """Whether the account is offboarded and which of its integrations are disconnected,
        each with since when (Unix time)."""
        offboarded_since, disconnected = self.store.lifecycle(_account(account))
        return {
            "account": account,
            "offboarded": offboarded_since is not None,
            "offboarded_since": offboarded_since,
            "disconnected": [
                {"system": system, "since": since} for system, since in disconnected.items()
            ],
        }

    @staticmethod
    def _end_episodes(
        tx: LifecycleTransaction, account: str, ended: AccountLifecycle, now: float
    ) -> int:
        """Ends the open episodes the command is about. Episodes opened before schema 7 kept
        no labels; those of a disconnected integration end when their alert next arrives."""
        count = 0
        for state in tx.open_episodes(account):
            if ended.ends(dict(state.labels)) is not None:
                tx.save_state(closed(state, now))
                count += 1
        return count

    @staticmethod
    def _withdraw_emails(
        tx: LifecycleTransaction,
        account: str,
        ended: AccountLifecycle,
        reason: str,
        now: float,
    ) -> tuple[int, int]:
        """Cancels the emails still to be sent that are only about what ended, and takes
        what ended out of the others; returns (cancelled, shortened)."""
        cancelled = shortened = 0
        for email in tx.pending_emails(account):
            request = json.loads(email.request)
            alerts = request.get("alerts") or []
            kept = [alert for alert in alerts if ended.ends(alert.get("labels") or {}) is None]
            if not kept:
                if tx.cancel_email(email.id, reason, now):
                    tx.count([(counters.EMAILS_CANCELLED, email.notification, 1)])
                    cancelled += 1
            elif len(kept) < len(alerts):
                request["alerts"] = kept
                shortened += tx.rewrite_request(email.id, json.dumps(request, sort_keys=True))
        return cancelled, shortened
