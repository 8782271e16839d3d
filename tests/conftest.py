"""Fixtures shared by every test area.

`binary(name)` gives the path of prometheus, promtool, alertmanager or amtool. When one is
missing the test is skipped locally, but fails under CI (CI=true): a missing binary there
means the suite did not test what it claims to.

`smtp_server` is a recording SMTP server on a free loopback port (tests.support.smtp), used by
the mailer and the fault tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stack import binaries
from tests.support.ci import running_in_ci
from tests.support.paths import REPO_ROOT
from tests.support.smtp import SmtpServer


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def binary() -> Callable[[str], str]:
    def lookup(name: str) -> str:
        path = binaries.find(name)
        if path is None:
            message = f"{name} is not installed: run scripts/ensure-binaries.sh (make test does)"
            if running_in_ci():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        return path

    return lookup


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
