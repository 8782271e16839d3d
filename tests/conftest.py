"""Fixtures shared by every test area.

`binary(name)` gives the path of prometheus, promtool, alertmanager or amtool. When one is
missing the test is skipped locally, but fails under CI (CI=true): a missing binary there
means the suite did not test what it claims to.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from stack import binaries

REPO_ROOT = Path(__file__).resolve().parent.parent


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


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
