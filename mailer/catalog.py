"""The catalog: which notification each alertname is, its category and its templates.

A notification kind names a template directory under templates/ for the problem email (and
reminders), and optionally one for the recovery email. Whether a recovery is sent is a default
here that the mailer config may override per notification (`notifications:` section).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

CATEGORIES = ("credentials", "api_limits", "web_visits", "privacy", "sync")


@dataclass(frozen=True)
class NotificationKind:
    name: str  # catalog name; also the `notification` metric label and /preview/<name>
    alertname: str | None  # None for the generic kind
    category: str | None  # None for generic: taken from the alert's `category` label
    template: str  # template directory of the problem email
    recovery_template: str | None
    send_recovery: bool
    title: str  # a short human name, for previews and docs


GENERIC = NotificationKind(
    name="generic",
    alertname=None,
    category=None,
    template="generic",
    recovery_template="generic_recovery",
    send_recovery=False,
    title="Other platform notification",
)

DEFAULT_KINDS: tuple[NotificationKind, ...] = (
    NotificationKind(
        "credential_expiring",
        "CredentialExpiringSoon",
        "credentials",
        "credential_expiring",
        None,
        False,
        "Credentials expiring soon",
    ),
    NotificationKind(
        "credential_expired",
        "CredentialExpired",
        "credentials",
        "credential_expired",
        "credentials_updated",
        True,
        "Credentials expired",
    ),
    NotificationKind(
        "api_limit_approaching",
        "ApiDailyLimitApproaching",
        "api_limits",
        "api_limit_approaching",
        None,
        False,
        "Daily API limit approaching",
    ),
    NotificationKind(
        "api_limit_reached",
        "ApiDailyLimitReached",
        "api_limits",
        "api_limit_reached",
        "api_limit_restored",
        False,
        "Daily API limit reached",
    ),
    NotificationKind(
        "web_visits_dropped",
        "WebVisitsDropped",
        "web_visits",
        "web_visits_dropped",
        None,
        False,
        "Web visits dropped",
    ),
    NotificationKind(
        "few_pages_tracked",
        "FewWebPagesTracked",
        "web_visits",
        "few_pages_tracked",
        None,
        False,
        "Few pages tracked",
    ),
    NotificationKind(
        "privacy_optout_reminder",
        "PrivacyOptOutPending",
        "privacy",
        "privacy_optout_reminder",
        None,
        False,
        "Privacy opt-out requests pending",
    ),
    NotificationKind(
        "data_sync_delayed",
        "DataSyncDelayed",
        "sync",
        "data_sync_delayed",
        "data_sync_completed",
        True,
        "Data sync delayed",
    ),
)


class CatalogError(ValueError):
    """A catalog override names an unknown notification or asks for a recovery without template."""


class Catalog:
    """Lookup by alertname (unknown ones map to GENERIC) and by catalog name."""

    def __init__(
        self, kinds: Iterable[NotificationKind] = DEFAULT_KINDS, generic: NotificationKind = GENERIC
    ) -> None:
        self.generic = generic
        self._by_name = {kind.name: kind for kind in kinds}
        self._by_name[generic.name] = generic
        self._by_alertname = {k.alertname: k for k in self._by_name.values() if k.alertname}

    @classmethod
    def with_overrides(cls, send_recovery: Mapping[str, bool]) -> Catalog:
        """The default catalog with `send_recovery` switched per notification name.

        :raise CatalogError: listing every unknown name or kind without a recovery template.
        """
        kinds = {kind.name: kind for kind in (*DEFAULT_KINDS, GENERIC)}
        problems = []
        for name, enabled in send_recovery.items():
            kind = kinds.get(name)
            if kind is None:
                problems.append(f"unknown notification {name!r} (known: {', '.join(kinds)})")
            elif enabled and kind.recovery_template is None:
                problems.append(f"notification {name!r} has no recovery template")
            else:
                kinds[name] = replace(kind, send_recovery=bool(enabled))
        if problems:
            raise CatalogError("; ".join(problems))
        generic = kinds.pop(GENERIC.name)
        return cls(kinds.values(), generic)

    def for_alertname(self, alertname: str) -> NotificationKind:
        return self._by_alertname.get(alertname, self.generic)

    def by_name(self, name: str) -> NotificationKind | None:
        return self._by_name.get(name)

    def kinds(self) -> tuple[NotificationKind, ...]:
        return tuple(self._by_name.values())
