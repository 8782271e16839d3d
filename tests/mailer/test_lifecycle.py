"""Integrations disconnected and accounts offboarded: through the admin API and the CLI, nothing
is mailed about what the customer ended, and starting again mails only new problems."""

from __future__ import annotations

from typing import Any

import pytest

from sysnotify.mailer.web.app import mailer_of
from tests.support.alertmanager import fixture_payload, with_starts_at
from tests.support.clocks import FakeClock
from tests.support.mailer_app import PRIMARY, admin, deliver, metric, post, register
from tests.support.smtp import SmtpServer

# credential_expired_*: CredentialExpired of acc-1001's eloqua; the grouped one: acc-1002's
# hubspot, marketo and salesforce; api_limit_reached_firing: acc-2002's hubspot platform.
LATER = "2026-11-28T09:00:00Z"  # after every fixture's startsAt and the commands' clock


def test_a_disconnected_integration_gets_no_recovery_and_no_reminder(
    app: Any, client: Any, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"))
    deliver(app)
    assert len(smtp_server.messages) == 3

    answer = admin(client, "POST", "/accounts/acc-1001/integrations/eloqua/disconnect")
    assert answer.status_code == 200
    assert answer.json == {
        "account": "acc-1001",
        "system": "eloqua",
        "state": "disconnected",
        "changed": True,
        "episodes_ended": 1,
        "emails_cancelled": 0,
        "emails_shortened": 0,
        "recipients_removed": 0,
    }
    clock.advance(7200)  # past the duplicate window: an unchanged firing group would remind
    assert post(client, fixture_payload("credential_expired_firing")).json["queued"] == 0
    resolved = post(client, fixture_payload("credential_expired_resolved")).json
    assert resolved["queued"] == 0
    deliver(app)
    assert len(smtp_server.messages) == 3
    (note, *_) = admin(client, "GET", "/undeliverable").json["undeliverable"]
    assert (note["account"], note["phase"], note["reason"]) == (
        "acc-1001",
        "recovery",
        "integration_disconnected",
    )


def test_disconnecting_withdraws_the_unsent_emails_about_it(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    assert post(client, fixture_payload("credential_expired_firing")).json["queued"] == 3
    answer = admin(client, "POST", "/accounts/acc-1001/integrations/eloqua/disconnect").json
    assert answer["emails_cancelled"] == 3
    assert deliver(app) == {}
    assert smtp_server.messages == []
    cancelled = admin(client, "GET", "/emails?status=failed").json["emails"]
    assert {e["last_error"] for e in cancelled} == {"cancelled: integration_disconnected"}
    assert (
        metric(
            client, "sysnotify_mailer_emails_cancelled_total", 'notification="credential_expired"'
        )
        == 3
    )
    # The delivery alert of the operators counts emails given up on, not these.
    assert (
        metric(client, "sysnotify_mailer_emails_failed_total", 'notification="credential_expired"')
        == 0
    )


def test_an_email_listing_several_integrations_goes_out_without_the_disconnected_one(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1002")
    post(client, fixture_payload("credential_expired_grouped_firing"))
    answer = admin(client, "POST", "/accounts/acc-1002/integrations/salesforce/disconnect").json
    assert (answer["emails_cancelled"], answer["emails_shortened"]) == (0, 3)
    deliver(app)
    (message,) = smtp_server.to(PRIMARY)
    text = message.get_body(("plain",)).get_content()
    assert "Marketo" in text and "HubSpot" in text
    assert "Salesforce" not in text


def test_reconnecting_mails_only_a_problem_that_starts_afterwards(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"))
    deliver(app)
    admin(client, "POST", "/accounts/acc-1001/integrations/eloqua/disconnect")
    answer = admin(client, "POST", "/accounts/acc-1001/integrations/eloqua/connect").json
    assert (answer["state"], answer["changed"]) == ("connected", True)
    # The old alert, still firing for a while, is old news ...
    assert post(client, fixture_payload("credential_expired_firing")).json["queued"] == 0
    # ... a new problem of the new connection is a new episode, with a new email.
    fresh = with_starts_at(fixture_payload("credential_expired_firing"), LATER)
    assert post(client, fresh).json["queued"] == 3
    deliver(app)
    first, second = smtp_server.to(PRIMARY)
    assert second["X-Sysnotify-Phase"] == "problem"
    assert second["Message-ID"] != first["Message-ID"]
    assert second["In-Reply-To"] is None


def test_other_integrations_and_accounts_are_not_touched(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    register(app, "acc-2002")
    admin(client, "POST", "/accounts/acc-1001/integrations/salesforce/disconnect")
    admin(client, "POST", "/accounts/acc-2002/integrations/eloqua/disconnect")
    admin(client, "POST", "/accounts/acc-9999/offboard")
    assert post(client, fixture_payload("credential_expired_firing")).json["queued"] == 3
    assert post(client, fixture_payload("api_limit_reached_firing")).json["queued"] == 2


def test_an_offboarded_account_gets_no_email_of_any_kind(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    assert post(client, fixture_payload("credential_expired_firing")).json["queued"] == 3
    answer = admin(client, "POST", "/accounts/acc-1001/offboard").json
    assert answer == {
        "account": "acc-1001",
        "state": "offboarded",
        "changed": True,
        "episodes_ended": 1,
        "emails_cancelled": 3,
        "emails_shortened": 0,
        "recipients_removed": 4,
    }
    assert admin(client, "GET", "/accounts/acc-1001/recipients").json["recipients"] == []
    register(app, "acc-1001")  # even with recipients registered again while offboarded
    fresh = with_starts_at(fixture_payload("credential_expired_firing"), LATER)
    for payload in (fixture_payload("credential_expired_resolved"), fresh):
        answer = post(client, payload).json
        assert (answer["queued"], answer["undeliverable"]) == (0, 1)
    deliver(app)
    assert smtp_server.messages == []
    reasons = {n["reason"] for n in admin(client, "GET", "/undeliverable").json["undeliverable"]}
    assert reasons == {"account_offboarded"}
    status = admin(client, "GET", "/accounts/acc-1001/lifecycle").json
    assert status["offboarded"] is True


def test_an_onboarded_account_is_mailed_new_problems_only(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"))
    deliver(app)
    admin(client, "POST", "/accounts/acc-1001/offboard")
    assert admin(client, "POST", "/accounts/acc-1001/onboard").json["changed"] is True
    register(app, "acc-1001")
    assert post(client, fixture_payload("credential_expired_firing")).json["queued"] == 0
    assert post(client, fixture_payload("credential_expired_resolved")).json["queued"] == 0
    fresh = with_starts_at(fixture_payload("credential_expired_firing"), LATER)
    assert post(client, fresh).json["queued"] == 3


def test_repeating_a_command_changes_nothing_more(app: Any, client: Any) -> None:
    path = "/accounts/acc-1001/integrations/eloqua"
    assert admin(client, "POST", f"{path}/disconnect").json["changed"] is True
    assert admin(client, "POST", f"{path}/disconnect").json["changed"] is False
    status = admin(client, "GET", "/accounts/acc-1001/lifecycle").json
    assert [d["system"] for d in status["disconnected"]] == ["eloqua"]
    assert admin(client, "POST", f"{path}/connect").json["changed"] is True
    assert admin(client, "POST", f"{path}/connect").json["changed"] is False
    assert admin(client, "GET", "/accounts/acc-1001/lifecycle").json["disconnected"] == []


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/accounts/acc-1/integrations/dynamics/disconnect", 400, "unknown system 'dynamics'"),
        ("/accounts/acc%201/offboard", 400, "invalid account id"),
        ("/accounts/acc-1/integrations/eloqua/unplug", 404, ""),
    ],
)
def test_lifecycle_api_errors_are_json_and_apply_nothing(
    app: Any, client: Any, path: str, status: int, message: str
) -> None:
    answer = admin(client, "POST", path)
    assert answer.status_code == status
    assert message in answer.json["error"]
    assert admin(client, "GET", "/accounts/acc-1/lifecycle").json["disconnected"] == []


def test_lifecycle_api_needs_the_admin_token(client: Any) -> None:
    answer = admin(client, "POST", "/accounts/acc-1/offboard", token="wrong-token-000000")
    assert answer.status_code == 401
    assert admin(client, "GET", "/accounts/acc-1/lifecycle").json["offboarded"] is False


def test_cli_runs_the_same_commands(
    cli: Any, capsys: pytest.CaptureFixture[str], make_app: Any
) -> None:
    assert cli("recipients", "set-primary", "acc-7", "boss@corp.example") == 0
    assert cli("integration", "disconnect", "acc-7", "salesforce") == 0
    assert cli("account", "offboard", "acc-7") == 0
    assert "acc-7: offboarded; 0 episode(s) ended" in capsys.readouterr().out
    assert cli("account", "status", "acc-7") == 0
    assert capsys.readouterr().out.splitlines() == ["acc-7\toffboarded", "salesforce\tdisconnected"]
    app = make_app()  # same store file as the CLI's config
    status = admin(app.test_client(), "GET", "/accounts/acc-7/lifecycle").json
    assert status["offboarded"] is True
    assert cli("account", "onboard", "acc-7") == 0
    assert cli("integration", "connect", "acc-7", "salesforce") == 0
    assert admin(app.test_client(), "GET", "/accounts/acc-7/lifecycle").json == {
        "account": "acc-7",
        "offboarded": False,
        "offboarded_since": None,
        "disconnected": [],
    }


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("integration", "disconnect", "acc-7", "dynamics"), 1, "unknown system 'dynamics'"),
        (("account", "offboard", "acc 7"), 1, "invalid account id"),
        (("integration", "disconnect", "acc-7"), 2, "required: system"),
        (("account", "retire", "acc-7"), 2, "invalid choice"),
    ],
)
def test_cli_errors_are_clear_and_exit_non_zero(
    cli: Any, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], code: int, message: str
) -> None:
    try:
        assert cli(*argv) == code
    except SystemExit as exit:  # argparse
        assert exit.code == code
    assert message in capsys.readouterr().err


def test_an_episode_opened_before_the_upgrade_ends_when_its_alert_arrives(
    app: Any, client: Any, smtp_server: SmtpServer
) -> None:
    register(app, "acc-1001")
    post(client, fixture_payload("credential_expired_firing"))
    deliver(app)
    # Episodes written before schema 7 kept no labels: a disconnect cannot find them by system.
    with mailer_of(app).store.db.write() as tx:
        tx.execute("UPDATE alert_state SET labels = ''")
    answer = admin(client, "POST", "/accounts/acc-1001/integrations/eloqua/disconnect").json
    assert answer["episodes_ended"] == 0
    assert post(client, fixture_payload("credential_expired_resolved")).json["queued"] == 0
    deliver(app)
    assert len(smtp_server.messages) == 3  # the problem only
