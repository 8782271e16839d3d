"""Realistic sample data for every notification and phase, with fixed times.

Used by the /preview pages, by Renderer.check() at start-up and by the golden-file tests. The
alerts carry the same labels and data annotations the alert rules produce (docs/contracts.md).

Regenerate the golden files after changing a template or a sample:

    .venv/bin/python -m sysnotify.mailer.rendering.samples --write-golden tests/golden
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from sysnotify.mailer.catalog import Catalog, NotificationKind
from sysnotify.mailer.model import AlertView, Brand, EmailRequest, Phase, Recipient
from sysnotify.mailer.rendering.renderer import Renderer, RenderError, phases_of, template_for

ACCOUNT = "acc-0042"
ACCOUNT_NAME = "Acme Corp"
GENERATED_AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
STARTS_AT = datetime(2026, 11, 25, 8, 45, tzinfo=UTC)
ENDS_AT = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
RUNBOOK = "https://github.com/sysnotify/sysnotify/blob/main/docs/runbooks.md#"

SAMPLE_BRAND = Brand(
    product_name="Northwind ABM",
    company_name="Northwind Data Ltd",
    sender_address="no-reply@northwind.example",
    sender_name="Northwind ABM notifications",
    console_url="https://console.northwind.example",
    support_email="support@northwind.example",
    logo_url="https://console.northwind.example/static/email-logo.png",
    primary_color="#1f4e79",
    accent_color="#f2a900",
    background_color="#f4f6f8",
    text_color="#1c1c1c",
    footer_text="1 Harbour Street, Bristol BS1 4XX, United Kingdom",
    console_paths={
        "credentials": "/settings/integrations/credentials",
        "integrations": "/settings/integrations",
        "web_tag": "/settings/web-tag",
        "privacy": "/privacy/opt-out-requests",
        "sync": "/data/sync",
        "notifications": "/settings/notifications",
    },
)

PRIMARY = Recipient(address="jane.doe@acme.example", role="primary")
SUBSCRIBER = Recipient(address="ops@acme.example", role="subscriber")


def _alert(
    alertname: str,
    category: str,
    severity: str,
    *,
    extra_labels: Mapping[str, str],
    summary: str,
    description: str,
    data: Mapping[str, str],
    fingerprint: str,
) -> AlertView:
    labels = {
        "alertname": alertname,
        "account": ACCOUNT,
        "audience": "customer",
        "category": category,
        "severity": severity,
        **extra_labels,
    }
    annotations = {
        "account_name": ACCOUNT_NAME,
        "summary": summary,
        "description": description,
        "runbook_url": RUNBOOK + alertname.lower(),
        **data,
    }
    return AlertView(
        alertname=alertname,
        status="firing",
        labels=labels,
        annotations=annotations,
        starts_at=STARTS_AT,
        ends_at=None,
        fingerprint=fingerprint,
    )


def credential_expiring_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "CredentialExpiringSoon",
            "credentials",
            "warning",
            extra_labels={"system": "salesforce", "reminder": "7d"},
            summary="An integration password expires soon.",
            description="The salesforce password of Acme Corp expires in 7 days.",
            data={"expires_at": "2026-12-02T14:00:00Z", "days_left": "7"},
            fingerprint="4c1f9e0a7b3d2e51",
        ),
    )


def credential_expired_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "CredentialExpired",
            "credentials",
            "critical",
            extra_labels={"system": "eloqua"},
            summary="An integration password has expired.",
            description="The eloqua password of Acme Corp expired.",
            data={"reason": "expired", "expired_at": "2026-11-24T06:00:00Z"},
            fingerprint="9a0b5c2d1e3f4a60",
        ),
        _alert(
            "CredentialExpired",
            "credentials",
            "critical",
            extra_labels={"system": "marketo"},
            summary="An integration's credentials were rejected.",
            description="The last validation of the marketo credentials of Acme Corp failed.",
            data={"reason": "validation_failed"},
            fingerprint="1b2c3d4e5f607182",
        ),
    )


def api_limit_approaching_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "ApiDailyLimitApproaching",
            "api_limits",
            "warning",
            extra_labels={"platform": "salesforce"},
            summary="An integration is close to its daily API allowance.",
            description="Acme Corp used 85% of today's salesforce API allowance.",
            data={"calls_used": "85120", "calls_limit": "100000", "usage_ratio": "0.8512"},
            fingerprint="2d3e4f5061728394",
        ),
    )


def api_limit_reached_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "ApiDailyLimitReached",
            "api_limits",
            "critical",
            extra_labels={"platform": "hubspot"},
            summary="An integration reached its daily API allowance.",
            description="Acme Corp used all of today's hubspot API allowance.",
            data={"calls_used": "250000", "calls_limit": "250000", "usage_ratio": "1"},
            fingerprint="3e4f506172839405",
        ),
    )


def web_visits_dropped_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "WebVisitsDropped",
            "web_visits",
            "warning",
            extra_labels={},
            summary="Tracked web visits dropped well below the norm.",
            description="Acme Corp had 4,210 tracked visits last week against a norm of 11,087.",
            data={
                "visits_last_week": "4210",
                "visits_weekly_average": "11087.25",
                "visits_ratio": "0.3797",
            },
            fingerprint="4f50617283940516",
        ),
    )


def few_pages_tracked_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "FewWebPagesTracked",
            "web_visits",
            "warning",
            extra_labels={},
            summary="Few web pages saw tracked visits.",
            description="Only 3 pages of Acme Corp saw tracked visits last week.",
            data={"pages_tracked": "3", "pages_threshold": "5"},
            fingerprint="5061728394051627",
        ),
    )


def privacy_optout_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "PrivacyOptOutPending",
            "privacy",
            "warning",
            extra_labels={},
            summary="Privacy opt-out requests are waiting.",
            description="Acme Corp has 12 pending opt-out requests.",
            data={"pending_requests": "12", "oldest_pending_at": "2026-11-10T08:12:00Z"},
            fingerprint="6172839405162738",
        ),
    )


def data_sync_delayed_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "DataSyncDelayed",
            "sync",
            "warning",
            extra_labels={},
            summary="The daily data sync is late.",
            description="The daily sync of Acme Corp has been running for 7 hours.",
            data={
                "reason": "running_too_long",
                "running_seconds": "25380",
                "last_success_at": "2026-11-24T03:10:00Z",
            },
            fingerprint="7283940516273849",
        ),
    )


def generic_alerts() -> tuple[AlertView, ...]:
    return (
        _alert(
            "ScoreModelRefreshFailed",
            "sync",
            "warning",
            extra_labels={},
            summary="Predictive score refresh failed.",
            description="The nightly refresh of the predictive scores of Acme Corp failed "
            "twice in a row; scores shown are from 23 November.",
            data={},
            fingerprint="8394051627384950",
        ),
    )


# Sample alerts by catalog name; a catalog kind without its own samples uses the generic ones.
SAMPLE_ALERTS = {
    "credential_expiring": credential_expiring_alerts,
    "credential_expired": credential_expired_alerts,
    "api_limit_approaching": api_limit_approaching_alerts,
    "api_limit_reached": api_limit_reached_alerts,
    "web_visits_dropped": web_visits_dropped_alerts,
    "few_pages_tracked": few_pages_tracked_alerts,
    "privacy_optout_reminder": privacy_optout_alerts,
    "data_sync_delayed": data_sync_delayed_alerts,
    "generic": generic_alerts,
}


def resolved(alert: AlertView) -> AlertView:
    """The same alert as Alertmanager sends it once resolved."""
    return AlertView(
        alertname=alert.alertname,
        status="resolved",
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=alert.starts_at,
        ends_at=ENDS_AT,
        fingerprint=alert.fingerprint,
    )


def sample_request(
    kind: NotificationKind, phase: Phase, recipient: Recipient = PRIMARY
) -> EmailRequest:
    """A sample email request for `kind` in `phase`."""
    alerts = SAMPLE_ALERTS.get(kind.name, generic_alerts)()
    if phase == "recovery":
        alerts = tuple(resolved(alert) for alert in alerts)
    return EmailRequest(
        notification=kind,
        phase=phase,
        account=ACCOUNT,
        account_name=ACCOUNT_NAME,
        alerts=alerts,
        recipient=recipient,
        generated_at=GENERATED_AT,
    )


def all_requests(catalog: Catalog) -> Iterator[EmailRequest]:
    """A sample request for every kind of `catalog` in every phase it has."""
    for kind in catalog.kinds():
        for phase in phases_of(kind):
            yield sample_request(kind, phase)


def golden_name(request: EmailRequest) -> str:
    """`<template>.<phase>`: the stem of a request's golden files."""
    return f"{template_for(request.notification, request.phase)}.{request.phase}"


def write_golden(directory: Path, catalog: Catalog | None = None) -> list[Path]:
    """Renders every sample with SAMPLE_BRAND into `directory`; returns the files written.

    Files of samples that no longer exist are removed, so the directory always matches.
    """
    renderer = Renderer(SAMPLE_BRAND)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for request in all_requests(catalog or Catalog()):
        email = renderer.render(request)
        stem = golden_name(request)
        for suffix, content in (
            ("subject.txt", email.subject + "\n"),
            ("txt", email.text),
            ("html", email.html),
        ):
            path = directory / f"{stem}.{suffix}"
            path.write_text(content, encoding="utf-8")
            written.append(path)
    for stale in set(directory.glob("*.*.*")) - set(written):
        if stale.suffix in (".txt", ".html"):
            stale.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sysnotify.mailer.rendering.samples",
        description="Render the sample emails (the golden files of the template tests).",
    )
    parser.add_argument(
        "--write-golden",
        metavar="DIR",
        type=Path,
        required=True,
        help="directory to write <template>.<phase>.{subject.txt,txt,html} to",
    )
    args = parser.parse_args(argv)
    try:
        written = write_golden(args.write_golden)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} files to {args.write_golden}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
