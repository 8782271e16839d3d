"""Every customer notification, end to end: facts in, the right emails out, to the right people.

One stack runs the demo story (stack/scenario.py) from trouble to recovery; the tests below are
steps of that story and run in file order. Emails are identified by the mailer's
X-Sysnotify-Notification / -Phase / -Account headers, never by subject wording.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from stack import scenario
from stack.local import LocalStack
from stack.smtp_sink import ReceivedMail

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

WAIT = 240.0  # seconds; shortened `for:` of up to 1h becomes 60s, plus grouping and delivery


def kind(mail: ReceivedMail) -> tuple[str, str, str]:
    return (
        mail.header("X-Sysnotify-Account"),
        mail.header("X-Sysnotify-Notification"),
        mail.header("X-Sysnotify-Phase"),
    )


def customer_mails(stack: LocalStack, phase: str | None = None) -> list[ReceivedMail]:
    return [m for m in stack.customer_mails() if phase is None or kind(m)[2] == phase]


def recipients_of(stack: LocalStack, account_id: str, notification: str, phase: str) -> list[str]:
    return sorted(
        r
        for m in customer_mails(stack)
        if kind(m) == (account_id, notification, phase)
        for r in m.rcpt_tos
    )


@pytest.fixture(scope="module")
def story(local_stack: LocalStack) -> LocalStack:
    """Recipients registered, Stark silenced, then every account's trouble posted."""
    local_stack.add_recipients(scenario.ACCOUNTS)
    local_stack.amtool(
        "silence",
        "add",
        f"account={scenario.SILENCED_ACCOUNT}",
        "--comment=site maintenance",
        "--author=e2e",
        "--duration=1h",
    )
    local_stack.post_events(scenario.trouble_events(datetime.now(UTC)))

    def all_problems_sent() -> bool:
        return all(
            set(recipients_of(local_stack, acct, notification, "problem"))
            >= scenario.expected_recipients(acct, category)
            for (acct, notification), category in scenario.PROBLEMS.items()
        )

    local_stack.wait_for(all_problems_sent, WAIT, "every problem email")
    return local_stack


def test_each_problem_reaches_exactly_its_recipients_once(story: LocalStack) -> None:
    for (acct, notification), category in scenario.PROBLEMS.items():
        got = recipients_of(story, acct, notification, "problem")
        assert sorted(scenario.expected_recipients(acct, category)) == got, (acct, notification)


def test_grouped_alerts_of_one_account_make_one_email_listing_each_system(
    story: LocalStack,
) -> None:
    contoso = [
        m
        for m in customer_mails(story, "problem")
        if kind(m)[:2] == ("acc-contoso", "credential_expired")
    ]
    assert len(contoso) == 2  # one per recipient, not one per system
    for mail in contoso:
        text = mail.part("text/plain")
        for system in ("Marketo", "HubSpot", "Pardot"):
            assert system in text, (system, text)
    northwind = [
        m
        for m in customer_mails(story, "problem")
        if kind(m)[:2] == ("acc-northwind", "credential_expiring")
    ]
    assert len(northwind) == 2
    assert all(
        "Salesforce" in m.part("text/plain") and "Eloqua" in m.part("text/plain") for m in northwind
    )


def test_inhibited_alerts_send_nothing(story: LocalStack) -> None:
    # Fabrikam's stalled sync and its HubSpot "approaching" are held back by the HubSpot limit.
    assert recipients_of(story, "acc-fabrikam", "data_sync_delayed", "problem") == []
    approaching = [
        m
        for m in customer_mails(story, "problem")
        if kind(m)[:2] == ("acc-fabrikam", "api_limit_approaching")
    ]
    assert approaching and all("HubSpot" not in m.part("text/plain") for m in approaching)
    inhibited = {
        (a["labels"]["account"], a["labels"]["alertname"], a["labels"].get("platform", ""))
        for a in story.alertmanager_alerts()
        if a["status"]["inhibitedBy"]
    }
    assert ("acc-fabrikam", "DataSyncDelayed", "") in inhibited
    assert ("acc-fabrikam", "ApiDailyLimitApproaching", "hubspot") in inhibited


def test_a_failing_soon_expiring_password_is_only_reported_expired(story: LocalStack) -> None:
    assert recipients_of(story, "acc-wayne", "credential_expiring", "problem") == []
    assert recipients_of(story, "acc-wayne", "credential_expired", "problem") == sorted(
        scenario.expected_recipients("acc-wayne", "credentials")
    )


def test_privacy_reminder_reaches_primary_and_privacy_subscribers_only(story: LocalStack) -> None:
    assert recipients_of(story, "acc-initech", "privacy_optout_reminder", "problem") == sorted(
        ["admin@initech.example", "dpo@initech.example"]
    )
    assert not [
        m
        for m in story.mails()
        if "sales-ops@initech.example" in m.rcpt_tos and kind(m)[1] == "privacy_optout_reminder"
    ]


def test_operator_alerts_never_reach_customers(story: LocalStack) -> None:
    customers = {a.primary for a in scenario.ACCOUNTS} | {
        m.address for a in scenario.ACCOUNTS for m in a.subscribers
    }
    operator_mails = [m for m in story.mails() if set(m.rcpt_tos) & set(story.operator_addresses)]
    assert operator_mails, "the Watchdog should have reached the operators"
    for mail in operator_mails:
        assert not set(mail.rcpt_tos) & customers
    for mail in story.customer_mails():
        assert mail.header("X-Sysnotify-Notification") != "operators"
        assert set(mail.rcpt_tos) <= customers


def test_every_email_goes_to_one_recipient_of_its_own_account(story: LocalStack) -> None:
    by_address = {a.primary: a.account for a in scenario.ACCOUNTS}
    by_address |= {m.address: a.account for a in scenario.ACCOUNTS for m in a.subscribers}
    for mail in story.customer_mails():
        assert len(mail.rcpt_tos) == 1
        assert by_address[mail.rcpt_tos[0]] == kind(mail)[0]
        assert mail.header("To") == mail.rcpt_tos[0]


def test_silence_holds_the_email_back(story: LocalStack) -> None:
    silenced = [
        a
        for a in story.alertmanager_alerts()
        if a["labels"].get("account") == scenario.SILENCED_ACCOUNT
    ]
    assert silenced and all(
        a["status"]["state"] == "suppressed" and a["status"]["silencedBy"] for a in silenced
    )
    assert recipients_of(story, scenario.SILENCED_ACCOUNT, "credential_expired", "problem") == []


def test_vanished_data_sends_no_recovery(story: LocalStack) -> None:
    """The exporter stops: every account's series vanish, but nothing is 'resolved'."""
    exporter = story.services["exporter"]
    before = len(story.mails())
    exporter.stop()
    try:
        story.wait_for(
            lambda: any(
                m.header("X-Sysnotify-Notification") == "operators"
                and "SysnotifyExporterDown" in m.part("text/plain")
                for m in story.mails()[before:]
            ),
            WAIT,
            "the operators' exporter-down email",
        )
        # Longer than keep_firing_for (15m -> 15s) plus several group intervals (5m -> 5s):
        # if vanished data looked like a fix, recoveries would have gone out by then.
        time.sleep(40)
        recoveries = [
            kind(m)
            for m in story.mails()[before:]
            if not set(m.rcpt_tos) & set(story.operator_addresses)
            and m.header("X-Sysnotify-Phase") == "recovery"
        ]
        assert recoveries == []
        firing = {a["labels"]["alertname"] for a in story.firing_alerts() if a["state"] == "firing"}
        assert {"CredentialExpired", "DataSyncDelayed", "PrivacyOptOutPending"} <= firing
    finally:
        exporter.start()


def test_recovery_emails_thread_under_their_problem(story: LocalStack) -> None:
    story.post_events(scenario.recovery_events(datetime.now(UTC)))

    def recovered() -> bool:
        return all(
            set(recipients_of(story, acct, notification, "recovery"))
            >= scenario.expected_recipients(acct, category)
            for (acct, notification), category in scenario.RECOVERIES.items()
        )

    story.wait_for(recovered, WAIT, "the recovery emails")
    for (acct, notification), category in scenario.RECOVERIES.items():
        assert recipients_of(story, acct, notification, "recovery") == sorted(
            scenario.expected_recipients(acct, category)
        )
        for recovery in [
            m for m in customer_mails(story, "recovery") if kind(m)[:2] == (acct, notification)
        ]:
            problem = next(
                m
                for m in customer_mails(story, "problem")
                if kind(m)[:2] == (acct, notification) and m.rcpt_tos == recovery.rcpt_tos
            )
            assert recovery.header("In-Reply-To") == problem.header("Message-ID")
            assert problem.header("Message-ID") in recovery.header("References")
    # No recovery for notifications without one (e.g. the expiring passwords, the API limit).
    phases = {kind(m)[1] for m in customer_mails(story, "recovery")}
    assert phases <= {"credential_expired", "data_sync_delayed"}


def test_ending_the_silence_releases_the_held_email(story: LocalStack) -> None:
    query = story.amtool("silence", "query", "-q", f"account={scenario.SILENCED_ACCOUNT}")
    ids = query.stdout.split()
    assert ids
    story.amtool("silence", "expire", *ids)
    story.wait_for(
        lambda: (
            set(recipients_of(story, scenario.SILENCED_ACCOUNT, "credential_expired", "problem"))
            >= scenario.expected_recipients(scenario.SILENCED_ACCOUNT, "credentials")
        ),
        WAIT,
        "the email held back by the silence",
    )


def test_no_email_was_sent_twice(story: LocalStack) -> None:
    mails = story.customer_mails()
    ids = Counter(m.header("Message-ID") for m in mails)
    assert [i for i, n in ids.items() if n > 1] == []
    # Reminders are intended repeats; anything else must be one email per recipient and cause.
    firsts = Counter((kind(m), m.rcpt_tos) for m in mails if kind(m)[2] != "reminder")
    assert [k for k, n in firsts.items() if n > 1] == []
