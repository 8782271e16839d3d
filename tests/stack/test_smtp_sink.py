"""The local SMTP sink keeps each email with its envelope, and its inbox page shows them."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

from stack.process import free_port
from stack.smtp_sink import MailSink, create_inbox_app, read_maildir


def _message(to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "no-reply@acme.example"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("plain body")
    message.add_alternative("<p>html <b>body</b></p>", subtype="html")
    return message


def test_sink_stores_envelope_and_message_and_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    with MailSink(tmp_path, port=port):
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(
                _message("a@x.example", "first"), to_addrs=["a@x.example", "bcc@x.example"]
            )
    # A new sink on the same directory continues the numbering instead of overwriting.
    with MailSink(tmp_path, port=port):
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(_message("b@x.example", "second"))
    mails = read_maildir(tmp_path)
    assert [(m.number, m.subject, m.rcpt_tos) for m in mails] == [
        (1, "first", ("a@x.example", "bcc@x.example")),
        (2, "second", ("b@x.example",)),
    ]
    assert mails[0].part("text/plain").strip() == "plain body"
    assert "<b>body</b>" in mails[0].part("text/html")
    assert not list(tmp_path.glob(".*.tmp"))


def test_inbox_lists_and_shows_messages_with_the_html_isolated(tmp_path: Path) -> None:
    port = free_port()
    with MailSink(tmp_path, port=port):
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(_message("a@x.example", "<script>alert(1)</script>"))
    client = create_inbox_app(tmp_path).test_client()
    index = client.get("/").get_data(as_text=True)
    assert "a@x.example" in index and "&lt;script&gt;" in index and "<script>" not in index
    assert client.get("/mail/1").status_code == 200
    html = client.get("/mail/1/html")
    assert "default-src 'none'" in html.headers["Content-Security-Policy"]
    assert client.get("/mail/99").status_code == 404
