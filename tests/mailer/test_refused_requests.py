"""Refused requests write nothing to the store: they are counted in memory and added to the
store's counters in batches (sysnotify.mailer.deferred_counters), so a flood of them never
makes a valid webhook wait behind durable writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sysnotify.mailer import counters
from sysnotify.mailer.config import config_from_mapping
from sysnotify.mailer.deferred_counters import DeferredCounters
from sysnotify.mailer.store import CounterChange, StoreError
from sysnotify.mailer.web.app import create_app, deferred_counters_of, mailer_of
from tests.support.alertmanager import fixture_payload
from tests.support.mailer_app import metric, post
from tests.support.mailer_config import ADMIN_TOKEN, WEBHOOK_TOKEN, config_mapping
from tests.support.polling import wait_until
from tests.support.store_writes import StoreWrites

TIMES = 25
PAYLOAD = fixture_payload("credential_expired_firing")
JSON = "application/json"

# (method, path, Authorization header, body, the answer's status)
Refusal = tuple[str, str, str | None, Any, int]

REFUSED = [
    pytest.param(("POST", "/alertmanager/webhook", None, PAYLOAD, 401), id="no token"),
    pytest.param(("POST", "/alertmanager/webhook", "Bearer wrong", PAYLOAD, 401), id="wrong token"),
    pytest.param(
        ("POST", "/operators/webhook", f"Basic {WEBHOOK_TOKEN}", PAYLOAD, 401), id="not Bearer"
    ),
    pytest.param(
        ("POST", "/alertmanager/webhook", f"Bearer {WEBHOOK_TOKEN}", b"{not json", 400),
        id="not JSON",
    ),
    pytest.param(
        ("POST", "/alertmanager/webhook", f"Bearer {WEBHOOK_TOKEN}", b"[" * 5000, 400),
        id="nested too deeply",
    ),
    pytest.param(
        ("POST", "/alertmanager/webhook", f"Bearer {WEBHOOK_TOKEN}", b" " * 1_100_000, 413),
        id="too large",
    ),
    pytest.param(
        ("POST", "/operators/webhook", f"Bearer {WEBHOOK_TOKEN}", {"version": "4"}, 422),
        id="not the v4 shape",
    ),
    pytest.param(("GET", "/alertmanager/webhook", f"Bearer {WEBHOOK_TOKEN}", None, 405), id="GET"),
    pytest.param(("PUT", "/operators/webhook", None, PAYLOAD, 405), id="PUT"),
    pytest.param(
        ("POST", "/elsewhere/webhook", f"Bearer {WEBHOOK_TOKEN}", PAYLOAD, 404), id="no such path"
    ),
]
# The admin API refuses before any store access; its answers are not webhook answers.
ADMIN_REFUSED = [
    pytest.param(("GET", "/api/v1/emails", None, None, 401), id="no token"),
    pytest.param(
        ("POST", "/api/v1/accounts/acc-1001/recipients", "Bearer wrong", {"address": "a@b.c"}, 401),
        id="wrong token",
    ),
    pytest.param(
        ("PUT", "/api/v1/accounts/acc-1001/primary", f"Bearer {ADMIN_TOKEN}", b"not json", 400),
        id="not JSON",
    ),
    pytest.param(
        ("GET", "/api/v1/emails?limit=many", f"Bearer {ADMIN_TOKEN}", None, 400), id="bad limit"
    ),
]


def refuse(client: Any, refusal: Refusal) -> int:
    """Sends the refused request TIMES times; its status, checked to be the same each time."""
    method, path, authorization, body, status = refusal
    headers = {"Authorization": authorization} if authorization else {}
    for _ in range(TIMES):
        if isinstance(body, bytes):
            response = client.open(
                path, method=method, data=body, headers=headers, content_type=JSON
            )
        else:
            response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == status
    return status


@pytest.fixture
def writes(app: Any) -> Iterator[StoreWrites]:
    watch = StoreWrites(mailer_of(app).store.path)
    yield watch
    watch.close()


@pytest.mark.parametrize("refusal", REFUSED)
def test_a_refused_webhook_writes_nothing_and_is_counted_after_the_flush(
    app: Any, client: Any, writes: StoreWrites, refusal: Refusal
) -> None:
    status = refuse(client, refusal)
    assert not writes.seen(), f"{TIMES} refused requests ({status}) wrote to the store"
    deferred_counters_of(app).flush()
    assert writes.seen()
    assert metric(client, "sysnotify_mailer_webhook_requests_total", f'code="{status}"') == TIMES


@pytest.mark.parametrize("refusal", ADMIN_REFUSED)
def test_a_refused_admin_request_writes_nothing(
    app: Any, client: Any, writes: StoreWrites, refusal: Refusal
) -> None:
    refuse(client, refusal)
    deferred_counters_of(app).flush()
    assert not writes.seen()


def test_the_disabled_admin_api_writes_nothing(tmp_path: Path, smtp_server: Any) -> None:
    config = config_from_mapping(
        config_mapping(tmp_path, smtp_server.port),
        {"SYSNOTIFY_WEBHOOK_TOKEN": WEBHOOK_TOKEN},  # no admin token: 403 to everything
        base_dir=tmp_path,
    )
    app = create_app(config, start_delivery=False)
    writes = StoreWrites(mailer_of(app).store.path)
    try:
        client = app.test_client()
        for _ in range(TIMES):
            response = client.get(
                "/api/v1/emails", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            assert response.status_code == 403
        assert not writes.seen()
    finally:
        writes.close()
        mailer_of(app).store.close()


def test_a_valid_webhook_still_counts_its_200_in_its_own_transaction(app: Any, client: Any) -> None:
    assert post(client, PAYLOAD).status_code == 200
    assert metric(client, "sysnotify_mailer_webhook_requests_total", 'code="200"') == 1


def test_a_503_is_counted_even_though_the_store_refused_the_webhook(app: Any, client: Any) -> None:
    conn = mailer_of(app).store.db.connection()  # the test client runs in this thread
    conn.execute("PRAGMA query_only = ON")
    assert post(client, PAYLOAD).status_code == 503
    with pytest.raises(StoreError):
        deferred_counters_of(app).flush()  # still read-only: kept for the next flush
    conn.execute("PRAGMA query_only = OFF")
    deferred_counters_of(app).flush()
    assert metric(client, "sysnotify_mailer_webhook_requests_total", 'code="503"') == 1


class RecordingStore:
    """The one Store method DeferredCounters uses, recording each transaction."""

    def __init__(self) -> None:
        self.transactions: list[list[CounterChange]] = []
        self.failing = False

    def count(self, changes: Any) -> None:
        if self.failing:
            raise StoreError("write to store: disk I/O error")
        self.transactions.append(list(changes))


def test_many_counts_become_one_transaction_with_one_row_per_label() -> None:
    store = RecordingStore()
    deferred = DeferredCounters(store)  # type: ignore[arg-type]
    for _ in range(1000):
        deferred.add(counters.WEBHOOK_REQUESTS, "401")
    for _ in range(3):
        deferred.add(counters.WEBHOOK_REQUESTS, "400")
    assert store.transactions == []
    deferred.flush()
    deferred.flush()  # nothing new: no transaction
    assert store.transactions == [
        [(counters.WEBHOOK_REQUESTS, "401", 1000), (counters.WEBHOOK_REQUESTS, "400", 3)]
    ]


def test_counts_a_failed_flush_could_not_write_are_written_by_the_next() -> None:
    store = RecordingStore()
    deferred = DeferredCounters(store)  # type: ignore[arg-type]
    deferred.add(counters.WEBHOOK_REQUESTS, "503")
    store.failing = True
    with pytest.raises(StoreError):
        deferred.flush()
    deferred.add(counters.WEBHOOK_REQUESTS, "503")
    store.failing = False
    deferred.flush()
    assert store.transactions == [[(counters.WEBHOOK_REQUESTS, "503", 2)]]


def test_the_thread_flushes_periodically_and_stop_flushes_the_rest() -> None:
    store = RecordingStore()
    deferred = DeferredCounters(store, interval=0.05)  # type: ignore[arg-type]
    deferred.start()
    try:
        deferred.add(counters.WEBHOOK_REQUESTS, "401")
        assert wait_until(lambda: store.transactions, timeout=10)
    finally:
        deferred.add(counters.WEBHOOK_REQUESTS, "400")
        deferred.stop()
    written: dict[str, float] = {}
    for transaction in store.transactions:
        for _, label, amount in transaction:
            written[label] = written.get(label, 0) + amount
    assert written == {"401": 1, "400": 1}
