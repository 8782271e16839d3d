"""The demo's and end-to-end tests' story: accounts in trouble, then recovering.

Each customer notification has an account of its own, so every email can be traced to one cause:

| account | trouble (fire) | fix (recover) |
| --- | --- | --- |
| acc-northwind | Salesforce and Eloqua passwords expire in 10 and 9 days (one email) | - |
| acc-contoso | Marketo, HubSpot and Pardot fail validation (one "expired" email) | Marketo validates again: "credentials updated" |
| acc-fabrikam | HubSpot daily API allowance used up; Pardot at 95% | - |
| acc-globex | web visits fell to a fifth of the norm, on 3 pages only | - |
| acc-initech | 4 privacy opt-out requests pending | - |
| acc-umbrella | daily sync running for 7 hours | the sync finishes: "data sync completed" |
| acc-wayne | Salesforce password expires in 5 days and its check fails: only "expired" is sent | - |
| acc-stark | Eloqua check fails while an operator's silence covers the account | the silence ends: the email goes out |

Fabrikam's sync also runs for 8 hours: DataSyncDelayed fires but is held back by its HubSpot limit,
which also holds back HubSpot's own "approaching" alert (inhibitions).

Every account has a primary administrator and subscribers for some categories, so tests can check
that each email reaches exactly the right people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

Event = dict[str, Any]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Member:
    address: str
    categories: tuple[str, ...]  # empty for the primary administrator (gets everything)


@dataclass(frozen=True)
class DemoAccount:
    account: str
    name: str
    primary: str
    subscribers: tuple[Member, ...]


ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        "acc-northwind",
        "Northwind Traders",
        "admin@northwind.example",
        (
            Member("crm-team@northwind.example", ("credentials",)),
            Member("marketing@northwind.example", ("web_visits",)),
        ),
    ),
    DemoAccount(
        "acc-contoso",
        "Contoso Ltd",
        "it-admin@contoso.example",
        (
            Member("ops@contoso.example", ("credentials", "sync")),
            Member("privacy@contoso.example", ("privacy",)),
        ),
    ),
    DemoAccount(
        "acc-fabrikam",
        "Fabrikam, Inc.",
        "owner@fabrikam.example",
        (Member("integrations@fabrikam.example", ("api_limits", "sync")),),
    ),
    DemoAccount(
        "acc-globex",
        "Globex Corporation",
        "admin@globex.example",
        (
            Member("web@globex.example", ("web_visits",)),
            Member("crm@globex.example", ("credentials",)),
        ),
    ),
    DemoAccount(
        "acc-initech",
        "Initech",
        "admin@initech.example",
        (
            Member("dpo@initech.example", ("privacy",)),
            Member("sales-ops@initech.example", ("credentials", "api_limits")),
        ),
    ),
    DemoAccount(
        "acc-umbrella",
        "Umbrella Corp",
        "admin@umbrella.example",
        (
            Member("data@umbrella.example", ("sync",)),
            Member("web@umbrella.example", ("web_visits",)),
        ),
    ),
    DemoAccount(
        "acc-wayne",
        "Wayne Enterprises",
        "admin@wayne.example",
        (Member("crm@wayne.example", ("credentials",)),),
    ),
    DemoAccount(
        "acc-stark",
        "Stark Industries",
        "admin@stark.example",
        (Member("crm@stark.example", ("credentials",)),),
    ),
)

# Alerts an operator silences before they fire (site maintenance): see tests/e2e and the demo.
SILENCED_ACCOUNT = "acc-stark"


def account(account_id: str) -> DemoAccount:
    return next(a for a in ACCOUNTS if a.account == account_id)


# What the story must send: (account, notification) -> the category that makes a subscriber
# receive it. Stark's email is held back by a silence, so it is not among the problems.
PROBLEMS: dict[tuple[str, str], str] = {
    ("acc-northwind", "credential_expiring"): "credentials",
    ("acc-contoso", "credential_expired"): "credentials",
    ("acc-fabrikam", "api_limit_reached"): "api_limits",
    ("acc-fabrikam", "api_limit_approaching"): "api_limits",
    ("acc-globex", "web_visits_dropped"): "web_visits",
    ("acc-globex", "few_pages_tracked"): "web_visits",
    ("acc-initech", "privacy_optout_reminder"): "privacy",
    ("acc-umbrella", "data_sync_delayed"): "sync",
    ("acc-wayne", "credential_expired"): "credentials",
}
RECOVERIES: dict[tuple[str, str], str] = {
    ("acc-contoso", "credential_expired"): "credentials",
    ("acc-umbrella", "data_sync_delayed"): "sync",
}


def expected_recipients(account_id: str, category: str) -> set[str]:
    """The primary administrator and the subscribers of `category`."""
    acct = account(account_id)
    return {acct.primary} | {m.address for m in acct.subscribers if category in m.categories}


def _healthy_baseline(acct: DemoAccount, now: datetime, with_web: bool = True) -> list[Event]:
    """Facts that raise no alert: a named account, yesterday's good sync, steady traffic."""
    events: list[Event] = [{"type": "account", "account": acct.account, "name": acct.name}]
    run = f"{acct.account}-baseline"
    events += [
        {
            "type": "sync_started",
            "account": acct.account,
            "run_id": run,
            "at": iso(now - timedelta(hours=20)),
        },
        {
            "type": "sync_finished",
            "account": acct.account,
            "run_id": run,
            "at": iso(now - timedelta(hours=19)),
            "status": "success",
        },
    ]
    if with_web:
        events += web_visits(acct.account, now, pages=8, weekly_norm=1400, last_week=1400)
    return events


def web_visits(
    account_id: str,
    now: datetime,
    pages: int,
    weekly_norm: int,
    last_week: int,
    last_week_pages: int | None = None,
) -> list[Event]:
    """Daily per-page visits for the 35 days before today: 4 weeks at the norm, then last week."""
    today = now.astimezone(UTC).date()
    events: list[Event] = []
    for back in range(1, 36):
        day: date = today - timedelta(days=back)
        in_last_week = back <= 7
        total = last_week if in_last_week else weekly_norm
        active = (last_week_pages or pages) if in_last_week else pages
        per_page, rest = divmod(total // 7, active)
        for page in range(active):
            visits = per_page + (1 if page < rest else 0)
            if visits:
                events.append(
                    {
                        "type": "web_visits",
                        "account": account_id,
                        "day": day.isoformat(),
                        "page": f"/page-{page}",
                        "visits": visits,
                    }
                )
    return events


def trouble_events(now: datetime) -> list[Event]:
    """Facts that make every customer notification fire."""
    events: list[Event] = []
    for acct in ACCOUNTS:
        # Globex's traffic is all trouble: a later count for a day and page replaces an
        # earlier one, but pages without a later count would keep their healthy numbers.
        events += _healthy_baseline(acct, now, with_web=acct.account != "acc-globex")

    def credential(
        acct: str, system: str, policy: str, changed_days_ago: float | None, valid: bool
    ) -> Event:
        event: Event = {
            "type": "credential",
            "account": acct,
            "system": system,
            "policy": policy,
            "valid": valid,
            "checked_at": iso(now - timedelta(minutes=5)),
        }
        if changed_days_ago is not None:
            event["password_changed_at"] = iso(now - timedelta(days=changed_days_ago))
        return event

    # Northwind: three passwords expiring soon -> one grouped email.
    events += [
        credential("acc-northwind", "salesforce", "expire_90_days", 80, True),
        credential("acc-northwind", "eloqua", "expire_90_days", 81, True),
        # A never-expiring credential that is fine: must not appear anywhere.
        credential("acc-northwind", "hubspot", "never_expire", None, True),
    ]
    # Contoso: Marketo, HubSpot and Pardot fail validation -> one grouped "expired" email
    # (only Salesforce and Eloqua have password policies, so three *expiring* credentials
    # cannot exist for one account; three failing ones can). Marketo is fixed later.
    events += [
        credential("acc-contoso", "marketo", "no_rotation", None, False),
        credential("acc-contoso", "hubspot", "no_rotation", None, False),
        credential("acc-contoso", "pardot", "no_rotation", None, False),
        credential("acc-contoso", "salesforce", "never_expire", None, True),
    ]
    # Fabrikam: HubSpot allowance used up (sync stops), Pardot at 95 %.
    window = iso(now.replace(hour=0, minute=0, second=0, microsecond=0))
    events += [
        {
            "type": "api_usage",
            "account": "acc-fabrikam",
            "platform": "hubspot",
            "used": 250_000,
            "limit": 250_000,
            "window_start": window,
        },
        {
            "type": "api_usage",
            "account": "acc-fabrikam",
            "platform": "pardot",
            "used": 95_000,
            "limit": 100_000,
            "window_start": window,
        },
    ]
    # ...and its HubSpot sync has stalled at the limit: held back by ApiDailyLimitReached.
    events.append(
        {
            "type": "sync_started",
            "account": "acc-fabrikam",
            "run_id": "fabrikam-today",
            "at": iso(now - timedelta(hours=8)),
        }
    )
    # Wayne: the Salesforce password would expire in 5 days, but its check already fails:
    # CredentialExpired holds back CredentialExpiringSoon for the same system.
    events.append(credential("acc-wayne", "salesforce", "expire_90_days", 85, False))
    # Stark: a failing Eloqua check, silenced by an operator.
    events.append(credential("acc-stark", "eloqua", "expire_90_days", 10, False))
    # Globex: the web tag sees a fifth of its norm, on 3 pages only.
    events += web_visits(
        "acc-globex", now, pages=8, weekly_norm=1400, last_week=280, last_week_pages=3
    )
    # Initech: four opt-out requests waiting, the oldest for 9 days.
    for n, days_ago in enumerate((9, 6, 2, 1)):
        events.append(
            {
                "type": "privacy_optout",
                "account": "acc-initech",
                "request_id": f"optout-{n}",
                "status": "pending",
                "received_at": iso(now - timedelta(days=days_ago)),
            }
        )
    # Umbrella: today's sync has been running for 7 hours.
    events.append(
        {
            "type": "sync_started",
            "account": "acc-umbrella",
            "run_id": "umbrella-today",
            "at": iso(now - timedelta(hours=7)),
        }
    )
    return events


def recovery_events(now: datetime) -> list[Event]:
    """Facts that fix the problems whose recovery has an email."""
    return [
        {
            "type": "credential",
            "account": "acc-contoso",
            "system": "marketo",
            "policy": "no_rotation",
            "valid": True,
            "checked_at": iso(now),
        },
        {
            "type": "sync_finished",
            "account": "acc-umbrella",
            "run_id": "umbrella-today",
            "at": iso(now),
            "status": "success",
        },
    ]
