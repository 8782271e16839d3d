"""An SMTP server on loopback that only counts what it accepts, for the mailer benchmark.

It is aiosmtpd, like the stack's sink (stack/smtp_sink.py), but it writes nothing to disk: the
benchmark measures the senders, not the sink's fsyncs. For every accepted message it keeps
when it arrived, its recipients and its Message-ID, so a run can check that nothing was lost
and nothing was doubled.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_MESSAGE_ID = re.compile(rb"^message-id:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the DATA was accepted
    rcpt_tos: tuple[str, ...]
    message_id: str
    connection: int  # which SMTP connection carried it


class _CountingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[Arrival] = []
        self.connections = 0

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if not hasattr(session, "bench_connection"):
            with self.lock:
                self.connections += 1
                session.bench_connection = self.connections  # type: ignore[attr-defined]
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        raw = data if isinstance(data, bytes) else str(data).encode()
        headers = raw.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(headers)
        arrival = Arrival(
            time.monotonic(),
            tuple(envelope.rcpt_tos),
            found.group(1).decode() if found else "",
            getattr(session, "bench_connection", 0),
        )
        with self.lock:
            self.arrivals.append(arrival)
        return "250 Message accepted for delivery"


class _DeepBacklogController(Controller):
    """asyncio listens with a backlog of 100; Alertmanager opens one connection per email,
    up to thousands at once, and the surplus would be refused and retried with backoff: the
    benchmark would then measure the server's backlog instead of the sender."""

    def _create_server(self):  # type: ignore[no-untyped-def]
        return self.loop.create_server(
            self._factory_invoker,
            host=self.hostname,
            port=self.port,
            ssl=self.ssl_context,
            backlog=4096,
        )


class CountingSmtpServer:
    """Start with `with CountingSmtpServer(port) as server:`; read `server.arrivals()`."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._handler = _CountingHandler()
        # A fixed greeting name: no getfqdn() lookup for each connection.
        self._controller = _DeepBacklogController(
            self._handler, hostname=host, port=port, server_hostname="bench-smtp.example"
        )

    def __enter__(self) -> CountingSmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def count(self) -> int:
        with self._handler.lock:
            return len(self._handler.arrivals)

    def connections(self) -> int:
        with self._handler.lock:
            return self._handler.connections

    def arrivals(self) -> list[Arrival]:
        with self._handler.lock:
            return list(self._handler.arrivals)

    def wait_for(self, expected: int, timeout: float, poll: float = 0.02) -> bool:
        """Waits until `expected` messages arrived (True) or `timeout` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        while self.count() < expected:
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True


@dataclass(frozen=True)
class Tally:
    """Lost and doubled messages, judged by recipient (one expected per address) and by
    Message-ID (each id at most once)."""

    received: int
    distinct_recipients: int
    lost_recipients: int
    doubled_recipients: int
    doubled_message_ids: int

    @property
    def clean(self) -> bool:
        return not (self.lost_recipients or self.doubled_recipients or self.doubled_message_ids)


def tally(arrivals: list[Arrival], expected_recipients: set[str]) -> Tally:
    """Compares what arrived with the recipients that each expected exactly one message."""
    per_recipient = Counter(r.lower() for a in arrivals for r in a.rcpt_tos)
    per_id = Counter(a.message_id for a in arrivals if a.message_id)
    expected = {r.lower() for r in expected_recipients}
    return Tally(
        received=len(arrivals),
        distinct_recipients=len(per_recipient),
        lost_recipients=len(expected - set(per_recipient)),
        doubled_recipients=sum(1 for n in per_recipient.values() if n > 1),
        doubled_message_ids=sum(1 for n in per_id.values() if n > 1),
    )


def main() -> None:
    """`python -m bench.mail_counter PORT`: serves until stdin closes, so a benchmark can run
    the SMTP server in its own process, off the measured process's CPU."""
    import sys

    with CountingSmtpServer(int(sys.argv[1])) as server:
        print("ready", flush=True)
        sys.stdin.read()
        print(server.count(), flush=True)


if __name__ == "__main__":
    main()
