"""Builds the MIME message of one email to one recipient, straight to bytes.

multipart/alternative with the plain text first and the HTML last (clients show the last part
they understand). The bytes are written here rather than by the standard `email` package:
its header registry parses every header it has just been given and its generator re-folds
them, which cost more CPU than everything else in a delivery together (docs/performance.md).
What the package guaranteed is kept:

- no header value may contain CR or LF, so no label or annotation can inject a header (the
  subject is folded to one line first, so a template's stray newline is not an error);
- non-ASCII header text is RFC 2047 encoded (with the package's own `Header`), ASCII text is
  folded at spaces to lines of at most 78 characters;
- a body part goes as 7bit when it is ASCII with lines of at most 998 characters, which is
  the common case and the smallest on the wire; otherwise as quoted-printable UTF-8;
- every line ends in CRLF.

The result parses back with the `email` package to the same headers and parts; the tests
check that.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr

from sysnotify.mailer.model import Brand, RenderedEmail

_WHITESPACE = re.compile(r"\s+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field-name: printable ASCII but ":"
# An address as it may stand in To: no spaces, quotes, brackets or controls (the recipients
# registry has validated it already; this only keeps it from breaking the header).
_BARE_ADDRESS = re.compile(r"[^\s<>()\",;\\\[\]]+@[^\s<>()\",;\\\[\]@]+")

FOLD_AT = 78  # RFC 5322 2.1.1: lines SHOULD be no longer than 78 characters
LONGEST_LINE = 998  # ... and MUST be no longer than 998
CRLF = "\r\n"


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready for SMTP: its bytes, and whether it needs the server's SMTPUTF8
    (only when the recipient's address itself is not ASCII)."""

    data: bytes
    smtputf8: bool = False

    def as_bytes(self) -> bytes:
        return self.data


def sender_domain(brand: Brand) -> str:
    return brand.sender_address.rsplit("@", 1)[-1]


def message_id(notification_key: str, recipient: str, domain: str) -> str:
    """The stable Message-ID of one notification to one recipient.

    Derived from the notification key, so a re-delivery of the same notification (which the
    outbox refuses anyway) would carry the same id, and a recovery can name its problem's id.
    """
    digest = hashlib.sha256(f"{notification_key}\n{recipient.lower()}".encode()).hexdigest()
    return f"<{digest[:40]}@{domain}>"


def build_message(
    rendered: RenderedEmail,
    brand: Brand,
    recipient: str,
    msg_id: str,
    thread_ids: Sequence[str],
    date: datetime,
    extra_headers: Mapping[str, str] | None = None,
) -> OutgoingMessage:
    """The message as it goes to the SMTP server.

    :raise ValueError: naming the header when a value cannot be used (a malformed address,
        a line break in an id or an extra header).
    """
    if not _BARE_ADDRESS.fullmatch(recipient):
        raise ValueError(f"To: {recipient!r} is not a bare address")
    headers = [
        from_header(brand.sender_name or brand.product_name, brand.sender_address),
        f"To: {recipient}",
        unstructured("Subject", _WHITESPACE.sub(" ", rendered.subject).strip()),
        f"Date: {format_datetime(date)}",
        f"Message-ID: {_single_token('Message-ID', msg_id)}",
    ]
    if thread_ids:
        ids = [_single_token("References", value) for value in thread_ids]
        headers.append(f"In-Reply-To: {ids[-1]}")
        headers.append(folded("References", " ".join(ids)))
    # Tell auto-responders (vacation replies, Outlook's out-of-office) not to answer.
    headers.append("Auto-Submitted: auto-generated")
    headers.append("X-Auto-Response-Suppress: All")
    for name, value in (extra_headers or {}).items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r} is not valid")
        headers.append(unstructured(name, value))
    text = _part("text/plain", rendered.text)
    html = _part("text/html", rendered.html)
    boundary = _boundary(msg_id, text, html)
    headers.append("MIME-Version: 1.0")
    headers.append(f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"')
    data = CRLF.join(
        (
            CRLF.join(headers),
            "",
            f"--{boundary}",
            text,
            f"--{boundary}",
            html,
            f"--{boundary}--",
            "",
        )
    )
    smtputf8 = not recipient.isascii()
    return OutgoingMessage(data.encode("utf-8" if smtputf8 else "ascii"), smtputf8)


def from_header(display_name: str, address: str) -> str:
    """From with the display name quoted or RFC 2047 encoded as needed."""
    if "\r" in display_name or "\n" in display_name:
        raise ValueError("From: the display name must not contain line breaks")
    if not _BARE_ADDRESS.fullmatch(address) or not address.isascii():
        raise ValueError(f"From: {address!r} is not a bare ASCII address")
    # formataddr quotes an ASCII name with specials and RFC 2047 encodes any other; the
    # encoded words it may put on several lines are joined: one line of at most 998.
    return "From: " + formataddr((display_name, address), charset="utf-8").replace("\n", "")


def unstructured(name: str, value: str) -> str:
    """An unstructured header (Subject, X-...): folded ASCII, or RFC 2047 encoded words."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: the value must not contain line breaks")
    if value.isascii():
        return folded(name, value)
    encoded = Header(value, "utf-8", header_name=name).encode(linesep=CRLF)
    return f"{name}: {encoded}"


def folded(name: str, value: str) -> str:
    """`name: value`, folded before spaces so lines stay within 78 characters where the
    words allow it (a longer word stays whole on its own line)."""
    words = value.split(" ")
    lines: list[str] = []
    current = f"{name}: {words[0]}"
    for word in words[1:]:
        # Never fold before an empty word: the continuation line would be only whitespace.
        if word and len(current) + 1 + len(word) > FOLD_AT:
            lines.append(current)
            current = " " + word
        else:
            current += " " + word
    lines.append(current)
    if any(len(line) > LONGEST_LINE for line in lines):
        raise ValueError(f"{name}: a word is longer than {LONGEST_LINE} characters")
    return CRLF.join(lines)


def _single_token(name: str, value: str) -> str:
    if not value or any(ch.isspace() for ch in value) or not value.isascii():
        raise ValueError(f"{name}: {value!r} is not a message id")
    return value


def _part(content_type: str, body: str) -> str:
    """One body part: its two headers, a blank line and the encoded body (CRLF lines)."""
    if "\r" in body:
        body = _LINE_BREAK.sub("\n", body)
    if body.isascii() and "\0" not in body and max(map(len, body.split("\n"))) <= LONGEST_LINE:
        encoding, payload = "7bit", body.replace("\n", CRLF)
    else:
        encoding = "quoted-printable"
        # Encoded with LF line ends (the only breaks left), then every LF, hard or soft
        # (after "="), becomes CRLF.
        payload = (
            binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii").replace("\n", CRLF)
        )
    return (
        f'Content-Type: {content_type}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: {encoding}{CRLF}{CRLF}{payload}"
    )


def _boundary(msg_id: str, *parts: str) -> str:
    """A boundary that no part contains: derived from the message id (stable per email),
    extended in the unlikely case a body happens to contain it."""
    seed = hashlib.sha256(msg_id.encode("utf-8", "replace")).hexdigest()
    boundary = f"=_sysnotify_{seed[:24]}"
    counter = 0
    while any(boundary in part for part in parts):
        counter += 1
        boundary = f"=_sysnotify_{seed[:24]}_{counter}"
    return boundary
