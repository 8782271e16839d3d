"""The recipient registry through the admin API and the CLI, on the same store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.mailer_app import admin
from tests.support.mailer_config import config_mapping


def test_primary_receives_everything_and_can_be_replaced_not_removed(client: Any) -> None:
    assert (
        admin(
            client, "PUT", "/accounts/acc-1/primary", {"address": "first@corp.example"}
        ).status_code
        == 200
    )
    response = admin(
        client,
        "POST",
        "/accounts/acc-1/recipients",
        {"address": "it@corp.example", "categories": ["sync", "credentials"]},
    )
    assert response.status_code == 201
    assert response.json == {
        "address": "it@corp.example",
        "role": "subscriber",
        "categories": ["credentials", "sync"],
    }
    response = admin(client, "DELETE", "/accounts/acc-1/recipients/first@corp.example")
    assert response.status_code == 409
    assert "cannot be removed" in response.json["error"]
    assert (
        admin(
            client, "PUT", "/accounts/acc-1/primary", {"address": "second@corp.example"}
        ).status_code
        == 200
    )
    listing = admin(client, "GET", "/accounts/acc-1/recipients").json["recipients"]
    assert [(r["address"], r["role"]) for r in listing] == [
        ("second@corp.example", "primary"),
        ("first@corp.example", "subscriber"),
        ("it@corp.example", "subscriber"),
    ]
    assert listing[1]["categories"] == [
        "credentials",
        "api_limits",
        "web_visits",
        "privacy",
        "sync",
    ]
    assert (
        admin(client, "DELETE", "/accounts/acc-1/recipients/first@corp.example").status_code == 200
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        (
            "POST",
            "/accounts/acc-1/recipients",
            {"address": "Boss <b@corp.example>", "categories": ["sync"]},
            400,
            "address 'Boss",
        ),
        (
            "POST",
            "/accounts/acc-1/recipients",
            {"address": "b@corp.example\r\nBcc: x@evil.example", "categories": ["sync"]},
            400,
            "address: must not contain line breaks",
        ),
        (
            "POST",
            "/accounts/acc-1/recipients",
            {"address": "not-an-address", "categories": ["sync"]},
            400,
            "address 'not-an",
        ),
        (
            "POST",
            "/accounts/acc-1/recipients",
            {"address": "b@corp.example", "categories": ["weather"]},
            400,
            "unknown categories: weather",
        ),
        (
            "POST",
            "/accounts/acc-1/recipients",
            {"address": "b@corp.example", "categories": []},
            400,
            "choose at least one category",
        ),
        (
            "POST",
            "/accounts/acc-1/recipients",
            {"address": "b@corp.example"},
            400,
            "categories: required",
        ),
        (
            "POST",
            "/accounts/acc-1/recipients",
            ["b@corp.example"],
            400,
            "the body must be a JSON object",
        ),
        (
            "POST",
            "/accounts/bad%20id/recipients",
            {"address": "b@corp.example", "categories": ["sync"]},
            400,
            "invalid account id",
        ),
        (
            "DELETE",
            "/accounts/acc-1/recipients/nobody@corp.example",
            None,
            404,
            "nobody@corp.example is not a recipient of acc-1",
        ),
        ("PUT", "/accounts/acc-1/primary", {}, 400, "address: required"),
    ],
)
def test_recipient_api_errors(
    client: Any, method: str, path: str, body: Any, status: int, message: str
) -> None:
    response = admin(client, method, path, body)
    assert response.status_code == status
    assert response.json["error"].startswith(message)
    assert admin(client, "GET", "/accounts/acc-1/recipients").json["recipients"] == []


def test_admin_api_needs_its_own_token(client: Any, make_app: Any) -> None:
    assert (
        admin(client, "GET", "/accounts/acc-1/recipients", token="webhook-secret-token").status_code
        == 401
    )
    assert client.get("/api/v1/undeliverable").status_code == 401


def test_admin_api_is_disabled_without_a_token(tmp_path: Path, smtp_server: Any) -> None:
    from sysnotify.mailer.config import config_from_mapping
    from sysnotify.mailer.web.app import create_app, mailer_of

    config = config_from_mapping(
        config_mapping(tmp_path, smtp_server.port), {"SYSNOTIFY_WEBHOOK_TOKEN": "w"}
    )
    app = create_app(config, start_delivery=False)
    try:
        response = admin(app.test_client(), "GET", "/accounts/acc-1/recipients", token="")
        assert response.status_code == 403
        assert "SYSNOTIFY_ADMIN_TOKEN" in response.json["error"]
    finally:
        mailer_of(app).store.close()


def test_cli_manages_the_same_registry_as_the_api(
    cli: Any, capsys: pytest.CaptureFixture[str], make_app: Any
) -> None:
    assert cli("recipients", "set-primary", "acc-7", "boss@corp.example") == 0
    assert (
        cli("recipients", "add", "acc-7", "it@corp.example", "--categories", "credentials,sync")
        == 0
    )
    capsys.readouterr()
    assert cli("recipients", "list", "acc-7") == 0
    assert capsys.readouterr().out.splitlines() == [
        "boss@corp.example\tprimary\tall",
        "it@corp.example\tsubscriber\tcredentials,sync",
    ]
    app = make_app()  # same store file as the CLI's config
    listing = admin(app.test_client(), "GET", "/accounts/acc-7/recipients").json["recipients"]
    assert [r["address"] for r in listing] == ["boss@corp.example", "it@corp.example"]
    assert cli("recipients", "remove", "acc-7", "it@corp.example") == 0


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ("recipients", "remove", "acc-7", "boss@corp.example"),
            1,
            "boss@corp.example is the primary administrator of acc-7 and cannot be removed",
        ),
        (
            ("recipients", "remove", "acc-7", "ghost@corp.example"),
            1,
            "ghost@corp.example is not a recipient of acc-7",
        ),
        (
            ("recipients", "add", "acc-7", "x@corp.example", "--categories", "weather"),
            1,
            "unknown categories: weather",
        ),
        (
            ("recipients", "add", "acc-7", "Boss <x@corp.example>", "--categories", "sync"),
            1,
            "give the bare address",
        ),
        (("recipients", "set-primary", "acc-7", "nope"), 1, "address 'nope' is not valid"),
        (("--config", "/nonexistent.yml", "recipients", "list", "acc-7"), 2, "cannot read"),
    ],
)
def test_cli_errors_are_clear_and_exit_non_zero(
    cli: Any, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], code: int, message: str
) -> None:
    assert cli("recipients", "set-primary", "acc-7", "boss@corp.example") == 0
    assert cli(*argv) == code
    assert message in capsys.readouterr().err
