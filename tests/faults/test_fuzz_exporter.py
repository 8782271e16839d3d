"""Property-based fuzzing of the exporter's ingest API, in process.

A batch is applied whole or not at all: whatever arrives, the answer is never 5xx; a refused
batch gets a 4xx with a JSON `error` (and, for bad events, each event's index, field and
reason) and the fact store's version and facts stay as they were.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.events import validate_events
from sysnotify.exporter.store import FactStore
from sysnotify.exporter.store.backends import open_fact_store
from sysnotify.exporter.web.app import create_app
from tests.support.exporter import (
    WINDOW,
    Clock,
    account,
    api_usage,
    credential,
    sync_finished,
    sync_started,
    web_visits,
)
from tests.support.fuzz import JSON, RAW_BODIES, TEXT, fuzz, mutated

TOKEN = "ingest-fuzz-token-0123456789"
MAX_BODY = 64 * 1024
VALID_EVENTS = [
    account(),
    credential(),
    api_usage(),
    web_visits(),
    sync_started(),
    sync_finished(),
    {
        "type": "privacy_optout",
        "account": "acc-1",
        "request_id": "r-1",
        "received_at": "2026-05-27T10:00:00Z",
        "status": "pending",
    },
]
TRIED: dict[str, int] = {}


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, FactStore]]:
    store = open_fact_store(tmp_path_factory.mktemp("fuzz-exporter") / "facts.db")
    app = create_app(
        ExporterConfig(ingest_token=TOKEN, max_body_bytes=MAX_BODY), store=store, clock=Clock()
    )
    client = app.test_client()
    assert (
        client.post(
            "/api/v1/events",
            json={"events": VALID_EVENTS},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).status_code
        == 200
    )
    yield client, store
    store.close()
    print(f"\n[reliability] fuzz_exporter examples: {TRIED}")


def facts(store: FactStore) -> tuple[int, Any]:
    return store.version(), store.facts(20_000)


def ingest(client: Any, raw: bytes, content_type: str = "application/json") -> Any:
    return client.post(
        "/api/v1/events",
        data=raw,
        content_type=content_type,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def check(response: Any, store: FactStore, before: tuple[int, Any], body: Any) -> None:
    """Never 5xx; 200 only for a batch the validator accepts; a refusal changes nothing."""
    assert response.status_code < 500, response.data[:300]
    if response.status_code == 200:
        assert isinstance(body, dict) and isinstance(body.get("events"), list)
        assert validate_events(body["events"], WINDOW)[1] == []
        return
    assert 400 <= response.status_code < 500
    answer = response.get_json()
    assert isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"]
    if response.status_code == 422:
        assert answer["errors"] and all(
            {"index", "field", "reason"} <= set(e) for e in answer["errors"]
        )
    assert facts(store) == before


@fuzz(800)
@given(body=JSON)
def test_arbitrary_json_never_fails_the_server(exporter: tuple[Any, FactStore], body: Any) -> None:
    TRIED["arbitrary JSON"] = TRIED.get("arbitrary JSON", 0) + 1
    client, store = exporter
    before = facts(store)
    check(ingest(client, json.dumps(body).encode()), store, before, body)


@fuzz(2000)
@given(data=st.data())
def test_mutated_batches_are_applied_whole_or_not_at_all(
    exporter: tuple[Any, FactStore], data: st.DataObject
) -> None:
    TRIED["mutated batch"] = TRIED.get("mutated batch", 0) + 1
    client, store = exporter
    batch = data.draw(st.lists(st.sampled_from(VALID_EVENTS), min_size=1, max_size=4))
    body = data.draw(mutated({"events": batch}))
    before = facts(store)
    encoded = json.dumps(body).encode()
    response = ingest(client, encoded)
    if len(encoded) > MAX_BODY:
        assert response.status_code == 413
    check(response, store, before, body)


@fuzz(400)
@given(raw=RAW_BODIES, content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_bodies_that_are_not_json_are_refused(
    exporter: tuple[Any, FactStore], raw: bytes, content_type: str
) -> None:
    TRIED["raw bytes"] = TRIED.get("raw bytes", 0) + 1
    client, store = exporter
    before = facts(store)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    check(ingest(client, raw, content_type), store, before, body)


@fuzz(200)
@given(token=st.one_of(TEXT, st.just(TOKEN[:-1]), st.just(TOKEN + "x")))
def test_wrong_ingest_tokens_are_401(exporter: tuple[Any, FactStore], token: str) -> None:
    TRIED["wrong token"] = TRIED.get("wrong token", 0) + 1
    client, store = exporter
    token = token.replace("\r", "").replace("\n", "")
    if token.strip() == TOKEN:
        return
    before = facts(store)
    response = client.post(
        "/api/v1/events",
        json={"events": VALID_EVENTS},
        headers={"Authorization": f"Bearer {token}".encode("utf-8", "replace").decode("latin-1")},
    )
    assert response.status_code == 401
    check(response, store, before, None)


def test_json_nested_too_deeply_is_400_not_500(exporter: tuple[Any, FactStore]) -> None:
    """Regression: json.loads raises RecursionError on deep nesting, which answered 500."""
    client, store = exporter
    before = facts(store)
    response = ingest(client, b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}")
    assert response.status_code == 400
    check(response, store, before, None)
