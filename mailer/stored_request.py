"""The email request as an outbox row stores it: JSON with a format version.

The intake writes it when a webhook is accepted; delivery reads it back, maybe hours later and
maybe in a newer (or, during a rolling upgrade, an older) release of the mailer. So rows carry
`format`, and reading is tolerant: keys this release does not know are ignored, keys an older
release did not write get their defaults, and rows written before the version existed
(no `format` key) read as format 1, which they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.intake.payload import Alert, format_time, parse_time
from sysnotify.mailer.model import AlertView, EmailRequest, Recipient

FORMAT = 1


class StoredRequestError(ValueError):
    """A stored request that cannot be read; the message names the missing or bad key."""


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": format_time(alert.starts_at),
        "endsAt": format_time(alert.ends_at) if alert.ends_at else None,
        "fingerprint": alert.fingerprint,
    }


def dumps(
    *,
    audience: str,
    notification: str,
    phase: str,
    account: str,
    account_name: str,
    alerts: Sequence[Alert],
    recipient: Recipient,
    generated_at: float,
) -> str:
    """The JSON text stored in the outbox row."""
    return json.dumps(
        {
            "format": FORMAT,
            "audience": audience,
            "notification": notification,
            "phase": phase,
            "account": account,
            "account_name": account_name,
            "alerts": [_alert_json(a) for a in alerts],
            "recipient": {"address": recipient.address, "role": recipient.role},
            "generated_at": format_time(datetime.fromtimestamp(generated_at, UTC)),
        },
        sort_keys=True,
    )


def _required(data: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in data or data[key] is None:
        raise StoredRequestError(f"stored request: {where}{key} is missing")
    return data[key]


def email_request(data: Mapping[str, Any], catalog: Catalog) -> EmailRequest:
    """Rebuilds the EmailRequest of an outbox row's stored request (already decoded).

    :raise StoredRequestError: when a key the email cannot do without is missing or bad.
    """
    if not isinstance(data, Mapping):
        raise StoredRequestError("stored request: not a JSON object")
    kind = catalog.by_name(str(data.get("notification", ""))) or catalog.generic
    alerts = []
    try:
        for index, alert in enumerate(_required(data, "alerts")):
            labels = dict(alert.get("labels") or {})
            ends_at = alert.get("endsAt")
            alerts.append(
                AlertView(
                    alertname=labels.get("alertname", ""),
                    status=alert.get("status", "firing"),
                    labels=labels,
                    annotations=dict(alert.get("annotations") or {}),
                    starts_at=parse_time(_required(alert, "startsAt", f"alerts[{index}].")),
                    ends_at=parse_time(ends_at) if ends_at else None,
                    fingerprint=alert.get("fingerprint", ""),
                )
            )
        recipient = _required(data, "recipient")
        return EmailRequest(
            notification=kind,
            phase=_required(data, "phase"),
            account=data.get("account", ""),
            account_name=data.get("account_name") or data.get("account", ""),
            alerts=tuple(alerts),
            recipient=Recipient(
                _required(recipient, "address", "recipient."), recipient.get("role", "subscriber")
            ),
            generated_at=parse_time(_required(data, "generated_at")),
        )
    except (AttributeError, TypeError, ValueError) as error:
        if isinstance(error, StoredRequestError):
            raise
        raise StoredRequestError(f"stored request: {error}") from error
