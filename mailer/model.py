"""Value types shared by the mailer's layers: what an email is about, and what it looks like.

The webhook layer turns Alertmanager payloads into EmailRequests; the renderer turns an
EmailRequest into a RenderedEmail; the outbox stores and sends those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sysnotify.mailer.catalog import NotificationKind

Phase = Literal["problem", "reminder", "recovery"]
RecipientRole = Literal["primary", "subscriber"]
AlertStatus = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Brand:
    """How emails look and sign off; from the `brand:` section of the mailer config."""

    product_name: str
    sender_address: str  # the no-reply From address
    console_url: str  # base URL of the platform's console; links are built from it
    support_email: str
    logo_url: str = ""
    sender_name: str = ""
    company_name: str = ""
    primary_color: str = "#1f4e79"
    accent_color: str = "#f2a900"
    background_color: str = "#f4f6f8"
    text_color: str = "#1c1c1c"
    footer_text: str = ""
    # Console paths joined to console_url, by purpose: credentials, integrations, web_tag,
    # privacy, sync, notifications (where a reader manages what they receive).
    console_paths: Mapping[str, str] = field(default_factory=dict)
    # The logo's display size in pixels: email clients need both to lay out the image box
    # before it loads (and Outlook ignores CSS sizes on images).
    logo_width: int = 160
    logo_height: int = 40


@dataclass(frozen=True)
class AlertView:
    """One alert as an email shows it."""

    alertname: str
    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None  # None while firing (Alertmanager sends the zero time)
    fingerprint: str


@dataclass(frozen=True)
class Recipient:
    address: str
    role: RecipientRole


@dataclass(frozen=True)
class EmailRequest:
    """Everything one email to one recipient is about.

    `alerts` are the alerts of one account and one notification kind that this email reports
    (several systems of one account are grouped into one email). For a recovery, `alerts`
    are the resolved ones.
    """

    notification: NotificationKind
    phase: Phase
    account: str
    account_name: str
    alerts: tuple[AlertView, ...]
    recipient: Recipient
    generated_at: datetime


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
