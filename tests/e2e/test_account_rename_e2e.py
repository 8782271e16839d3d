"""Renaming an account while its alert fires, on the whole stack (exporter, Prometheus with the
shipped rules, Alertmanager, the mailer, an SMTP sink; timings shortened 60 times).

The name is an annotation, not a label: the alert keeps its identity in Prometheus and
Alertmanager, nothing is mailed for the rename, and the next email (here the recovery) names
the account anew.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from stack.local import LocalStack
from stack.scenario import DemoAccount, Event, iso

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ACCOUNT = DemoAccount("acc-rename", "Hooli", "admin@hooli.example", ())
NEW_NAME = "Hooli XYZ"
WAIT = 120.0


def credential(valid: bool) -> Event:
    return {
        "type": "credential",
        "account": ACCOUNT.account,
        "system": "marketo",
        "policy": "no_rotation",
        "valid": valid,
        "checked_at": iso(datetime.now(UTC)),
    }


def named(name: str) -> Event:
    return {"type": "account", "account": ACCOUNT.account, "name": name}


def alerts_in_prometheus(stack: LocalStack) -> list[dict[str, object]]:
    return [
        a
        for a in stack.firing_alerts()
        if a["labels"].get("account") == ACCOUNT.account  # type: ignore[attr-defined]
    ]


def phases(stack: LocalStack) -> Counter[str]:
    return Counter(
        m.header("X-Sysnotify-Phase")
        for m in stack.customer_mails()
        if m.header("X-Sysnotify-Account") == ACCOUNT.account
    )


def test_renaming_an_account_while_its_alert_fires_sends_nothing_and_names_it_anew(
    local_stack: LocalStack,
) -> None:
    stack = local_stack
    stack.add_recipients([ACCOUNT])
    stack.post_events([named(ACCOUNT.name), credential(valid=False)])
    (problem,) = stack.wait_for(
        lambda: [m for m in stack.customer_mails() if ACCOUNT.primary in m.rcpt_tos],
        WAIT,
        "the problem email",
    )
    assert ACCOUNT.name in problem.subject

    stack.post_events([named(NEW_NAME)])

    def renamed_in_prometheus() -> bool:
        alerts = alerts_in_prometheus(stack)
        return bool(alerts) and all(
            a["annotations"].get("account_name") == NEW_NAME  # type: ignore[attr-defined]
            for a in alerts
        )

    stack.wait_for(renamed_in_prometheus, WAIT, "the new name in the alert's annotation")
    (alert,) = alerts_in_prometheus(stack)  # the same alert: no second one pending
    assert alert["state"] == "firing" and "account_name" not in alert["labels"]  # type: ignore[operator]
    time.sleep(12)  # more than two group intervals (5 s): an email for the rename would be out
    assert phases(stack) == {"problem": 1}

    stack.post_events([credential(valid=True)])
    stack.wait_for(lambda: phases(stack)["recovery"], WAIT, "the recovery email")
    time.sleep(6)
    assert phases(stack) == {"problem": 1, "recovery": 1}
    (recovery,) = [m for m in stack.customer_mails() if m.header("X-Sysnotify-Phase") == "recovery"]
    assert NEW_NAME in recovery.subject
    assert recovery.header("In-Reply-To") == problem.header("Message-ID")
