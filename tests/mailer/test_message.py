"""MIME messages: structure, stable ids, threading, and no header injection."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import pytest

from sysnotify.mailer.delivery.message import build_message, message_id
from sysnotify.mailer.delivery.queue import tracking_headers
from sysnotify.mailer.model import Brand, RenderedEmail
from sysnotify.mailer.store import OutboxRow

BRAND = Brand(
    product_name="Acme Insights",
    sender_address="no-reply@acme.example",
    console_url="https://console.acme.example",
    support_email="help@acme.example",
)
DATE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def rendered(subject: str = "Credentials expired for Globex") -> RenderedEmail:
    return RenderedEmail(subject=subject, text="Plain text body\n", html="<p>HTML body</p>")


def parsed(message: object) -> email.message.EmailMessage:
    return email.message_from_bytes(
        message.as_bytes(),  # type: ignore[attr-defined]
        policy=email.policy.default,
    )  # type: ignore[return-value]


def test_message_ids_are_stable_per_notification_and_recipient() -> None:
    first = message_id("key-1", "a@corp.example", "acme.example")
    assert first == message_id("key-1", "A@corp.example", "acme.example")
    assert first != message_id("key-1", "b@corp.example", "acme.example")
    assert first != message_id("key-2", "a@corp.example", "acme.example")
    assert first.startswith("<") and first.endswith("@acme.example>")


def test_structure_and_headers() -> None:
    message = parsed(
        build_message(
            rendered(),
            BRAND,
            "a@corp.example",
            "<id-2@acme.example>",
            ("<id-1@acme.example>", "<id-0@acme.example>"),
            DATE,
            {"X-Sysnotify-Phase": "recovery"},
        )
    )
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
    assert _content(message, "plain").splitlines() == ["Plain text body"]


def test_line_breaks_in_a_subject_cannot_inject_headers() -> None:
    subject = "Credentials expired\r\nBcc: victim@evil.example\r\n\r\nbody"
    raw = build_message(
        rendered(subject), BRAND, "a@corp.example", "<id@acme.example>", (), DATE
    ).as_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Bcc"] is None
    assert message["Subject"] == "Credentials expired Bcc: victim@evil.example body"


def test_an_injected_recipient_is_refused() -> None:
    with pytest.raises(ValueError):
        build_message(
            rendered(),
            BRAND,
            "a@corp.example\r\nBcc: x@evil.example",
            "<id@acme.example>",
            (),
            DATE,
        ).as_bytes()


def _content(message: object, kind: str) -> str:
    """A part's text as the reader sees it (the parser keeps the wire's CRLF)."""
    part = message.get_body((kind,))  # type: ignore[attr-defined]
    return str(part.get_content()).replace("\r\n", "\n")


def _build(
    subject: str = "Credentials expired for Globex",
    text: str = "Plain text body\n",
    html: str = "<p>HTML body</p>",
    recipient: str = "a@corp.example",
    extra: dict[str, str] | None = None,
) -> bytes:
    return build_message(
        RenderedEmail(subject=subject, text=text, html=html),
        BRAND,
        recipient,
        "<id@acme.example>",
        (),
        DATE,
        extra,
    ).as_bytes()


def test_every_line_ends_in_crlf_and_none_is_too_long() -> None:
    raw = _build(text="one\ntwo\r\nthree\rfour\n", html="<p>" + "x" * 2000 + "</p>\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_ascii_parts_go_as_7bit_and_round_trip() -> None:
    html = '<table>\n  <tr><td style="color: #1f4e79">Globex &amp; Co</td></tr>\n</table>\n'
    raw = _build(text="Line one\n\nLine three\n", html=html)
    assert raw.count(b"Content-Transfer-Encoding: 7bit") == 2
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert _content(message, "plain") == "Line one\n\nLine three\n"
    assert _content(message, "html") == html


def test_non_ascii_and_long_lines_go_as_quoted_printable_and_round_trip() -> None:
    text = "Zürich’s credentials expired — renew them.\n"
    html = "<p>" + "Ünïcode " * 200 + "</p>\n"
    raw = _build(subject="Zugangsdaten für Zürich abgelaufen", text=text, html=html)
    raw.decode("ascii")  # nothing 8-bit on the wire
    assert raw.count(b"Content-Transfer-Encoding: quoted-printable") == 2
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert message["Subject"] == "Zugangsdaten für Zürich abgelaufen"
    assert _content(message, "plain") == text
    assert _content(message, "html") == html
    ascii_long = "<p>" + "y" * 1500 + "</p>\n"
    message = email.message_from_bytes(_build(html=ascii_long), policy=email.policy.default)
    assert _content(message, "html") == ascii_long


def test_long_subjects_are_folded_and_read_back_whole() -> None:
    subject = " ".join(f"word{n}" for n in range(40))
    raw = _build(subject=subject)
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in header_block.split(b"\r\n"))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == subject


def test_the_boundary_never_occurs_in_a_part() -> None:
    first = email.message_from_bytes(_build(), policy=email.policy.default)
    boundary = first.get_boundary()
    assert boundary
    raw = _build(text=f"--{boundary}\nstill text\n")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_boundary() != boundary
    assert _content(message, "plain") == f"--{boundary}\nstill text\n"


@pytest.mark.parametrize(
    "extra",
    [
        {"X-Sysnotify-Account": "globex\r\nBcc: x@evil.example"},
        {"X-Bad Name": "value"},
        {"X-Bad:Name": "value"},
    ],
)
def test_bad_extra_headers_are_refused(extra: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        _build(extra=extra)


@pytest.mark.parametrize(
    "recipient",
    [
        "a b@corp.example",
        "<a@corp.example>",
        "a@corp.example,b@x.example",
        "no-at-sign",
        "a@corp.example\n",
    ],
)
def test_malformed_recipients_are_refused(recipient: str) -> None:
    with pytest.raises(ValueError, match="^To: "):
        _build(recipient=recipient)


def test_a_non_ascii_recipient_needs_smtputf8() -> None:
    message = build_message(rendered(), BRAND, "jürgen@corp.example", "<id@acme.example>", (), DATE)
    assert message.smtputf8
    assert "To: jürgen@corp.example".encode() in message.data
    assert not build_message(
        rendered(), BRAND, "a@corp.example", "<id@acme.example>", (), DATE
    ).smtputf8


def test_a_display_name_with_specials_or_non_ascii_is_quoted_or_encoded() -> None:
    for name in ("Acme, Inc.", "Acme Insights ✓"):
        brand = Brand(
            product_name=name,
            sender_address="no-reply@acme.example",
            console_url="https://console.acme.example",
            support_email="help@acme.example",
        )
        raw = build_message(
            rendered(), brand, "a@corp.example", "<id@acme.example>", (), DATE
        ).as_bytes()
        raw.decode("ascii")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["From"].addresses[0].display_name == name
        assert message["From"].addresses[0].addr_spec == "no-reply@acme.example"


def test_tracking_headers_name_an_account_only_when_there_is_one() -> None:
    def headers(**request: str) -> dict[str, str]:
        row = SimpleNamespace(notification="credential_expired", phase="recovery", request=request)
        return tracking_headers(cast(OutboxRow, row))

    assert headers(audience="operator") == {
        "X-Sysnotify-Notification": "operators",
        "X-Sysnotify-Phase": "recovery",
    }
    assert headers(audience="customer") == {
        "X-Sysnotify-Notification": "credential_expired",
        "X-Sysnotify-Phase": "recovery",
        "X-Sysnotify-Account": "",
    }
