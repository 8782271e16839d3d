"""A real SMTP server on loopback for the mailer tests.

`SmtpServer` is an aiosmtpd Controller on 127.0.0.1 that records every message it accepts
and can be told to refuse transiently (421/451) or permanently (550), be slowed down (every
command, or only the end of data), run a test's code at a command, break the connection right
after accepting a message or on QUIT, or be stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from stack.process import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class RecordingHandler:
    """aiosmtpd handler: keeps accepted messages; refuses on demand."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.rcpt_reply: str | None = None  # e.g. "451 try later" or "550 no such user"
        self.rcpt_reply_count = 0  # how many RCPTs get it; 0 = until cleared
        self.refused_addresses: dict[str, str] = {}  # address -> reply, always
        self.sessions = 0  # EHLOs seen: one per SMTP connection
        self.data_delay = 0.0  # seconds to wait before accepting DATA (slow server)
        # Seconds before answering EHLO, MAIL, RCPT and the end of data: a slow server whose
        # every reply still comes within the client's timeout.
        self.command_delay = 0.0
        # Called (in the server's thread) when that command arrives: "EHLO", "MAIL", "RCPT",
        # "DATA" (the end of data, before the message is accepted).
        self.hooks: dict[str, Callable[[], None]] = {}
        # After accepting a message: send the first line of a two-line 250 reply, then break
        # the connection (the message is accepted, the client never reads a whole reply).
        self.drop_after_accept = False
        self.drop_on_quit = False  # break the connection instead of answering QUIT
        # Seconds between keeping a message and answering its end of data (a server that
        # answers after the client gave up has the message all the same).
        self.answer_delay = 0.0

    async def _command(self, name: str) -> None:
        hook = self.hooks.get(name)
        if hook is not None:
            await asyncio.get_running_loop().run_in_executor(None, hook)
        if self.command_delay:
            await asyncio.sleep(self.command_delay)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        await self._command("EHLO")
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        await self._command("MAIL")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        if self.drop_on_quit:
            server.transport.abort()
        return "221 Bye"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        await self._command("RCPT")
        with self.lock:
            if address in self.refused_addresses:
                return self.refused_addresses[address]
            if self.rcpt_reply is not None:
                reply = self.rcpt_reply
                if self.rcpt_reply_count:
                    self.rcpt_reply_count -= 1
                    if self.rcpt_reply_count == 0:
                        self.rcpt_reply = None
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self._command("DATA")
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if self.drop_after_accept:
            server.transport.write(b"250-Message accepted\r\n")
            server.transport.close()  # sends what is written, then closes
        return "250 Message accepted"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.handler = RecordingHandler()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def fail(self, reply: str, count: int = 0) -> None:
        """Answer RCPT with `reply` (e.g. "451 4.3.0 try later") `count` times (0: always)."""
        with self.handler.lock:
            self.handler.rcpt_reply = reply
            self.handler.rcpt_reply_count = count

    def heal(self) -> None:
        with self.handler.lock:
            self.handler.rcpt_reply = None

    def refuse(self, address: str, reply: str = "550 5.1.1 no such user") -> None:
        with self.handler.lock:
            self.handler.refused_addresses[address] = reply

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.messages if r.rcpt_tos == [address]]
