"""Driving a mailer app in process: webhooks and admin calls through its test client, its
recipients registry, its delivery, its metrics and its outbox."""

from __future__ import annotations

from typing import Any

from sysnotify.mailer.web.app import mailer_of
from tests.support.alertmanager import fixture_payload
from tests.support.mailer_config import ADMIN_TOKEN, WEBHOOK_TOKEN

# The recipients `register` gives an account, by what they are subscribed to.
PRIMARY = "admin@customer.example"
CREDENTIALS_ONLY = "it@customer.example"
SYNC_ONLY = "data@customer.example"
EVERYTHING = "ops-team@customer.example"
ALL_CATEGORIES = ["credentials", "api_limits", "web_visits", "privacy", "sync"]


def register(app: Any, account: str) -> None:
    registry = mailer_of(app).registry_api
    registry.set_primary(account, PRIMARY)
    registry.add(account, CREDENTIALS_ONLY, ["credentials"])
    registry.add(account, SYNC_ONLY, ["sync"])
    registry.add(account, EVERYTHING, ALL_CATEGORIES)


def post(
    client: Any, payload: Any, path: str = "/alertmanager/webhook", token: str = WEBHOOK_TOKEN
) -> Any:
    return client.post(path, json=payload, headers={"Authorization": f"Bearer {token}"})


def admin(client: Any, method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN) -> Any:
    return client.open(
        f"/api/v1{path}", method=method, json=body, headers={"Authorization": f"Bearer {token}"}
    )


def deliver(app: Any) -> dict[str, int]:
    """Runs this app's delivery until nothing is due; returns outcome counts."""
    return mailer_of(app).workers[0].drain()


def metric(client: Any, name: str, labels: str = "") -> float:
    text = client.get("/metrics").text
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{wanted} not in /metrics")


def queue_three(app: Any) -> Any:
    """Registers acc-1001's recipients and queues its credential_expired problem: 3 emails."""
    client = app.test_client()
    register(app, "acc-1001")
    assert post(client, fixture_payload("credential_expired_firing")).json["queued"] == 3
    return client


def pending(app: Any) -> int:
    return (
        mailer_of(app)
        .store.db.connection()
        .execute("SELECT count(*) FROM outbox WHERE status = 'pending'")
        .fetchone()[0]
    )
