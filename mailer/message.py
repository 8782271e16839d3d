"""Builds the MIME message of one email to one recipient.

multipart/alternative with the plain text first and the HTML last (clients show the last part
they understand). Headers go through the email package's default policy, which refuses CR/LF
in a header value, so no label or annotation can inject a header; the subject is folded to
one line first so a template's stray newline is not an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from mailer.model import Brand, RenderedEmail

_WHITESPACE = re.compile(r"\s+")


def sender_domain(brand: Brand) -> str:
    return brand.sender_address.rsplit("@", 1)[-1]


def message_id(notification_key: str, recipient: str, domain: str) -> str:
    """The stable Message-ID of one notification to one recipient.

    Derived from the notification key, so a re-delivery of the same notification (which the
    outbox refuses anyway) would carry the same id, and a recovery can name its problem's id.
    """
    digest = hashlib.sha256(f"{notification_key}\n{recipient.lower()}".encode()).hexdigest()
    return f"<{digest[:40]}@{domain}>"


def build_message(rendered: RenderedEmail, brand: Brand, recipient: str, msg_id: str,
                  thread_ids: Sequence[str], date: datetime,
                  extra_headers: Mapping[str, str] | None = None) -> EmailMessage:
    """The message as it goes to the SMTP server.

    :raise ValueError: if a header value is invalid (e.g. a malformed address).
    """
    message = EmailMessage(policy=SMTP)
    local, _, domain = brand.sender_address.rpartition("@")
    message["From"] = Address(display_name=brand.sender_name or brand.product_name,
                              username=local, domain=domain)
    to_local, _, to_domain = recipient.rpartition("@")
    message["To"] = Address(username=to_local, domain=to_domain)
    message["Subject"] = _WHITESPACE.sub(" ", rendered.subject).strip()
    message["Date"] = format_datetime(date)
    message["Message-ID"] = msg_id
    if thread_ids:
        message["In-Reply-To"] = thread_ids[-1]
        message["References"] = " ".join(thread_ids)
    # Tell auto-responders (vacation replies, Outlook's out-of-office) not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    for name, value in (extra_headers or {}).items():
        message[name] = value
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
