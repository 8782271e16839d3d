"""Alerts Alertmanager cut from a webhook (`max_alerts`) are counted, per endpoint, through the
webhook: they never get their problem or recovery email, and SysnotifyWebhookAlertsTruncated
tells the operators (alert_rules/pipeline.yml)."""

from __future__ import annotations

from typing import Any

from tests.support.alertmanager import fixture_payload
from tests.support.mailer_app import metric, post, register

TRUNCATED = "sysnotify_mailer_truncated_alerts_total"


def test_both_endpoints_show_zero_before_anything_is_cut(client: Any) -> None:
    # Present from the start, so increase() sees the first cut (a series that appears with
    # its first value already above zero shows no increase).
    assert metric(client, TRUNCATED, 'webhook="customer"') == 0
    assert metric(client, TRUNCATED, 'webhook="operator"') == 0


def test_cut_alerts_are_counted_per_endpoint(app: Any, client: Any) -> None:
    register(app, "acc-1001")
    customer = fixture_payload("credential_expired_firing") | {"truncatedAlerts": 3}
    assert post(client, customer).status_code == 200
    operator = fixture_payload("operator_firing") | {"truncatedAlerts": 2}
    assert post(client, operator, "/operators/webhook").status_code == 200
    assert metric(client, TRUNCATED, 'webhook="customer"') == 3
    assert metric(client, TRUNCATED, 'webhook="operator"') == 2
    # Each notification that arrives cut counts again: Alertmanager re-sends the group whole
    # (a retry, an HA peer, a repeat) and cuts the same alerts again.
    assert post(client, customer).status_code == 200
    assert metric(client, TRUNCATED, 'webhook="customer"') == 6


def test_a_whole_payload_counts_nothing(app: Any, client: Any) -> None:
    register(app, "acc-1001")
    assert post(client, fixture_payload("credential_expired_firing")).status_code == 200
    assert metric(client, TRUNCATED, 'webhook="customer"') == 0


def test_a_refused_payload_counts_nothing(client: Any) -> None:
    payload = fixture_payload("credential_expired_firing") | {"truncatedAlerts": 3}
    assert post(client, payload, token="wrong-token").status_code == 401
    assert post(client, payload | {"version": "3"}).status_code == 422
    assert metric(client, TRUNCATED, 'webhook="customer"') == 0
