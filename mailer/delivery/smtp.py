"""Sends messages over SMTP, keeping one connection open across messages.

Every failure is classified: `TransientSendError` (cannot connect, timeout, disconnect, 4xx
reply, authentication failure: a configuration fix or a later try can succeed) or
`PermanentSendError` (a 5xx reply for this message or recipient: retrying the same message
gives the same answer). RFC 5321 calls 5xx permanent; Alertmanager's own email notifier
retries them, but the mailer owns its retries and a 550 "no such user" never heals.

A transaction is run step by step (not with smtplib's `sendmail`), so a failure is known to
come before the end of data (nothing can have been delivered: a dropped connection is simply
replaced) or after it (the server may have the message: it is never sent again from here).
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable

from sysnotify.mailer.config import SmtpConfig
from sysnotify.mailer.delivery.message import OutgoingMessage


class SendError(Exception):
    """Sending failed; the message starts with the SMTP step that failed."""

    kind = "transient"


class TransientSendError(SendError):
    kind = "transient"


class PermanentSendError(SendError):
    kind = "permanent"


class _Dropped(Exception):
    """The server dropped the connection before the end of data: nothing was delivered."""


KeepClaim = Callable[[], None]
MAX_REPLY_LINE = 8192  # as smtplib's


def _unclaimed() -> None:
    """The `keep_claim` of a send that holds no outbox claim (a benchmark, a check)."""


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _classify(step: str, code: int, text: bytes | str) -> SendError:
    detail = _text(text)
    message = f"{step}: {code} {detail}".strip()
    if 500 <= code < 600:
        return PermanentSendError(message)
    return TransientSendError(message)


def _connect_failure(error: BaseException, where: str, username: str | None) -> SendError | None:
    """What a failure while connecting means; None for one that is not the server's (the
    claim check's), which passes through as it is."""
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return TransientSendError(
            f"authenticate as {username}: {error.smtp_code} {_text(error.smtp_error)}"
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return TransientSendError(f"{where}: {error}")
    if isinstance(error, smtplib.SMTPResponseException):
        # A 5xx greeting or EHLO is a server problem, not this message's: retry later.
        return TransientSendError(f"{where}: {error.smtp_code} {_text(error.smtp_error)}")
    if isinstance(error, (OSError, smtplib.SMTPException)):
        return TransientSendError(f"{where}: {error}")
    return None


def _data_section(data: bytes) -> bytes:
    """The message as the DATA command carries it: lines starting with "." get a second one
    (RFC 5321, 4.5.2), and CRLF "." CRLF ends it."""
    quoted = re.sub(rb"(?m)^\.", b"..", data)
    if not quoted.endswith(b"\r\n"):
        quoted += b"\r\n"
    return quoted + b".\r\n"


class SmtpSender:
    """One SMTP connection, opened on demand and reused; not shared between threads."""

    def __init__(self, config: SmtpConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._connection: smtplib.SMTP | None = None
        self._last_used = 0.0
        self._lock = threading.Lock()

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self, keep_claim: KeepClaim) -> smtplib.SMTP:
        cfg = self.config
        conn: smtplib.SMTP | None = None
        try:
            if cfg.security == "tls":
                conn = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout_seconds, context=self._tls_context()
                )
            else:
                conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
            keep_claim()
            conn.ehlo()
            if cfg.security == "starttls":
                keep_claim()
                conn.starttls(context=self._tls_context())
                keep_claim()
                conn.ehlo()
            if cfg.username:
                keep_claim()
                conn.login(cfg.username, cfg.password or "")
        except BaseException as error:
            if conn is not None:
                conn.close()
            failure = _connect_failure(error, f"connect to {cfg.host}:{cfg.port}", cfg.username)
            if failure is None:
                raise
            raise failure from error
        return conn

    def _usable_connection(self, keep_claim: KeepClaim) -> smtplib.SMTP:
        conn = self._connection
        if conn is not None and self.clock() - self._last_used > self.config.noop_after_seconds:
            try:
                if conn.noop()[0] != 250:
                    raise smtplib.SMTPServerDisconnected("NOOP refused")
            except (OSError, smtplib.SMTPException):
                self.close()
                conn = None
        if conn is None:
            conn = self._connection = self._connect(keep_claim)
        return conn

    def send(
        self,
        message: OutgoingMessage,
        sender: str,
        recipient: str,
        keep_claim: KeepClaim = _unclaimed,
    ) -> None:
        """Sends `message` to exactly `recipient`, reconnecting once if the server dropped us.

        `keep_claim` is called before every SMTP step (sysnotify.mailer.delivery.lease), the
        last time just before the end of data; whatever it raises stops the send with the
        connection reset or closed, so the server never completes the message, and passes
        through.

        A connection the server dropped while it was idle shows at MAIL, RCPT or DATA, before
        any of the message went out: one fresh connection tries again. After the end of data
        nothing is tried again here. The reply's first line decides (every line of a reply
        has the same code, RFC 5321 4.2.1): a 250 means sent, however the connection breaks
        afterwards. No reply at all is taken as a 451, as RFC 5321 (3.8) asks: the server may
        have the message or not, and the worker tries again later (RFC 1047's duplicate).

        :raise TransientSendError: try again later.
        :raise PermanentSendError: this message will never be accepted.
        """
        with self._lock:
            for attempt in (1, 2):
                keep_claim()
                conn = self._usable_connection(keep_claim)
                if message.smtputf8 and not conn.has_extn("smtputf8"):
                    raise PermanentSendError(
                        f"RCPT TO {recipient}: the address is not ASCII "
                        "and the server does not offer SMTPUTF8"
                    )
                try:
                    self._transaction(conn, message, sender, recipient, keep_claim)
                except _Dropped as error:
                    self.close()
                    if attempt == 2:
                        raise TransientSendError(f"{error}: server disconnected") from error
                    continue  # a reused connection may have timed out on the server's side
                self._last_used = self.clock()
                return

    def _transaction(
        self,
        conn: smtplib.SMTP,
        message: OutgoingMessage,
        sender: str,
        recipient: str,
        keep_claim: KeepClaim,
    ) -> None:
        options = [f"SIZE={len(message.data)}"] if conn.has_extn("size") else []
        if message.smtputf8:
            options.append("SMTPUTF8")
        self._keep(conn, keep_claim, in_data=False)
        self._command(conn, f"MAIL FROM {sender}", (250,), lambda: conn.mail(sender, options))
        self._keep(conn, keep_claim, in_data=False)
        self._command(conn, f"RCPT TO {recipient}", (250, 251), lambda: conn.rcpt(recipient))
        self._keep(conn, keep_claim, in_data=False)
        self._command(conn, "DATA", (354,), lambda: conn.docmd("DATA"))
        self._keep(conn, keep_claim, in_data=True)
        # From here on the server may accept the message: it is never sent again from here.
        try:
            conn.send(_data_section(message.data))
        except (OSError, smtplib.SMTPException) as error:
            self.close()  # the end of data did not go out whole: the server drops the message
            raise TransientSendError(f"DATA: {error}") from error
        code, reply = self._final_reply(conn)
        if not 200 <= code < 300:
            self._refused(conn, code)
            raise _classify("DATA", code, reply)

    def _command(
        self,
        conn: smtplib.SMTP,
        step: str,
        expected: tuple[int, ...],
        command: Callable[[], tuple[int, bytes]],
    ) -> None:
        """One command of the envelope, before any of the message went out."""
        try:
            code, reply = command()
        except smtplib.SMTPServerDisconnected as error:
            raise _Dropped(step) from error
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise TransientSendError(f"{step}: {error}") from error
        if code not in expected:
            self._refused(conn, code)
            raise _classify(step, code, reply)

    def _keep(self, conn: smtplib.SMTP, keep_claim: KeepClaim, in_data: bool) -> None:
        """Asks the claim whether to go on; when not, the server is made to forget the
        message: RSET, or inside DATA (after its 354) only closing the connection does."""
        try:
            keep_claim()
        except BaseException:
            if in_data:
                self.close()
            else:
                self._reset(conn)
            raise

    def _final_reply(self, conn: smtplib.SMTP) -> tuple[int, bytes]:
        """The code and text of the answer to the end of data, read from its first line on;
        a connection lost during the rest of a multi-line reply keeps the code."""
        if conn.file is None and conn.sock is not None:
            conn.file = conn.sock.makefile("rb")
        try:
            first = conn.file.readline(MAX_REPLY_LINE + 1) if conn.file is not None else b""
            problem = f"unreadable reply {_text(first)!r}" if first else "connection closed"
        except OSError as error:
            first, problem = b"", str(error)
        if not first[:3].isdigit():
            self.close()
            raise TransientSendError(
                "DATA: no answer to the end of data (the server may have accepted the message; "
                f"taken as 451): {problem}"
            )
        code, text = int(first[:3]), first[4:].strip()
        if first[3:4] == b"-":
            try:
                text += b"\n" + conn.getreply()[1]
            except (OSError, smtplib.SMTPException):
                self.close()
        return code, text

    def _refused(self, conn: smtplib.SMTP, code: int) -> None:
        """After a refusal: a 421 closes the connection (as the server does), others keep it."""
        if code == 421:
            self.close()
        else:
            self._reset(conn)

    def _reset(self, conn: smtplib.SMTP) -> None:
        """Keeps the connection for the next message after a per-message refusal."""
        try:
            conn.rset()
            self._last_used = self.clock()
        except (OSError, smtplib.SMTPException):
            self.close()

    def check(self) -> None:
        """Connects (or checks the open connection); raises TransientSendError on failure."""
        with self._lock:
            self._usable_connection(_unclaimed)

    def close(self) -> None:
        conn, self._connection = self._connection, None
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                try:
                    conn.close()
                except OSError:
                    pass
