"""The SMTP sender against real servers: STARTTLS with AUTH, implicit TLS, classification."""

from __future__ import annotations

import email.policy
import ssl
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from stack.process import free_port
from sysnotify.mailer.config import SmtpConfig
from sysnotify.mailer.delivery.message import OutgoingMessage
from sysnotify.mailer.delivery.smtp import PermanentSendError, SmtpSender, TransientSendError
from tests.support.polling import wait_until
from tests.support.smtp import RecordingHandler, SmtpServer


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"right-password",
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


def serve(handler: RecordingHandler, **options: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def starttls_server(tls_context: ssl.SSLContext) -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    for port in serve(
        handler,
        tls_context=tls_context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    ):
        yield handler, port


@pytest.fixture
def implicit_tls_server(tls_context: ssl.SSLContext) -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    for port in serve(handler, ssl_context=tls_context):
        yield handler, port


def message(to: str = "a@corp.example") -> OutgoingMessage:
    msg = EmailMessage()
    msg["From"] = "no-reply@acme.example"
    msg["To"] = to
    msg["Subject"] = "test"
    msg.set_content("body")
    return OutgoingMessage(msg.as_bytes(), smtputf8=not to.isascii())


def sender(port: int, **options: Any) -> SmtpSender:
    return SmtpSender(
        SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=5, verify_tls=False, **options)
    )


def test_starttls_with_authentication(starttls_server: tuple[RecordingHandler, int]) -> None:
    handler, port = starttls_server
    smtp = sender(port, security="starttls", username="mailer", password="right-password")
    try:
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")
        smtp.send(message("b@corp.example"), "no-reply@acme.example", "b@corp.example")
    finally:
        smtp.close()
    assert [m.rcpt_tos for m in handler.messages] == [["a@corp.example"], ["b@corp.example"]]
    assert handler.sessions == 2  # EHLO before and after STARTTLS, on one connection


def test_wrong_password_is_transient_and_names_the_step(
    starttls_server: tuple[RecordingHandler, int],
) -> None:
    _handler, port = starttls_server
    smtp = sender(port, security="starttls", username="mailer", password="wrong")
    with pytest.raises(TransientSendError, match="^authenticate as mailer: 535"):
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")


def test_certificate_is_verified_by_default(starttls_server: tuple[RecordingHandler, int]) -> None:
    _handler, port = starttls_server
    smtp = SmtpSender(SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=5))
    with pytest.raises(TransientSendError, match="CERTIFICATE_VERIFY_FAILED"):
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")


def test_implicit_tls(implicit_tls_server: tuple[RecordingHandler, int]) -> None:
    handler, port = implicit_tls_server
    smtp = sender(port, security="tls")
    try:
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")
    finally:
        smtp.close()
    assert [m.rcpt_tos for m in handler.messages] == [["a@corp.example"]]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("421 4.7.0 closing", TransientSendError),
        ("451 4.3.0 try later", TransientSendError),
        ("550 5.1.1 no such user", PermanentSendError),
        ("553 5.1.3 bad address", PermanentSendError),
    ],
)
def test_replies_are_classified(
    smtp_server: SmtpServer, reply: str, error: type[Exception]
) -> None:
    smtp_server.fail(reply)
    smtp = sender(smtp_server.port, security="none")
    try:
        with pytest.raises(error, match=f"^RCPT TO a@corp.example: {reply[:3]}"):
            smtp.send(message(), "no-reply@acme.example", "a@corp.example")
        smtp_server.heal()
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")  # connection kept
    finally:
        smtp.close()
    assert len(smtp_server.messages) == 1


def test_unreachable_server_is_transient() -> None:
    smtp = sender(free_port(), security="none")
    with pytest.raises(TransientSendError, match="^connect to 127.0.0.1:"):
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")


def test_an_idle_connection_is_checked_with_noop_and_replaced_when_dead(
    smtp_server: SmtpServer,
) -> None:
    now = [0.0]
    smtp = SmtpSender(
        SmtpConfig(
            host="127.0.0.1",
            port=smtp_server.port,
            security="none",
            timeout_seconds=5,
            noop_after_seconds=30,
        ),
        clock=lambda: now[0],
    )
    try:
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")
        now[0] += 60  # idle: NOOP says the connection is fine, it is reused
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")
        assert smtp_server.handler.sessions == 1
        smtp_server.stop()
        smtp_server.start()
        now[0] += 60  # idle again, and the server restarted meanwhile: NOOP fails, reconnect
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")
        assert smtp_server.handler.sessions == 2
    finally:
        smtp.close()
    assert len(smtp_server.messages) == 3


def test_no_answer_to_the_end_of_data_is_retried_later_never_at_once(
    smtp_server: SmtpServer,
) -> None:
    """The server takes the message but answers after the client's timeout: the outcome is
    unknown, so the send fails as if answered 451 (RFC 5321, 3.8) and is not repeated on a
    fresh connection within the same send."""
    smtp_server.handler.answer_delay = 1.5
    smtp = SmtpSender(
        SmtpConfig(host="127.0.0.1", port=smtp_server.port, security="none", timeout_seconds=0.5)
    )
    try:
        with pytest.raises(TransientSendError, match="^DATA: no answer to the end of data"):
            smtp.send(message(), "no-reply@acme.example", "a@corp.example")
    finally:
        smtp.close()
    assert wait_until(lambda: smtp_server.messages, 5)
    time.sleep(1.5)  # a second copy would have arrived by now
    assert len(smtp_server.messages) == 1


class Refused(Exception):
    pass


@pytest.mark.parametrize(("refuse_at", "sessions"), [(2, 1), (5, 2)])
def test_a_claim_refused_mid_send_leaves_the_message_unsent(
    smtp_server: SmtpServer, refuse_at: int, sessions: int
) -> None:
    """`keep_claim` runs before every step: the send loop, MAIL, RCPT, DATA and, fifth, the
    end of data. Refused before DATA, the transaction is reset and the connection kept;
    refused after DATA's 354, only closing the connection keeps the server from accepting."""
    calls: list[int] = []

    def keep_claim() -> None:
        calls.append(1)
        if len(calls) == refuse_at:
            raise Refused

    smtp = sender(smtp_server.port, security="none")
    try:
        smtp.send(message(), "no-reply@acme.example", "a@corp.example")  # opens the connection
        with pytest.raises(Refused):
            smtp.send(
                message("b@corp.example"), "no-reply@acme.example", "b@corp.example", keep_claim
            )
        smtp.send(message("c@corp.example"), "no-reply@acme.example", "c@corp.example")
    finally:
        smtp.close()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["a@corp.example"], ["c@corp.example"]]
    assert smtp_server.handler.sessions == sessions


def test_lines_starting_with_a_dot_arrive_intact(smtp_server: SmtpServer) -> None:
    msg = EmailMessage()
    msg["From"] = "no-reply@acme.example"
    msg["To"] = "a@corp.example"
    msg["Subject"] = "dots"
    msg.set_content(".\n..two\n.end of a sentence\n")
    smtp = sender(smtp_server.port, security="none")
    try:
        data = msg.as_bytes(policy=email.policy.SMTP)  # CRLF lines, as message.py writes
        smtp.send(OutgoingMessage(data, smtputf8=False), msg["From"], msg["To"])
    finally:
        smtp.close()
    (received,) = smtp_server.messages
    body = received.message.get_content().replace("\r\n", "\n")
    assert body == ".\n..two\n.end of a sentence\n"
