"""Property-based fuzzing of the mailer's webhook and admin API, in process.

Whatever arrives, the answer is never 5xx; a refused request gets a 4xx with a JSON `error`
that says what is wrong, and leaves the store as it was (recipients, alert state, outbox,
undeliverable notes: nothing queued means no email). A mutated payload that is still a valid
webhook (mailer.payload.parse accepts it) may be answered 200; everything else must be 4xx.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sysnotify.mailer.config import config_from_mapping
from sysnotify.mailer.intake.payload import PayloadError, parse
from sysnotify.mailer.web.app import create_app, mailer_of
from tests.support.fuzz import HOSTILE_TEXT, JSON, RAW_BODIES, TEXT, fuzz, mutated
from tests.support.mailer_config import ADMIN_TOKEN, TOKENS_ENV, WEBHOOK_TOKEN, config_mapping
from tests.support.paths import FIXTURES

MAX_BODY = 64 * 1024
STATE_TABLES = ("recipients", "alert_state", "outbox", "undeliverable")
VALID = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]
TRIED: dict[str, int] = {}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    workdir = tmp_path_factory.mktemp("fuzz-mailer")
    config = config_from_mapping(
        config_mapping(workdir, 25, webhook={"max_body_bytes": MAX_BODY}),
        TOKENS_ENV,
        base_dir=workdir,
    )
    app = create_app(config, start_delivery=False)
    test_client = app.test_client()
    # One account with recipients, so a change to them would show.
    for method, path, body in (
        ("PUT", "/accounts/acc-1001/primary", {"address": "p@x.example"}),
        (
            "POST",
            "/accounts/acc-1001/recipients",
            {"address": "s@x.example", "categories": ["credentials"]},
        ),
    ):
        assert test_client.open(
            f"/api/v1{path}",
            method=method,
            json=body,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ).status_code in (200, 201)
    yield test_client
    mailer_of(app).store.close()
    print(f"\n[reliability] fuzz_mailer examples: {TRIED}")


def snapshot(client: Any) -> dict[str, list[tuple[Any, ...]]]:
    conn = mailer_of(client.application).store.db.connection()
    return {
        t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2")]
        for t in STATE_TABLES
    }


def valid_webhook(body: Any) -> bool:
    try:
        parse(body)
    except PayloadError:
        return False
    return True


def check_refused(response: Any, before: dict[str, Any], client: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    assert snapshot(client) == before


def post_webhook(client: Any, data: bytes, path: str = "/alertmanager/webhook") -> Any:
    return client.post(
        path,
        data=data,
        content_type="application/json",
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
    )


def count(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


@fuzz(1500)
@given(body=JSON, path=st.sampled_from(["/alertmanager/webhook", "/operators/webhook"]))
def test_arbitrary_json_is_refused_with_4xx(client: Any, body: Any, path: str) -> None:
    count("webhook arbitrary JSON")
    before = snapshot(client)
    response = post_webhook(client, json.dumps(body).encode(), path)
    if valid_webhook(body):
        assert response.status_code == 200
    else:
        check_refused(response, before, client)


@fuzz(2500)
@given(data=st.data())
def test_mutated_webhook_payloads_never_fail_the_server(client: Any, data: st.DataObject) -> None:
    count("webhook mutated payload")
    body = data.draw(mutated(data.draw(st.sampled_from(VALID))))
    before = snapshot(client)
    encoded = json.dumps(body).encode()
    response = post_webhook(client, encoded)
    if len(encoded) > MAX_BODY:
        check_refused(response, before, client)
        assert response.status_code == 413
    elif valid_webhook(body):
        assert response.status_code == 200, response.data[:300]
    else:
        check_refused(response, before, client)
        assert response.status_code == 422 and response.get_json()["problems"]


@fuzz(500)
@given(raw=RAW_BODIES)
def test_bodies_that_are_not_json_are_400(client: Any, raw: bytes) -> None:
    count("webhook raw bytes")
    before = snapshot(client)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        check_refused(post_webhook(client, raw), before, client)
        return
    response = post_webhook(client, raw)
    if not valid_webhook(body):
        check_refused(response, before, client)


@fuzz(300)
@given(
    token=st.one_of(st.none(), TEXT, st.just(WEBHOOK_TOKEN + " "), st.just(WEBHOOK_TOKEN[:-1])),
    scheme=st.sampled_from(["Bearer", "bearer", "Basic", "", "Token"]),
)
def test_wrong_tokens_are_401_and_change_nothing(
    client: Any, token: str | None, scheme: str
) -> None:
    count("webhook wrong token")
    if token is not None:  # HTTP cannot carry line breaks in a header value
        token = token.replace("\r", "").replace("\n", "")
    headers = (
        {}
        if token is None
        else {"Authorization": f"{scheme} {token}".encode("utf-8", "replace").decode("latin-1")}
    )
    if token is not None and scheme.lower() == "bearer" and token.strip() == WEBHOOK_TOKEN:
        return  # the right token, spelled validly
    before = snapshot(client)
    response = client.post("/alertmanager/webhook", json=VALID[0], headers=headers)
    check_refused(response, before, client)
    assert response.status_code == 401


def quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


@fuzz(1500)
@given(
    account=st.one_of(TEXT, st.just("acc-1001")),
    address=st.one_of(TEXT, st.emails(), st.just("s@x.example"), st.just("p@x.example")),
    body=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {
                "address": st.one_of(TEXT, st.emails(), HOSTILE_TEXT, JSON),
                "categories": st.one_of(
                    JSON,
                    st.lists(
                        st.one_of(TEXT, st.sampled_from(["credentials", "sync", "privacy"])),
                        max_size=3,
                    ),
                ),
            }
        ),
    ),
    action=st.sampled_from(["list", "add", "remove", "primary"]),
)
def test_admin_api_refuses_bad_requests_with_4xx(
    client: Any, account: str, address: str, body: Any, action: str
) -> None:
    count("admin API")
    base = f"/api/v1/accounts/{quote(account)}"
    method, path = {
        "list": ("GET", f"{base}/recipients"),
        "add": ("POST", f"{base}/recipients"),
        "remove": ("DELETE", f"{base}/recipients/{quote(address)}"),
        "primary": ("PUT", f"{base}/primary"),
    }[action]
    before = snapshot(client)
    response = client.open(
        path,
        method=method,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code < 500, response.data[:300]
    if response.status_code >= 400:
        check_refused(response, before, client)
    elif method != "GET":
        # A change happened; put the registry back so later examples start from the same one.
        conn = mailer_of(client.application).store.db.connection()
        conn.execute("DELETE FROM recipients")
        conn.executemany("INSERT INTO recipients VALUES (?, ?, ?, ?, ?)", before["recipients"])
        assert snapshot(client)["recipients"] == before["recipients"]


@pytest.mark.parametrize(
    "starts_at",
    [
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:30:00+01:00",
        "2026-13-01T00:00:00Z",
        "2026-11-27T02:40:52.1234567891Z+",
    ],
)
def test_times_out_of_range_are_422_not_500(client: Any, starts_at: str) -> None:
    """Regression: a startsAt that overflows when converted to UTC used to answer 500."""
    body = json.loads(json.dumps(VALID[0]))
    body["alerts"][0]["startsAt"] = starts_at
    before = snapshot(client)
    response = post_webhook(client, json.dumps(body).encode())
    check_refused(response, before, client)
    assert any("startsAt" in problem for problem in response.get_json()["problems"])


@pytest.mark.parametrize("raw", [b"[" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000])
def test_json_nested_too_deeply_is_400_not_500(client: Any, raw: bytes) -> None:
    """Regression: json.loads raises RecursionError on deep nesting, which answered 500."""
    before = snapshot(client)
    for path in ("/alertmanager/webhook", "/operators/webhook"):
        response = post_webhook(client, raw, path)
        check_refused(response, before, client)
        assert response.status_code == 400
    response = client.put(
        "/api/v1/accounts/acc-1001/primary",
        data=raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    check_refused(response, before, client)


def test_the_fuzzed_store_is_still_consistent(client: Any) -> None:
    conn = mailer_of(client.application).store.db.connection()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO recipients VALUES ('acc-1001', 'q@x.example', 'primary', '', 0)")
