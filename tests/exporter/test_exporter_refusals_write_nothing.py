"""The ingest API's refusals cost no write to the fact store: they are counted in the
process (IngestStats), so a flood of them never makes a valid batch wait for the store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sysnotify.exporter.store.sqlite import SqliteFactStore
from tests.support.exporter import AUTH, account
from tests.support.store_writes import StoreWrites

JSON = "application/json"
BATCH = json.dumps({"events": [account("acc-2")]})

# (headers, body, content type, the answer's status)
REFUSED = [
    pytest.param({}, BATCH, JSON, 401, id="no token"),
    pytest.param({"Authorization": "Bearer wrong"}, BATCH, JSON, 401, id="wrong token"),
    pytest.param(AUTH, b'{"events": [', JSON, 400, id="not JSON"),
    pytest.param(AUTH, "x" * 70_000, JSON, 413, id="too large"),
    pytest.param(AUTH, BATCH, "text/plain", 415, id="not JSON content"),
    pytest.param(AUTH, json.dumps({"events": [{"type": "nope"}]}), JSON, 422, id="bad event"),
]


@pytest.mark.parametrize(("headers", "body", "content_type", "status"), REFUSED)
def test_a_refused_batch_writes_nothing(
    client: Any,
    store: SqliteFactStore,
    headers: dict[str, str],
    body: Any,
    content_type: str,
    status: int,
) -> None:
    assert (
        client.post("/api/v1/events", data=BATCH, headers=AUTH, content_type=JSON).status_code
        == 200
    )
    writes = StoreWrites(store.path)
    try:
        for _ in range(25):
            response = client.post(
                "/api/v1/events", data=body, headers=headers, content_type=content_type
            )
            assert response.status_code == status
        assert not writes.seen()
    finally:
        writes.close()
