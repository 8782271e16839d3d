"""Alertmanager and Prometheus restarted while customer alerts fire, and an account whose data
went stale: the whole stack on loopback (stack.local.LocalStack, timings shortened 60 times).

- Restarts: while three accounts' CredentialExpired alerts fire, Alertmanager is restarted, then
  Prometheus. No recovery email goes out for the alert that still fires (no false recovery);
  the alert fixed afterwards, and the one fixed while Alertmanager was down, each get their
  recovery email exactly once (none lost); no problem email is sent twice.
- Stale data: one account's last event was applied 27 hours ago (its feed stopped). The
  operators get SysnotifyAccountDataStale naming it; the account's own people get nothing.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stack.local import LocalStack
from stack.scenario import DemoAccount, Event, Member, iso
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.events import validate_events
from sysnotify.exporter.store.backends import open_fact_store
from tests.support.faults import report

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

STEADY = DemoAccount(
    "acc-steady",
    "Steady Co",
    "admin@steady.example",
    (Member("crm@steady.example", ("credentials",)),),
)
FIXED = DemoAccount(
    "acc-fixed", "Fixed Co", "admin@fixed.example", (Member("crm@fixed.example", ("credentials",)),)
)
FIXED_DURING_OUTAGE = DemoAccount(
    "acc-outage",
    "Outage Co",
    "admin@outage.example",
    (Member("crm@outage.example", ("credentials",)),),
)
STALE = DemoAccount(
    "acc-stale",
    "Stale Co",
    "admin@stale.example",
    (Member("crm@stale.example", ("credentials", "sync")),),
)
FIRING = (STEADY, FIXED, FIXED_DURING_OUTAGE)
SYSTEM = {"acc-steady": "marketo", "acc-fixed": "hubspot", "acc-outage": "pardot"}
WAIT = 180.0


def credential(account: str, valid: bool, at: datetime) -> Event:
    return {
        "type": "credential",
        "account": account,
        "system": SYSTEM.get(account, "hubspot"),
        "policy": "no_rotation",
        "valid": valid,
        "checked_at": iso(at),
    }


def seed_stale_account(db: Path) -> None:
    """The stale account's facts, applied 27 hours ago (more than the 26 h threshold)."""
    then = datetime.now(UTC) - timedelta(hours=27)
    events, errors = validate_events(
        [
            {"type": "account", "account": STALE.account, "name": STALE.name},
            credential(STALE.account, True, then),
        ],
        ExporterConfig().event_window(time.time()),
    )
    assert not errors
    store = open_fact_store(db, clock=then.timestamp)
    store.apply(events)
    store.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, binary: Any) -> Iterator[LocalStack]:
    for name in ("prometheus", "alertmanager"):
        binary(name)
    workdir = tmp_path_factory.mktemp("faults-stack")
    seed_stale_account(workdir / "exporter.db")  # LocalStack's exporter opens this file
    local = LocalStack(workdir)
    try:
        local.start()
    except Exception:
        for log in sorted(workdir.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    try:
        local.add_recipients(FIRING + (STALE,))
        yield local
    finally:
        local.stop()


def customer_phases(stack: LocalStack) -> collections.Counter[tuple[str, str, str]]:
    """(account, recipient, phase) -> customer emails received."""
    return collections.Counter(
        (m.header("X-Sysnotify-Account"), m.rcpt_tos[0], m.header("X-Sysnotify-Phase"))
        for m in stack.customer_mails()
    )


def people(account: DemoAccount) -> list[str]:
    return [account.primary] + [m.address for m in account.subscribers]


def everyone_got(stack: LocalStack, account: DemoAccount, phase: str) -> bool:
    counts = customer_phases(stack)
    return all(counts[(account.account, person, phase)] for person in people(account))


def in_alertmanager(stack: LocalStack, accounts: tuple[DemoAccount, ...]) -> bool:
    try:
        present = {
            a["labels"].get("account")
            for a in stack.alertmanager_alerts()
            if a["status"]["state"] == "active"
        }
    except Exception:  # noqa: BLE001 - still starting
        return False
    return {a.account for a in accounts} <= present


def firing_in_prometheus(stack: LocalStack) -> set[str]:
    try:
        return {
            a["labels"]["account"]
            for a in stack.firing_alerts()
            if a["labels"].get("alertname") == "CredentialExpired" and a["state"] == "firing"
        }
    except Exception:  # noqa: BLE001 - still starting
        return set()


def settle(stack: LocalStack, seconds: float) -> None:
    """Lets several group intervals (5 s here) pass: a wrong email would be sent meanwhile."""
    del stack
    time.sleep(seconds)


def test_restarts_send_no_false_recovery_and_lose_no_real_one(stack: LocalStack) -> None:
    now = datetime.now(UTC)
    stack.post_events(
        [{"type": "account", "account": a.account, "name": a.name} for a in FIRING]
        + [credential(a.account, False, now) for a in FIRING]
    )
    stack.wait_for(
        lambda: all(everyone_got(stack, a, "problem") for a in FIRING), WAIT, "the problem emails"
    )

    alertmanager, prometheus = stack.services["alertmanager"], stack.services["prometheus"]
    alertmanager.stop()
    alertmanager.start()
    # Alertmanager keeps alerts in memory only: Prometheus re-sends them (resend delay 1m).
    stack.wait_for(lambda: in_alertmanager(stack, FIRING), WAIT, "the alerts back in Alertmanager")
    settle(stack, 12)
    prometheus.stop()
    prometheus.start()
    stack.wait_for(
        lambda: firing_in_prometheus(stack) >= {a.account for a in FIRING},
        WAIT,
        "the alerts firing again in Prometheus",
    )
    settle(stack, 12)
    assert not any(phase == "recovery" for _, _, phase in customer_phases(stack)), (
        "a restart produced a recovery email"
    )

    # A real fix with everything up: its recovery arrives.
    stack.post_events([credential(FIXED.account, True, datetime.now(UTC))])
    stack.wait_for(lambda: everyone_got(stack, FIXED, "recovery"), WAIT, "the recovery email")

    # A real fix while Alertmanager is down: the recovery still arrives once it is back.
    alertmanager.stop()
    try:
        stack.post_events([credential(FIXED_DURING_OUTAGE.account, True, datetime.now(UTC))])
        stack.wait_for(
            lambda: FIXED_DURING_OUTAGE.account not in firing_in_prometheus(stack),
            WAIT,
            "the alert resolved in Prometheus",
        )
        settle(stack, 5)
    finally:
        alertmanager.start()
    stack.wait_for(
        lambda: everyone_got(stack, FIXED_DURING_OUTAGE, "recovery"),
        WAIT,
        "the recovery email after the outage",
    )
    settle(stack, 12)

    counts = customer_phases(stack)
    expected = {(a.account, person, "problem"): 1 for a in FIRING for person in people(a)}
    expected |= {
        (a.account, person, "recovery"): 1
        for a in (FIXED, FIXED_DURING_OUTAGE)
        for person in people(a)
    }
    ids = collections.Counter(m.header("Message-ID") for m in stack.customer_mails())
    report(
        "restarts",
        expected=sum(expected.values()),
        delivered=sum(counts.values()),
        doubled=sum(n - 1 for n in ids.values()),
        reminders=sum(n for k, n in counts.items() if k[2] == "reminder"),
        false_recoveries=counts[(STEADY.account, STEADY.primary, "recovery")],
    )
    assert {k: n for k, n in counts.items() if k[0] != STALE.account} == expected
    assert set(ids.values()) == {1}


def test_stale_account_data_tells_the_operators_and_not_the_customer(stack: LocalStack) -> None:
    def stale_mail() -> list[Any]:
        return [
            m
            for m in stack.mails()
            if m.header("X-Sysnotify-Notification") == "operators"
            and "SysnotifyAccountDataStale" in m.part("text/plain")
        ]

    mails = stack.wait_for(stale_mail, WAIT, "the operators' stale-data email")
    assert all(set(m.rcpt_tos) <= set(stack.operator_addresses) for m in mails)
    assert STALE.account in mails[0].part("text/plain")
    settle(stack, 6)  # any customer email about it would be out by now
    for mail in stack.mails():
        assert not set(mail.rcpt_tos) & set(people(STALE)), mail.subject
        if mail.header("X-Sysnotify-Account") == STALE.account:
            pytest.fail(f"a customer email for the stale account: {mail.subject}")
    # Stale is not vanished: its facts are still published, nothing "resolved" for it.
    assert stack.query(f'abm_account_info{{account="{STALE.account}"}}')
    report("stale_data", operator_emails=len(mails), customer_emails_for_stale_account=0)
