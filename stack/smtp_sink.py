"""A local SMTP server that keeps every email it receives, and a small inbox page to read them.

Used by `make demo` and the end-to-end tests in place of a real mail provider. Each accepted
message is written atomically as `<n>.eml` with a `<n>.json` envelope beside it (MAIL FROM,
RCPT TO, when it arrived), so tests can read exactly what the SMTP conversation carried.

    python -m stack.smtp_sink --smtp 127.0.0.1:2525 --http 127.0.0.1:8025 --maildir run/mail
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the sink stored it."""

    number: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    received_at: str
    message: EmailMessage

    @property
    def subject(self) -> str:
        # Unfolded: a subject folded right after "Subject:" keeps the fold's leading space.
        return str(self.message.get("Subject", "")).strip()

    def header(self, name: str) -> str:
        return str(self.message.get(name, "")).strip()

    def part(self, content_type: str) -> str:
        """The decoded body part of `content_type` ('text/plain' or 'text/html'), or ''."""
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                return str(part.get_content())
        return ""


class _StoringHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.lock = threading.Lock()
        existing = [int(p.stem) for p in maildir.glob("*.eml") if p.stem.isdigit()]
        self.counter = itertools.count(max(existing, default=0) + 1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            number = next(self.counter)
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else str(data).encode()
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        # Envelope first, message last: a reader that sees the .eml also finds its .json.
        _write_atomically(self.maildir / f"{number:06d}.json", json.dumps(meta).encode())
        _write_atomically(self.maildir / f"{number:06d}.eml", raw)
        return "250 Message accepted for delivery"


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class _DeepBacklogController(Controller):
    """asyncio listens with a backlog of 100; a burst of connections (Alertmanager's own email
    notifier opens one per email) would be refused and retried instead of received."""

    def _create_server(self):  # type: ignore[no-untyped-def]
        return self.loop.create_server(
            self._factory_invoker,
            host=self.hostname,
            port=self.port,
            ssl=self.ssl_context,
            backlog=4096,
        )


class MailSink:
    """The SMTP side: start(), stop(), and read what arrived with messages()."""

    def __init__(self, maildir: Path, host: str = "127.0.0.1", port: int = 2525) -> None:
        self.maildir = Path(maildir)
        self.maildir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self._handler = _StoringHandler(self.maildir)
        self._controller: Controller | None = None

    def start(self) -> MailSink:
        # A fresh Controller per start: a stopped one has closed its event loop, and tests
        # stop and start the sink on the same port to simulate an SMTP outage.
        self._controller = _DeepBacklogController(self._handler, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self) -> list[ReceivedMail]:
        return read_maildir(self.maildir)


def read_maildir(maildir: Path) -> list[ReceivedMail]:
    """Every stored message in arrival order."""
    mails = []
    for eml in sorted(Path(maildir).glob("*.eml")):
        meta = json.loads(eml.with_suffix(".json").read_text())
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mails.append(
            ReceivedMail(
                number=int(eml.stem),
                mail_from=meta["mail_from"],
                rcpt_tos=tuple(meta["rcpt_tos"]),
                received_at=meta["received_at"],
                message=message,
            )
        )
    return mails


def wait_for_messages(maildir: Path, count: int, timeout: float) -> list[ReceivedMail]:
    """Polls until at least `count` messages are stored or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        mails = read_maildir(maildir)
        if len(mails) >= count or time.monotonic() > deadline:
            return mails
        time.sleep(0.2)


def create_inbox_app(maildir: Path) -> Any:
    """A read-only Flask app listing the stored messages and showing each one."""
    from flask import Flask, abort, render_template_string

    app = Flask("sysnotify-inbox")

    @app.get("/")
    def index() -> str:
        return render_template_string(_INDEX, mails=list(reversed(read_maildir(maildir))))

    @app.get("/mail/<int:number>")
    def show(number: int) -> str:
        for mail in read_maildir(maildir):
            if mail.number == number:
                return render_template_string(_SHOW, mail=mail)
        abort(404)

    @app.get("/mail/<int:number>/html")
    def show_html(number: int) -> Any:
        for mail in read_maildir(maildir):
            if mail.number == number:
                # Served as its own document inside a sandboxed iframe: the email is untrusted.
                return (
                    mail.part("text/html"),
                    200,
                    {
                        "Content-Type": "text/html; charset=utf-8",
                        "Content-Security-Policy": "default-src 'none'; img-src * data:; style-src 'unsafe-inline'",
                    },
                )
        abort(404)

    return app


_INDEX = """<!doctype html><meta charset="utf-8"><title>sysnotify inbox</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left}
tr:nth-child(even){background:#f3f3f3}</style>
<h1>Inbox ({{ mails|length }} messages)</h1>
<table><tr><th>#</th><th>Received</th><th>To</th><th>Subject</th></tr>
{% for m in mails %}<tr><td>{{ m.number }}</td><td>{{ m.received_at }}</td>
<td>{{ m.rcpt_tos|join(', ') }}</td><td><a href="/mail/{{ m.number }}">{{ m.subject }}</a></td></tr>
{% endfor %}</table>"""

_SHOW = """<!doctype html><meta charset="utf-8"><title>{{ mail.subject }}</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}</style>
<p><a href="/">&larr; inbox</a></p><h2>{{ mail.subject }}</h2>
<p>From: {{ mail.message['From'] }}<br>To: {{ mail.rcpt_tos|join(', ') }}<br>
Message-ID: {{ mail.message['Message-ID'] }}<br>In-Reply-To: {{ mail.message['In-Reply-To'] or '-' }}</p>
<iframe sandbox src="/mail/{{ mail.number }}/html" style="width:680px;height:900px;border:1px solid #ccc"></iframe>
<h3>Plain text</h3><pre>{{ mail.part('text/plain') }}</pre>"""


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smtp", type=_host_port, default=("127.0.0.1", 2525))
    parser.add_argument("--http", type=_host_port, default=None, help="serve the inbox page")
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    sink = MailSink(args.maildir, *args.smtp).start()
    print(f"SMTP sink on {args.smtp[0]}:{args.smtp[1]}, storing in {args.maildir}", flush=True)
    try:
        if args.http:
            from werkzeug.serving import make_server

            server = make_server(args.http[0], args.http[1], create_inbox_app(args.maildir))
            print(f"inbox on http://{args.http[0]}:{args.http[1]}/", flush=True)
            server.serve_forever()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
