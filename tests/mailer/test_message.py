"""MIME messages: structure, stable ids, threading, and no header injection."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from mailer.message import build_message, message_id
from mailer.model import Brand, RenderedEmail

BRAND = Brand(product_name="Acme Insights", sender_address="no-reply@acme.example",
              console_url="https://console.acme.example", support_email="help@acme.example")
DATE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def rendered(subject: str = "Credentials expired for Globex") -> RenderedEmail:
    return RenderedEmail(subject=subject, text="Plain text body\n", html="<p>HTML body</p>")


def parsed(message: object) -> email.message.EmailMessage:
    return email.message_from_bytes(message.as_bytes(),  # type: ignore[attr-defined]
                                     policy=email.policy.default)  # type: ignore[return-value]


def test_message_ids_are_stable_per_notification_and_recipient() -> None:
    first = message_id("key-1", "a@corp.example", "acme.example")
    assert first == message_id("key-1", "A@corp.example", "acme.example")
    assert first != message_id("key-1", "b@corp.example", "acme.example")
    assert first != message_id("key-2", "a@corp.example", "acme.example")
    assert first.startswith("<") and first.endswith("@acme.example>")


def test_structure_and_headers() -> None:
    message = parsed(build_message(rendered(), BRAND, "a@corp.example", "<id-2@acme.example>",
                                   ("<id-1@acme.example>", "<id-0@acme.example>"), DATE,
                                   {"X-Sysnotify-Phase": "recovery"}))
    assert message["From"] == "Acme Insights <no-reply@acme.example>"
    assert message["To"] == "a@corp.example"
    assert message["Cc"] is None and message["Bcc"] is None
    assert message["Message-ID"] == "<id-2@acme.example>"
    assert message["In-Reply-To"] == "<id-0@acme.example>"
    assert message["References"] == "<id-1@acme.example> <id-0@acme.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Sysnotify-Phase"] == "recovery"
    assert message["Date"] == "Fri, 27 Nov 2026 09:00:00 +0000"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content().splitlines() == ["Plain text body"]


def test_line_breaks_in_a_subject_cannot_inject_headers() -> None:
    subject = "Credentials expired\r\nBcc: victim@evil.example\r\n\r\nbody"
    raw = build_message(rendered(subject), BRAND, "a@corp.example", "<id@acme.example>", (),
                        DATE).as_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Bcc"] is None
    assert message["Subject"] == "Credentials expired Bcc: victim@evil.example body"


def test_an_injected_recipient_is_refused() -> None:
    with pytest.raises(ValueError):
        build_message(rendered(), BRAND, "a@corp.example\r\nBcc: x@evil.example",
                      "<id@acme.example>", (), DATE).as_bytes()
