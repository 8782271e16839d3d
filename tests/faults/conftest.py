"""Fixtures of the fault tests: a recording SMTP server that can be slowed down or refuse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mailer.conftest import SmtpServer


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """tests/mailer's aiosmtpd server on a free loopback port (slow, failing or stopped on
    demand)."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
