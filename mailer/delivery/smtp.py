"""Sends messages over SMTP, keeping one connection open across messages.

Every failure is classified: `TransientSendError` (cannot connect, timeout, disconnect, 4xx
reply, authentication failure: a configuration fix or a later try can succeed) or
`PermanentSendError` (a 5xx reply for this message or recipient: retrying the same message
gives the same answer). RFC 5321 calls 5xx permanent; Alertmanager's own email notifier
retries them, but the mailer owns its retries and a 550 "no such user" never heals.
"""

from __future__ import annotations

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


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _classify(step: str, code: int, text: bytes | str) -> SendError:
    detail = _text(text)
    message = f"{step}: {code} {detail}".strip()
    if 500 <= code < 600:
        return PermanentSendError(message)
    return TransientSendError(message)


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

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        try:
            if cfg.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout_seconds, context=self._tls_context()
                )
            else:
                conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
            conn.ehlo()
            if cfg.security == "starttls":
                conn.starttls(context=self._tls_context())
                conn.ehlo()
            if cfg.username:
                conn.login(cfg.username, cfg.password or "")
        except smtplib.SMTPAuthenticationError as error:
            raise TransientSendError(
                f"authenticate as {cfg.username}: {error.smtp_code} {_text(error.smtp_error)}"
            ) from error
        except smtplib.SMTPNotSupportedError as error:
            raise TransientSendError(f"connect to {cfg.host}:{cfg.port}: {error}") from error
        except smtplib.SMTPResponseException as error:
            # A 5xx greeting or EHLO is a server problem, not this message's: retry later.
            raise TransientSendError(
                f"connect to {cfg.host}:{cfg.port}: {error.smtp_code} {_text(error.smtp_error)}"
            ) from error
        except (OSError, smtplib.SMTPException) as error:
            raise TransientSendError(f"connect to {cfg.host}:{cfg.port}: {error}") from error
        return conn

    def _usable_connection(self) -> smtplib.SMTP:
        conn = self._connection
        if conn is not None and self.clock() - self._last_used > self.config.noop_after_seconds:
            try:
                if conn.noop()[0] != 250:
                    raise smtplib.SMTPServerDisconnected("NOOP refused")
            except (OSError, smtplib.SMTPException):
                self.close()
                conn = None
        if conn is None:
            conn = self._connection = self._connect()
        return conn

    def send(self, message: OutgoingMessage, sender: str, recipient: str) -> None:
        """Sends `message` to exactly `recipient`, reconnecting once if the server dropped us.

        :raise TransientSendError: try again later.
        :raise PermanentSendError: this message will never be accepted.
        """
        with self._lock:
            for attempt in (1, 2):
                conn = self._usable_connection()
                if message.smtputf8 and not conn.has_extn("smtputf8"):
                    raise PermanentSendError(
                        f"RCPT TO {recipient}: the address is not ASCII "
                        "and the server does not offer SMTPUTF8"
                    )
                try:
                    refused = conn.sendmail(
                        sender,
                        [recipient],
                        message.data,
                        mail_options=["SMTPUTF8"] if message.smtputf8 else (),
                    )
                except smtplib.SMTPServerDisconnected as error:
                    self.close()
                    if attempt == 2:
                        raise TransientSendError(f"send: server disconnected: {error}") from error
                    continue  # a reused connection may have timed out on the server's side
                except smtplib.SMTPRecipientsRefused as error:
                    code, text = error.recipients.get(recipient, (450, b"refused"))
                    self._reset(conn)
                    raise _classify(f"RCPT TO {recipient}", code, text) from error
                except smtplib.SMTPSenderRefused as error:
                    self._reset(conn)
                    raise _classify(
                        f"MAIL FROM {sender}", error.smtp_code, error.smtp_error
                    ) from error
                except smtplib.SMTPDataError as error:
                    self._reset(conn)
                    raise _classify("DATA", error.smtp_code, error.smtp_error) from error
                except smtplib.SMTPResponseException as error:
                    self.close()
                    raise _classify("send", error.smtp_code, error.smtp_error) from error
                except (OSError, smtplib.SMTPException) as error:
                    self.close()
                    raise TransientSendError(f"send: {error}") from error
                if refused:
                    code, text = refused.get(recipient, (450, b"refused"))
                    raise _classify(f"RCPT TO {recipient}", code, text)
                self._last_used = self.clock()
                return

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
            self._usable_connection()

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
