"""Abuse: nobody changes state without its token, hostile label values stay data, and no
account's recipients are ever shown or mailed for another account.

Each test works on the real apps (mailer and exporter Flask apps in process, the mailer's real
SMTP sender against a recording aiosmtpd server); test_no_secret_or_address_leaks runs the
mailer under gunicorn and reads its log file.
"""

from __future__ import annotations

import copy
import hmac
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.routing import Rule

import sysnotify.auth
from stack.process import free_port
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.config import load_config as load_exporter_config
from sysnotify.exporter.store.backends import open_fact_store
from sysnotify.exporter.web.app import create_app as create_exporter_app
from sysnotify.mailer.config import config_from_mapping
from sysnotify.mailer.web.app import create_app, mailer_of
from tests.support.alertmanager import fixture_payload
from tests.support.mailer_config import (
    ADMIN_TOKEN,
    TOKENS_ENV,
    WEBHOOK_TOKEN,
    config_mapping,
    write_mailer_config,
)
from tests.support.mailer_process import mailer_service
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.integration

READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}
# Routes that are public on purpose: they only read.
PUBLIC_READS = ("/healthz", "/readyz", "/metrics", "/preview", "/")
ATTACKER = "attacker@evil.example"
INGEST_TOKEN = "ingest-abuse-token-0123456789"


@pytest.fixture
def mailer_app(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Any]:
    config = config_from_mapping(
        config_mapping(tmp_path, smtp_server.port), TOKENS_ENV, base_dir=tmp_path
    )
    app = create_app(config, start_delivery=False)
    yield app
    for worker in mailer_of(app).workers:
        worker.sender.close()
    mailer_of(app).store.close()


@pytest.fixture
def exporter_app(tmp_path: Path) -> Iterator[Any]:
    store = open_fact_store(tmp_path / "facts.db")
    yield create_exporter_app(ExporterConfig(ingest_token=INGEST_TOKEN), store=store)
    store.close()


def sample_url(rule: Rule) -> str:
    """The rule's URL with every variable filled in with a plausible value."""
    values = {
        name: "acc-1001"
        if name == "account"
        else "x@customer.example"
        if name == "address"
        else "credential_expired"
        for name in rule.arguments
    }
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


def state_changing(app: Any) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - READ_ONLY_METHODS):
            routes.append((method, sample_url(rule)))
    return routes


def admin(client: Any, method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN) -> Any:
    return client.open(
        f"/api/v1{path}", method=method, json=body, headers={"Authorization": f"Bearer {token}"}
    )


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        f"Basic {WEBHOOK_TOKEN}",
        f"Bearer {INGEST_TOKEN}x",
    ],
)
def test_every_state_changing_route_needs_its_token(
    mailer_app: Any, exporter_app: Any, authorization: str | None
) -> None:
    routes = [(mailer_app, method, url) for method, url in state_changing(mailer_app)]
    routes += [(exporter_app, method, url) for method, url in state_changing(exporter_app)]
    # Both apps' state-changing routes, found from their URL maps (a new one is checked too).
    assert {(m, u) for _, m, u in routes} >= {
        ("POST", "/alertmanager/webhook"),
        ("POST", "/operators/webhook"),
        ("POST", "/api/v1/accounts/acc-1001/recipients"),
        ("PUT", "/api/v1/accounts/acc-1001/primary"),
        ("DELETE", "/api/v1/accounts/acc-1001/recipients/x@customer.example"),
        ("POST", "/api/v1/events"),
    }
    headers = {} if authorization is None else {"Authorization": authorization}
    for app, method, url in routes:
        response = app.test_client().open(url, method=method, headers=headers, json={})
        assert response.status_code == 401, (method, url, response.status_code)
        assert response.get_json()["error"]


def test_admin_reads_need_the_admin_token_too(mailer_app: Any) -> None:
    client = mailer_app.test_client()
    for rule in mailer_app.url_map.iter_rules():
        url = sample_url(rule)
        if (
            rule.endpoint == "static"
            or url.startswith(PUBLIC_READS)
            and not url.startswith("/api/")
        ):
            continue
        if "GET" in (rule.methods or set()):
            for token in (None, WEBHOOK_TOKEN):  # the webhook token is not the admin token
                headers = {} if token is None else {"Authorization": f"Bearer {token}"}
                assert client.get(url, headers=headers).status_code == 401, url


def test_admin_api_is_closed_without_a_configured_token(tmp_path: Path) -> None:
    config = config_from_mapping(
        config_mapping(tmp_path, 25), {"SYSNOTIFY_WEBHOOK_TOKEN": WEBHOOK_TOKEN}, base_dir=tmp_path
    )
    app = create_app(config, start_delivery=False)
    try:
        for token in ("", "None", ADMIN_TOKEN):
            response = admin(
                app.test_client(),
                "PUT",
                "/accounts/acc-1/primary",
                {"address": ATTACKER},
                token=token,
            )
            assert response.status_code == 403
        assert mailer_of(app).registry_api.list("acc-1") == []
    finally:
        mailer_of(app).store.close()


def test_tokens_are_compared_in_constant_time(
    mailer_app: Any, exporter_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each token check goes through hmac.compare_digest, and its answer decides: a patched
    compare_digest that says "equal" lets a wrong token in."""
    calls: list[tuple[bytes, bytes]] = []

    def says_equal(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return True

    check = inspect.getsource(sysnotify.auth.check_bearer_token)
    assert "hmac.compare_digest" in check
    assert "==" not in check.split('"""')[2]
    monkeypatch.setattr(hmac, "compare_digest", says_equal)
    wrong = {"Authorization": "Bearer not-the-token"}
    mailer_client = mailer_app.test_client()
    assert (
        mailer_client.post(
            "/alertmanager/webhook",
            json=fixture_payload("credential_expired_firing"),
            headers=wrong,
        ).status_code
        == 200
    )
    assert mailer_client.get("/api/v1/accounts/acc-1/recipients", headers=wrong).status_code == 200
    assert (
        exporter_app.test_client()
        .post("/api/v1/events", json={"events": []}, headers=wrong)
        .status_code
        == 200
    )
    assert len(calls) == 3
    assert all(given == b"not-the-token" for given, _ in calls)
    assert {expected for _, expected in calls} == {
        WEBHOOK_TOKEN.encode(),
        ADMIN_TOKEN.encode(),
        INGEST_TOKEN.encode(),
    }


def test_tokens_come_from_the_environment_or_files(tmp_path: Path) -> None:
    files = {}
    for name, value in (
        ("webhook", "webhook-from-file"),
        ("admin", "admin-from-file"),
        ("ingest", "ingest-token-from-a-file"),
    ):
        files[name] = tmp_path / f"{name}.token"
        files[name].write_text(value + "\n")
    from_files = config_from_mapping(
        config_mapping(tmp_path, 25),
        {
            "SYSNOTIFY_WEBHOOK_TOKEN_FILE": str(files["webhook"]),
            "SYSNOTIFY_ADMIN_TOKEN_FILE": str(files["admin"]),
        },
        base_dir=tmp_path,
    )
    assert (from_files.webhook.token, from_files.admin.token) == (
        "webhook-from-file",
        "admin-from-file",
    )
    in_config = config_from_mapping(
        config_mapping(
            tmp_path,
            25,
            webhook={"token_file": "webhook.token"},
            admin={"token_file": str(files["admin"])},
        ),
        {},
        base_dir=tmp_path,
    )
    assert (in_config.webhook.token, in_config.admin.token) == (
        "webhook-from-file",
        "admin-from-file",
    )
    from_env = config_from_mapping(config_mapping(tmp_path, 25), TOKENS_ENV, base_dir=tmp_path)
    assert (from_env.webhook.token, from_env.admin.token) == (WEBHOOK_TOKEN, ADMIN_TOKEN)
    assert (
        load_exporter_config(env={"SYSNOTIFY_INGEST_TOKEN_FILE": str(files["ingest"])}).ingest_token
        == "ingest-token-from-a-file"
    )
    assert (
        load_exporter_config(
            env={"SYSNOTIFY_INGEST_TOKEN": "ingest-from-the-environment"}
        ).ingest_token
        == "ingest-from-the-environment"
    )
    for config in (from_files, in_config, from_env):
        assert "from-file" not in repr(config) and WEBHOOK_TOKEN not in repr(config)
    assert "ingest-token-from-a-file" not in repr(
        load_exporter_config(env={"SYSNOTIFY_INGEST_TOKEN_FILE": str(files["ingest"])})
    )


# -- hostile label and annotation values ----------------------------------------------------

INJECTION = f"x\r\nBcc: {ATTACKER}\r\nX-Injected: yes\r\n\r\n<b>body</b>"
HTML = "<script>alert('owned')</script><img src=x onerror=alert(1)>"


def hostile_payload() -> dict[str, Any]:
    payload = copy.deepcopy(fixture_payload("credential_expired_firing"))
    alert = payload["alerts"][0]
    del alert["labels"]["account_name"]  # the rules' annotation names the account
    alert["annotations"]["account_name"] = f"Globex{INJECTION}{HTML}"
    alert["labels"]["system"] = f"salesforce{INJECTION}"
    alert["annotations"]["summary"] = f"Expired{INJECTION}{HTML}"
    alert["annotations"]["description"] = f"{HTML}{INJECTION}"
    payload["commonLabels"] = payload["commonAnnotations"] = {}
    return payload


def test_crlf_and_html_in_labels_cannot_inject_headers_or_markup(
    mailer_app: Any, smtp_server: SmtpServer
) -> None:
    client = mailer_app.test_client()
    account = "acc-1001"
    assert (
        admin(
            client, "PUT", f"/accounts/{account}/primary", {"address": "admin@globex.example"}
        ).status_code
        == 200
    )
    response = client.post(
        "/alertmanager/webhook",
        json=hostile_payload(),
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
    )
    assert response.status_code == 200 and response.get_json()["queued"] == 1
    outcome = mailer_of(mailer_app).workers[0].drain()
    assert outcome == {"sent": 1}
    [received] = smtp_server.messages
    # The SMTP envelope and the headers name only the registered recipient.
    assert received.rcpt_tos == ["admin@globex.example"]
    message = received.message
    assert ATTACKER not in str(message["To"]) and message["Bcc"] is None
    assert message["X-Injected"] is None
    assert set(message.keys()) <= {
        "Subject",
        "From",
        "To",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "X-Auto-Response-Suppress",
        "MIME-Version",
        "Content-Type",
        "X-Sysnotify-Notification",
        "X-Sysnotify-Phase",
        "X-Sysnotify-Account",
    }
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_content()
    assert "<script>" not in html and "<img src=x" not in html and "<b>body</b>" not in html
    assert "&lt;script&gt;" in html


# -- recipient addresses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        f"admin@globex.example\r\nBcc: {ATTACKER}",
        f"Admin <{ATTACKER}>",
        f"a@b.example, {ATTACKER}",
        "not-an-address",
        "a@b",
        "@globex.example",
        "a@@globex.example",
        "a b@globex.example",
        "a@globex.example\n",
        "",
        42,
        None,
        ["a@globex.example"],
        {"address": "a@globex.example"},
        "a" * 300 + "@globex.example",
    ],
)
def test_recipient_addresses_are_validated(mailer_app: Any, address: Any) -> None:
    client = mailer_app.test_client()
    for method, path, body in (
        ("PUT", "/accounts/acc-1001/primary", {"address": address}),
        (
            "POST",
            "/accounts/acc-1001/recipients",
            {"address": address, "categories": ["credentials"]},
        ),
    ):
        response = admin(client, method, path, body)
        assert response.status_code == 400, (address, response.get_json())
        assert response.get_json()["error"].startswith("address")
    assert mailer_of(mailer_app).registry_api.list("acc-1001") == []


# -- accounts never cross -------------------------------------------------------------------


def test_one_accounts_recipients_are_never_shown_or_mailed_for_another(
    mailer_app: Any, smtp_server: SmtpServer
) -> None:
    client = mailer_app.test_client()
    people = {
        "acc-1001": "admin@globex.example",
        "acc-1002": "admin@initech.example",
        "acc-10021": "admin@lookalike.example",
    }
    for account, address in people.items():
        assert (
            admin(client, "PUT", f"/accounts/{account}/primary", {"address": address}).status_code
            == 200
        )
    # Reads: exact account only; wildcards and traversal are not account ids.
    for account, address in people.items():
        listed = admin(client, "GET", f"/accounts/{account}/recipients").get_json()
        assert [r["address"] for r in listed["recipients"]] == [address]
    for probe in (
        "acc-100%25",
        "acc-100_",
        "acc-1001%2F..%2Facc-1002",
        "acc-1001%20OR%201=1",
        "%2A",
        "acc-1001%0Aacc-1002",
    ):
        response = admin(client, "GET", f"/accounts/{probe}/recipients")
        # acc-100_ is a well-formed id of an account without recipients; the rest are refused.
        assert response.status_code in (400, 404) or response.get_json()["recipients"] == []
        assert not any(a in response.get_data(as_text=True) for a in people.values())
    # Writes on one account do not touch another.
    assert (
        admin(client, "DELETE", "/accounts/acc-1002/recipients/admin@globex.example").status_code
        == 404
    )
    # A group mixing accounts is split: each account's email goes to its own people only.
    for name in ("misrouted_two_accounts_firing", "credential_expired_firing"):
        assert (
            client.post(
                "/alertmanager/webhook",
                json=fixture_payload(name),
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            ).status_code
            == 200
        )
    # An alert whose labels try to name a second account or a recipient reaches nobody else.
    sneaky = copy.deepcopy(fixture_payload("credential_expired_firing"))
    sneaky["alerts"][0]["labels"].update(
        {"account": "acc-1002\nacc-1001", "recipient": people["acc-1001"], "fingerprint": "x"}
    )
    sneaky["alerts"][0]["fingerprint"] = "feedfacefeedface"
    assert (
        client.post(
            "/alertmanager/webhook",
            json=sneaky,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        ).status_code
        == 200
    )
    mailer_of(mailer_app).workers[0].drain()
    assert smtp_server.messages
    for received in smtp_server.messages:
        [recipient] = received.rcpt_tos
        account = received.message["X-Sysnotify-Account"]
        assert people[account] == recipient
        assert received.message["To"] == recipient


# -- nothing secret in logs, metrics or answers ----------------------------------------------


def test_no_secret_or_address_leaks(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """The mailer under gunicorn, fed bad tokens, bad addresses, an SMTP server that refuses a
    recipient (echoing the address, as real servers do) and one that fails transiently: its log,
    its metrics and its error answers never carry a token or a recipient address."""
    refused = "gone@globex.example"
    smtp_server.refuse(refused, f"550 5.1.1 <{refused}>: Recipient address rejected")
    config = write_mailer_config(tmp_path, smtp_server.port)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    answers = []
    with mailer_service(tmp_path, config, port, workers=1) as service:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for address in (refused, "admin@initech.example"):
            account = "acc-1001" if address == refused else "acc-1002"
            requests.put(
                f"{base}/api/v1/accounts/{account}/primary",
                json={"address": address},
                headers=headers,
                timeout=10,
            ).raise_for_status()
        for token in (f"{WEBHOOK_TOKEN}x", ADMIN_TOKEN, ""):
            answers.append(
                requests.post(
                    f"{base}/alertmanager/webhook",
                    timeout=10,
                    json=fixture_payload("credential_expired_firing"),
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
        answers.append(
            requests.get(
                f"{base}/api/v1/accounts/acc-1001/recipients",
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                timeout=10,
            )
        )
        answers.append(
            requests.post(
                f"{base}/alertmanager/webhook",
                timeout=10,
                data=b"{not json",
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            )
        )
        smtp_server.fail("451 4.3.0 admin@initech.example: mailbox busy", count=1)
        for name in ("credential_expired_firing", "credential_expired_grouped_firing"):
            response = requests.post(
                f"{base}/alertmanager/webhook",
                json=fixture_payload(name),
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                timeout=10,
            )
            assert response.status_code == 200
            answers.append(response)
        emails = lambda status: requests.get(  # noqa: E731
            f"{base}/api/v1/emails?status={status}", headers=headers, timeout=10
        ).json()["emails"]
        assert wait_for_outbox(lambda: len(emails("failed")) == 1 and len(emails("sent")) == 1)
        metrics = requests.get(f"{base}/metrics", timeout=10).text
        service.stop()
    log = (tmp_path / "mailer.log").read_text()
    assert "permanent failure" in log and "retry in" in log  # the failures were logged
    secrets = (WEBHOOK_TOKEN, ADMIN_TOKEN, refused, "admin@initech.example")
    for where, text in [("log", log), ("metrics", metrics)] + [
        (f"answer {r.status_code}", r.text) for r in answers
    ]:
        for secret in secrets:
            assert secret not in text, f"{secret} appears in the {where}"


def wait_for_outbox(condition: Any, timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return bool(condition())


def test_json_error_bodies_do_not_echo_tokens(mailer_app: Any, exporter_app: Any) -> None:
    for app, url in ((mailer_app, "/alertmanager/webhook"), (exporter_app, "/api/v1/events")):
        response = app.test_client().post(
            url, data=json.dumps({"token": "zzz"}), headers={"Authorization": "Bearer zzz-guess"}
        )
        assert response.status_code == 401
        assert "zzz" not in response.get_data(as_text=True)
        assert INGEST_TOKEN not in response.get_data(as_text=True)
