"""An integration disconnected and an account offboarded while their alerts fire, on the whole
stack (exporter, Prometheus with the shipped rules, Alertmanager, the mailer, an SMTP sink;
timings shortened 60 times). The platform tells both the exporter (an event) and the mailer
(an admin command), as docs/contracts.md asks.

The exporter stops the series, so the alert resolves (after keep_firing_for) and Alertmanager
sends the resolved notice: the mailer records it as undeliverable with the reason, and the
customer gets no "working again" for a fix they never made, nor anything else.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from stack.local import LocalStack
from stack.scenario import DemoAccount, Event, iso

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WAIT = 120.0
SETTLE = 12.0  # more than two group intervals (5 s): an email would be out by then


def now() -> str:
    return iso(datetime.now(UTC))


def failing_salesforce(account: str) -> list[Event]:
    return [
        {"type": "account", "account": account, "name": f"Customer {account}"},
        {
            "type": "credential",
            "account": account,
            "system": "salesforce",
            "policy": "never_expire",
            "valid": False,
            "checked_at": now(),
        },
    ]


def phases(stack: LocalStack, account: str) -> Counter[str]:
    return Counter(
        m.header("X-Sysnotify-Phase")
        for m in stack.customer_mails()
        if m.header("X-Sysnotify-Account") == account
    )


def set_aside(stack: LocalStack, account: str, reason: str) -> list[dict[str, Any]]:
    """The resolved notices the mailer recorded as undeliverable for `reason`."""
    return [
        note
        for note in stack.admin("get", "/undeliverable?limit=1000")["undeliverable"]
        if (note["account"], note["phase"], note["reason"]) == (account, "recovery", reason)
    ]


def fire_and_mail(stack: LocalStack, account: DemoAccount) -> None:
    stack.add_recipients([account])
    stack.post_events(failing_salesforce(account.account))
    stack.wait_for(lambda: phases(stack, account.account)["problem"], WAIT, "the problem email")


def test_a_disconnected_integration_gets_no_recovery_email(local_stack: LocalStack) -> None:
    stack = local_stack
    customer = DemoAccount("acc-unplug", "Pied Piper", "admin@piedpiper.example", ())
    fire_and_mail(stack, customer)

    stack.post_events(
        [
            {
                "type": "integration_disconnected",
                "account": customer.account,
                "system": "salesforce",
                "at": now(),
            }
        ]
    )
    answer = stack.admin("post", f"/accounts/{customer.account}/integrations/salesforce/disconnect")
    assert answer["episodes_ended"] == 1
    stack.wait_for(
        lambda: set_aside(stack, customer.account, "integration_disconnected"),
        WAIT,
        "Alertmanager's resolved notice, set aside",
    )
    time.sleep(SETTLE)
    assert phases(stack, customer.account) == {"problem": 1}


def test_an_offboarded_account_gets_no_email_of_any_kind(local_stack: LocalStack) -> None:
    stack = local_stack
    customer = DemoAccount("acc-leaving", "Aviato", "admin@aviato.example", ())
    fire_and_mail(stack, customer)

    stack.post_events([{"type": "account_offboarded", "account": customer.account, "at": now()}])
    answer = stack.admin("post", f"/accounts/{customer.account}/offboard")
    assert (answer["episodes_ended"], answer["recipients_removed"]) == (1, 1)
    stack.wait_for(
        lambda: set_aside(stack, customer.account, "account_offboarded"),
        WAIT,
        "Alertmanager's resolved notice, set aside",
    )
    # Late facts of the account change nothing: they are dropped.
    stack.post_events(failing_salesforce(customer.account))
    time.sleep(SETTLE)
    assert phases(stack, customer.account) == {"problem": 1}
    assert not [a for a in stack.firing_alerts() if a["labels"].get("account") == customer.account]
