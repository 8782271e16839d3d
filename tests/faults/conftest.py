"""Fixtures of the fault tests: tests/mailer's recording SMTP server (`smtp_server`, an
aiosmtpd server on a free loopback port that can be slowed down, refuse or stop)."""

from __future__ import annotations

from tests.mailer.conftest import smtp_server

__all__ = ["smtp_server"]
