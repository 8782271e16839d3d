#!/usr/bin/env python3
"""Generates the Grafana dashboards in grafana/dashboards/ from the definitions below.

The JSON files are committed (Grafana's file provider loads them as they are); this script is
how they are written, so every panel follows the same rules: the `datasource` variable on the
panel and on each target, a unit and a description on every panel, `$__rate_interval` in every
rate(), only timeseries/stat/table/bargauge panels, `editable: false`, fixed uids.

    python scripts/gen-dashboards.py          # rewrite grafana/dashboards/*.json
    python scripts/gen-dashboards.py --check  # exit 1 if a committed file differs

Metric names come from docs/contracts.md; tests/grafana checks every query against it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS_DIR = REPO_ROOT / "grafana" / "dashboards"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
SCHEMA_VERSION = 39

# Colours used for thresholds and value mappings, by meaning.
OK, WARN, BAD, INFO = "green", "orange", "red", "blue"


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    """A panel before layout: kind, title, queries, and how its values read."""

    kind: str  # timeseries, stat, table or bargauge
    title: str
    description: str
    queries: list[Query]
    unit: str
    width: int
    height: int = 8
    thresholds: list[tuple[float | None, str]] = field(default_factory=lambda: [(None, OK)])
    mappings: list[dict[str, Any]] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    decimals: int | None = None
    no_value: str | None = None
    overrides: list[dict[str, Any]] = field(default_factory=list)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


# -- panel helpers ------------------------------------------------------------------------


def value_map(mapping: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """A Grafana value mapping: raw value -> (text, colour)."""
    return {
        "type": "value",
        "options": {
            value: {"text": text, "color": color, "index": index}
            for index, (value, (text, color)) in enumerate(mapping.items())
        },
    }


def column_override(column: str, **properties: Any) -> dict[str, Any]:
    """Field override for one table column, e.g. column_override("Days left", unit="d")."""
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


def rate(metric: str, by: str = "", per_minute: bool = False) -> str:
    """sum [by (labels)] (rate(metric[$__rate_interval])), optionally per minute."""
    grouping = f" by ({by})" if by else ""
    expr = f"sum{grouping} (rate({metric}[$__rate_interval]))"
    return f"60 * {expr}" if per_minute else expr


# -- the integration-health dashboard ------------------------------------------------------

ACCOUNT = 'account="$account"'


def integration_health() -> tuple[dict[str, Any], list[Panel]]:
    """Per account: credentials, API allowance, web visits, pages, syncs, opt-outs, alerts."""
    meta = {
        "uid": "sysnotify-integration-health",
        "title": "sysnotify — Integration health",
        "description": "One customer account's integrations as the alert rules see them: "
        "credentials, API allowance, web-tag visits, data syncs, privacy "
        "opt-outs and the alerts firing for it.",
        "time": {"from": "now-7d", "to": "now"},
    }
    panels = [
        Panel(
            "stat",
            "Account",
            "The account selected above and its display name, from abm_account_info.",
            [
                Query(
                    f"abm_account_info{{{ACCOUNT}}}", "{{account_name}} ({{account}})", instant=True
                )
            ],
            unit="none",
            width=5,
            height=4,
            thresholds=[(None, INFO)],
            options={"textMode": "name", "colorMode": "none", "graphMode": "none"},
        ),
        Panel(
            "stat",
            "Firing alerts",
            "Customer alerts firing for this account now (each may be held back by "
            "Alertmanager's grouping, inhibitions or silences).",
            [
                Query(
                    f'count(ALERTS{{{ACCOUNT}, alertstate="firing", audience="customer"}}) '
                    "or vector(0)",
                    instant=True,
                )
            ],
            unit="none",
            width=3,
            height=4,
            thresholds=[(None, OK), (1, BAD)],
        ),
        Panel(
            "stat",
            "Pages tracked last week",
            "Distinct pages with tracked visits in the last 7 days. Under 5 pages "
            "FewWebPagesTracked fires.",
            [Query(f"abm_web_pages_tracked_last_week{{{ACCOUNT}}}", instant=True)],
            unit="none",
            width=4,
            height=4,
            thresholds=[(None, BAD), (5, OK)],
        ),
        Panel(
            "stat",
            "Visits against the norm",
            "Tracked visits in the last 7 days as a share of the norm (the average week over "
            "the 4 weeks before). Under 50% WebVisitsDropped fires.",
            [
                Query(
                    f"abm_web_visits_last_week{{{ACCOUNT}}} / "
                    f"abm_web_visits_weekly_average{{{ACCOUNT}}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            width=4,
            height=4,
            decimals=0,
            thresholds=[(None, BAD), (0.5, WARN), (0.8, OK)],
        ),
        Panel(
            "stat",
            "Since last successful sync",
            "Time since the latest daily sync finished successfully. Over 26 hours "
            "DataSyncDelayed fires.",
            [Query(f"time() - abm_sync_last_success_timestamp_seconds{{{ACCOUNT}}}", instant=True)],
            unit="s",
            width=4,
            height=4,
            thresholds=[(None, OK), (24 * 3600, WARN), (26 * 3600, BAD)],
            no_value="never",
        ),
        Panel(
            "stat",
            "Since last platform event",
            "Time since the exporter last received an event for this account. When the "
            "platform stops reporting, the alerts cannot see changes (operators are told by "
            "SysnotifyAccountDataStale).",
            [
                Query(
                    f"time() - sysnotify_exporter_account_last_event_timestamp_seconds"
                    f"{{{ACCOUNT}}}",
                    instant=True,
                )
            ],
            unit="s",
            width=4,
            height=4,
            thresholds=[(None, OK), (6 * 3600, WARN), (26 * 3600, BAD)],
        ),
        Panel(
            "table",
            "Credentials",
            "Each connected system's credential: its password policy, whether the last "
            "validation succeeded (1) or failed (0), and the days left before the password "
            "expires (only under an expiring policy).",
            # Aggregated by system so the three results share only Time and system, which
            # is what Grafana's merge transformation joins rows on.
            [
                Query(f"max by (system, policy) (abm_credential_info{{{ACCOUNT}}})", instant=True),
                Query(f"max by (system) (abm_credential_valid{{{ACCOUNT}}})", instant=True),
                Query(
                    f"max by (system) (abm_credential_expiry_timestamp_seconds{{{ACCOUNT}}} "
                    "- time()) / 86400",
                    instant=True,
                ),
            ],
            unit="none",
            width=12,
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value #A": True},
                        "renameByName": {
                            "system": "System",
                            "policy": "Password policy",
                            "Value #B": "Valid",
                            "Value #C": "Days left",
                        },
                        "indexByName": {"system": 0, "policy": 1, "Value #B": 2, "Value #C": 3},
                    },
                },
            ],
            overrides=[
                column_override("Days left", unit="d", decimals=1),
                column_override(
                    "Valid", mappings=[value_map({"1": ("valid", OK), "0": ("failed", BAD)})]
                ),
            ],
        ),
        Panel(
            "bargauge",
            "Days until password expiry",
            "Days left before each expiring password must be changed. Reminders go out at "
            "14, 7 and 1 day(s) before; at 0 the credential is expired.",
            [
                Query(
                    f"(abm_credential_expiry_timestamp_seconds{{{ACCOUNT}}} - time()) / 86400",
                    "{{system}}",
                    instant=True,
                )
            ],
            unit="d",
            width=12,
            decimals=1,
            minimum=0,
            maximum=90,
            thresholds=[(None, BAD), (1, WARN), (14, OK)],
            options={"orientation": "horizontal", "displayMode": "gradient"},
        ),
        Panel(
            "stat",
            "Credential validity",
            "Whether the last validation of each system's credential succeeded. A failed "
            "validation fires CredentialExpired for that system.",
            [Query(f"abm_credential_valid{{{ACCOUNT}}}", "{{system}}", instant=True)],
            unit="none",
            width=8,
            thresholds=[(None, BAD), (1, OK)],
            mappings=[value_map({"1": ("valid", OK), "0": ("failed", BAD)})],
            options={"textMode": "value_and_name", "colorMode": "background"},
        ),
        Panel(
            "bargauge",
            "API usage against the daily allowance",
            "Share of each platform's contracted daily API allowance used in the current "
            "window. At 90% ApiDailyLimitApproaching fires, at 100% ApiDailyLimitReached "
            "(and the platform's sync stops until the window resets).",
            [
                Query(
                    f"abm_api_daily_calls_used{{{ACCOUNT}}} / "
                    f"abm_api_daily_calls_limit{{{ACCOUNT}}}",
                    "{{platform}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            width=8,
            minimum=0,
            maximum=1,
            thresholds=[(None, OK), (0.9, WARN), (1, BAD)],
            options={"orientation": "horizontal", "displayMode": "gradient"},
        ),
        Panel(
            "stat",
            "Pending opt-out requests",
            "Privacy opt-out requests not handled yet. While any are pending, a reminder "
            "goes out weekly.",
            [Query(f"abm_privacy_optout_pending_requests{{{ACCOUNT}}}", instant=True)],
            unit="none",
            width=4,
            thresholds=[(None, OK), (1, WARN)],
        ),
        Panel(
            "stat",
            "Oldest pending opt-out",
            "How long the oldest pending opt-out request has waited.",
            [
                Query(
                    f"time() - abm_privacy_optout_oldest_pending_timestamp_seconds{{{ACCOUNT}}}",
                    instant=True,
                )
            ],
            unit="s",
            width=4,
            thresholds=[(None, OK), (7 * 86400, WARN), (21 * 86400, BAD)],
            no_value="none pending",
        ),
        Panel(
            "timeseries",
            "API calls used and allowance",
            "API calls used in the current daily window per platform, against the "
            "contracted allowance.",
            [
                Query(f"abm_api_daily_calls_used{{{ACCOUNT}}}", "{{platform}} used"),
                Query(f"abm_api_daily_calls_limit{{{ACCOUNT}}}", "{{platform}} allowance"),
            ],
            unit="short",
            width=12,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Web visits against the norm",
            "Tracked visits in the last 7 days, the norm (average week over the 4 weeks "
            "before) and half the norm, the default threshold of WebVisitsDropped.",
            [
                Query(f"abm_web_visits_last_week{{{ACCOUNT}}}", "last 7 days"),
                Query(f"abm_web_visits_weekly_average{{{ACCOUNT}}}", "norm"),
                Query(f"0.5 * abm_web_visits_weekly_average{{{ACCOUNT}}}", "half the norm"),
            ],
            unit="short",
            width=12,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Sync duration",
            "Duration of the latest finished daily sync, and how long the current run has "
            "been going while one runs. Over 6 hours DataSyncDelayed fires.",
            [
                Query(f"abm_sync_last_duration_seconds{{{ACCOUNT}}}", "last finished run"),
                Query(
                    f"(time() - abm_sync_last_started_timestamp_seconds{{{ACCOUNT}}}) "
                    f"and on (account) (abm_sync_running{{{ACCOUNT}}} == 1)",
                    "current run",
                ),
            ],
            unit="s",
            width=12,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Time since last successful sync",
            "Age of the latest successful sync. It climbs by a day a day when syncs fail "
            "or stop; over 26 hours DataSyncDelayed fires.",
            [
                Query(
                    f"time() - abm_sync_last_success_timestamp_seconds{{{ACCOUNT}}}",
                    "since last success",
                )
            ],
            unit="s",
            width=12,
            minimum=0,
            thresholds=[(None, OK), (26 * 3600, BAD)],
            options={"thresholdsStyle": "line"},
        ),
        Panel(
            "table",
            "Firing alerts for this account",
            "Customer alerts firing for this account now, with the labels that route them. "
            "Whether an email went out depends on Alertmanager (grouping, repeat interval, "
            "inhibitions, silences).",
            [Query(f'ALERTS{{{ACCOUNT}, alertstate="firing", audience="customer"}}', instant=True)],
            unit="none",
            width=24,
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "Value": True,
                            "__name__": True,
                            "alertstate": True,
                            "audience": True,
                            "account": True,
                            "instance": True,
                            "job": True,
                        },
                        "renameByName": {
                            "alertname": "Alert",
                            "account_name": "Account name",
                            "category": "Category",
                            "severity": "Severity",
                            "system": "System",
                            "platform": "Platform",
                        },
                    },
                },
            ],
        ),
    ]
    variables = [
        datasource_variable(),
        {
            "name": "account",
            "label": "Account",
            "type": "query",
            "datasource": DATASOURCE,
            "query": "label_values(abm_account_info, account)",
            "definition": "label_values(abm_account_info, account)",
            "refresh": 2,
            "sort": 1,
            "multi": False,
            "includeAll": False,
            "current": {},
            "options": [],
            "hide": 0,
            "regex": "",
            "skipUrlSync": False,
        },
    ]
    return meta | {"templating": {"list": variables}}, panels


# -- the notification-pipeline dashboard ---------------------------------------------------


def notification_pipeline() -> tuple[dict[str, Any], list[Panel]]:
    """The pipeline itself: emails, outbox, delivery latency, webhook, exporter ingest."""
    meta = {
        "uid": "sysnotify-notification-pipeline",
        "title": "sysnotify — Notification pipeline",
        "description": "The notification pipeline's own health: emails sent, failed, "
        "deduplicated and undeliverable, the outbox, delivery latency, the "
        "webhook, and the exporter's ingest.",
        "time": {"from": "now-6h", "to": "now"},
    }
    outcomes = [
        ("sysnotify_mailer_emails_sent_total", "sent"),
        ("sysnotify_mailer_emails_queued_total", "queued"),
        ("sysnotify_mailer_emails_failed_total", "failed"),
        ("sysnotify_mailer_emails_undeliverable_total", "undeliverable"),
        ("sysnotify_mailer_notifications_deduplicated_total", "deduplicated"),
    ]
    latency = "sysnotify_mailer_delivery_latency_seconds_bucket"
    panels = [
        Panel(
            "stat",
            "Emails sent",
            "Emails accepted by the SMTP server, per minute, over the last rate interval.",
            [
                Query(
                    f"{rate('sysnotify_mailer_emails_sent_total', per_minute=True)} or vector(0)",
                    instant=True,
                )
            ],
            unit="cpm",
            width=4,
            height=4,
            thresholds=[(None, INFO)],
        ),
        Panel(
            "stat",
            "Emails failed",
            "Emails given up on (permanent SMTP failure or attempts exhausted), per minute.",
            [
                Query(
                    f"{rate('sysnotify_mailer_emails_failed_total', per_minute=True)} or vector(0)",
                    instant=True,
                )
            ],
            unit="cpm",
            width=4,
            height=4,
            thresholds=[(None, OK), (0.0001, BAD)],
        ),
        Panel(
            "stat",
            "Outbox depth",
            "Emails waiting in the outbox to be sent.",
            [Query("sum(sysnotify_mailer_outbox_pending_emails)", instant=True)],
            unit="none",
            width=4,
            height=4,
            thresholds=[(None, OK), (100, WARN), (1000, BAD)],
        ),
        Panel(
            "stat",
            "Oldest pending email",
            "How long the oldest email in the outbox has waited (0 when none waits).",
            [
                Query(
                    "(time() - min(sysnotify_mailer_outbox_oldest_pending_timestamp_seconds)) "
                    "or vector(0)",
                    instant=True,
                )
            ],
            unit="s",
            width=4,
            height=4,
            thresholds=[(None, OK), (300, WARN), (3600, BAD)],
        ),
        Panel(
            "stat",
            "Delivery latency p99",
            "99th percentile of the time from webhook received to SMTP accepted, over the "
            "last rate interval.",
            [
                Query(
                    f"histogram_quantile(0.99, sum by (le) (rate({latency}[$__rate_interval])))",
                    instant=True,
                )
            ],
            unit="s",
            width=4,
            height=4,
            thresholds=[(None, OK), (60, WARN), (600, BAD)],
        ),
        Panel(
            "stat",
            "Accounts known",
            "Accounts in the exporter's fact store.",
            [Query("sum(sysnotify_exporter_accounts)", instant=True)],
            unit="none",
            width=4,
            height=4,
            thresholds=[(None, INFO)],
        ),
        Panel(
            "stat",
            "Exporter store readable",
            "1 when the exporter could read its fact store at the last scrape; 0 means the "
            "customer metrics are missing from its output.",
            [Query("min(sysnotify_exporter_store_up)", instant=True)],
            unit="none",
            width=4,
            height=4,
            thresholds=[(None, BAD), (1, OK)],
        ),
        Panel(
            "stat",
            "Accounts skipped",
            "Accounts the exporter leaves out of its metrics because their stored facts cannot "
            "be published (SysnotifyAccountsSkipped); its log names each.",
            [Query("sum(sysnotify_exporter_accounts_skipped)", instant=True)],
            unit="none",
            width=4,
            height=4,
            thresholds=[(None, OK), (1, BAD)],
        ),
        Panel(
            "timeseries",
            "Email outcomes",
            "Per minute: emails queued in the outbox, sent, failed and undeliverable "
            "(no recipients), and alerts that were re-deliveries and sent nothing.",
            [Query(rate(metric, per_minute=True), legend) for metric, legend in outcomes],
            unit="cpm",
            width=12,
            minimum=0,
            overrides=[column_override("failed", color={"mode": "fixed", "fixedColor": BAD})],
        ),
        Panel(
            "timeseries",
            "Emails sent by notification",
            "Emails accepted by the SMTP server per minute, by notification kind.",
            [
                Query(
                    rate("sysnotify_mailer_emails_sent_total", "notification", True),
                    "{{notification}}",
                )
            ],
            unit="cpm",
            width=12,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Emails failed by notification",
            "Emails given up on per minute, by notification kind: permanent SMTP failures "
            "and attempts exhausted.",
            [
                Query(
                    rate("sysnotify_mailer_emails_failed_total", "notification", True),
                    "{{notification}}",
                )
            ],
            unit="cpm",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Undeliverable notifications",
            "Notifications per minute for accounts that have no recipients, by kind; add "
            "recipients with `sysnotify-mailer recipients add`.",
            [
                Query(
                    rate("sysnotify_mailer_emails_undeliverable_total", "notification", True),
                    "{{notification}}",
                )
            ],
            unit="cpm",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Deduplicated notifications",
            "Alerts per minute that were re-deliveries (Alertmanager retries, HA peers) "
            "and sent nothing, by kind.",
            [
                Query(
                    rate("sysnotify_mailer_notifications_deduplicated_total", "notification", True),
                    "{{notification}}",
                )
            ],
            unit="cpm",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Outbox depth",
            "Emails waiting in the outbox. A depth that keeps growing means SMTP is down or "
            "slower than the notifications coming in.",
            [Query("sum(sysnotify_mailer_outbox_pending_emails)", "pending")],
            unit="none",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Oldest pending email age",
            "How long the oldest email in the outbox has waited; absent when none waits.",
            [
                Query(
                    "time() - min(sysnotify_mailer_outbox_oldest_pending_timestamp_seconds)",
                    "oldest pending",
                )
            ],
            unit="s",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Delivery latency",
            "Time from webhook received to SMTP accepted: median and 99th percentile, from "
            "the mailer's histogram.",
            [
                Query(
                    f"histogram_quantile(0.5, sum by (le) (rate({latency}[$__rate_interval])))",
                    "p50",
                ),
                Query(
                    f"histogram_quantile(0.99, sum by (le) (rate({latency}[$__rate_interval])))",
                    "p99",
                ),
            ],
            unit="s",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Webhook requests by code",
            "Alertmanager webhook answers per minute by HTTP status. Alertmanager retries "
            "5xx; 4xx means a payload or token it will not resend.",
            [Query(rate("sysnotify_mailer_webhook_requests_total", "code", True), "{{code}}")],
            unit="reqpm",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "SMTP errors by kind",
            "Failed SMTP attempts per minute: transient ones are retried with backoff, "
            "permanent ones end the email.",
            [Query(rate("sysnotify_mailer_smtp_errors_total", "kind", True), "{{kind}}")],
            unit="cpm",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Delivery changes fenced off",
            "Outbox changes per minute refused because another delivery thread claimed the "
            "email after this one's lease ran out, by action; sent: an accepted email may go "
            "out twice. Any count means a delivery thread stalled past its lease.",
            [Query(rate("sysnotify_mailer_delivery_fenced_total", "action", True), "{{action}}")],
            unit="cpm",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Notifications received",
            "Alerts received in webhook payloads per minute, by notification kind, and the "
            "alerts Alertmanager cut from them (a receiver's max_alerts), by webhook: those "
            "get no email (SysnotifyWebhookAlertsTruncated).",
            [
                Query(
                    rate("sysnotify_mailer_notifications_received_total", "notification", True),
                    "{{notification}}",
                ),
                Query(
                    rate("sysnotify_mailer_truncated_alerts_total", "webhook", True),
                    "cut: {{webhook}}",
                ),
            ],
            unit="cpm",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Exporter ingest rate",
            "Platform events applied per second, by event type.",
            [Query(rate("sysnotify_exporter_events_ingested_total", "type"), "{{type}}")],
            unit="cps",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Exporter rejections",
            "Rejected ingest requests or files per second by reason, and events in "
            "rejected batches.",
            [
                Query(
                    rate("sysnotify_exporter_batches_rejected_total", "reason"),
                    "batches: {{reason}}",
                ),
                Query(rate("sysnotify_exporter_events_rejected_total"), "events"),
            ],
            unit="cps",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Exporter collection time",
            "Time the exporter's last /metrics collection took.",
            [Query("max(sysnotify_exporter_collect_duration_seconds)", "collection")],
            unit="s",
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Since last ingested event",
            "Time since the exporter last applied an event from the platform. A steady "
            "climb means the platform stopped sending.",
            [
                Query(
                    "time() - max(sysnotify_exporter_last_event_timestamp_seconds)",
                    "since last event",
                )
            ],
            unit="s",
            width=8,
            minimum=0,
        ),
        Panel(
            "stat",
            "Scrape targets up",
            "Whether Prometheus reaches each target it scrapes (1 up, 0 down).",
            [Query("up", "{{job}} {{instance}}", instant=True)],
            unit="none",
            width=8,
            thresholds=[(None, BAD), (1, OK)],
            mappings=[value_map({"1": ("up", OK), "0": ("down", BAD)})],
            options={"textMode": "value_and_name", "colorMode": "background"},
        ),
        Panel(
            "table",
            "Operator alerts firing",
            "Alerts about the pipeline itself (exporter, mailer, outbox, watchdog) firing "
            "now; they go to the operators, never to customers. The Watchdog always fires.",
            [Query('ALERTS{alertstate="firing", audience="operator"}', instant=True)],
            unit="none",
            width=16,
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "Value": True,
                            "__name__": True,
                            "alertstate": True,
                            "audience": True,
                        },
                        "renameByName": {
                            "alertname": "Alert",
                            "category": "Category",
                            "severity": "Severity",
                        },
                    },
                },
            ],
        ),
    ]
    return meta | {"templating": {"list": [datasource_variable()]}}, panels


def datasource_variable() -> dict[str, Any]:
    """The `datasource` variable every panel and target uses (never a fixed datasource)."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "options": [],
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


# -- rendering ------------------------------------------------------------------------------


def thresholds(steps: list[tuple[float | None, str]]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    """Grafana's JSON model of one panel at grid position (x, y)."""
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": thresholds(panel.thresholds),
        "mappings": panel.mappings,
        "color": {"mode": "thresholds"}
        if panel.kind in ("stat", "bargauge")
        else {"mode": "palette-classic"},
    }
    for key, value in (
        ("min", panel.minimum),
        ("max", panel.maximum),
        ("decimals", panel.decimals),
        ("noValue", panel.no_value),
    ):
        if value is not None:
            defaults[key] = value
    options = dict(panel.options)
    if panel.kind == "timeseries":
        style = options.pop("thresholdsStyle", "off")
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": style},
        }
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        } | options
    elif panel.kind in ("stat", "bargauge"):
        reduce = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
        common = (
            {
                "orientation": "auto",
                "textMode": "auto",
                "colorMode": "value",
                "graphMode": "none",
                "justifyMode": "auto",
            }
            if panel.kind == "stat"
            else {"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}
        )
        options = reduce | common | options
    elif panel.kind == "table":
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
        options = {"showHeader": True, "cellHeight": "sm"} | options
    else:
        raise ValueError(f"{panel.title}: panel type {panel.kind!r} is not allowed")

    targets = []
    for index, query in enumerate(panel.queries):
        target: dict[str, Any] = {
            "datasource": DATASOURCE,
            "refId": chr(ord("A") + index),
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "range": not query.instant,
            "instant": query.instant,
        }
        if panel.kind == "table":
            target["format"] = "table"
        targets.append(target)

    rendered: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": panel.overrides},
        "options": options,
        "targets": targets,
    }
    if panel.transformations:
        rendered["transformations"] = panel.transformations
    return rendered


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Places panels left to right in rows of the 24-column grid, wrapping when a row is full."""
    rendered, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        rendered.append(panel_json(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return rendered


def dashboard(meta: dict[str, Any], panels: list[Panel]) -> dict[str, Any]:
    """The whole dashboard model; `id` is null so Grafana assigns its own."""
    return {
        "id": None,
        "uid": meta["uid"],
        "title": meta["title"],
        "description": meta["description"],
        "tags": ["sysnotify"],
        "editable": False,
        "graphTooltip": 1,
        "liveNow": False,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "time": meta["time"],
        "timepicker": {},
        "timezone": "utc",
        "version": 1,
        "annotations": {"list": []},
        "links": [
            {
                "title": "sysnotify dashboards",
                "type": "dashboards",
                "tags": ["sysnotify"],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": meta["templating"],
        "panels": layout(panels),
    }


DASHBOARDS = {
    "sysnotify-integration-health.json": integration_health,
    "sysnotify-notification-pipeline.json": notification_pipeline,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as committed."""
    return {
        name: json.dumps(dashboard(*build()), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="report committed dashboards that differ from the generator; change nothing",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DASHBOARDS_DIR,
        help=f"output directory (default: {DASHBOARDS_DIR.relative_to(REPO_ROOT)})",
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = args.out / name
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(
            "out of date (run python scripts/gen-dashboards.py): "
            + ", ".join(str(path) for path in stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
