"""Building sysnotify's wheel from the checkout and installing it into a fresh virtualenv, as a
user would: the set-up of the packaging tests.

Both steps need the package index (the build backend, the runtime dependencies). When it cannot
be reached the tests are skipped locally, but fail under CI (CI=true).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import requests

from stack.process import Service

REPO_ROOT = Path(__file__).resolve().parents[2]

# Left out of the copy the wheel is built from: what is not a source (the dev virtualenv, git,
# caches, run-time state) and what an earlier build left behind, which setuptools would pack.
_NOT_SOURCES_AT_TOP = {
    ".git",
    ".venv",
    "build",
    "dist",
    "run",
    "var",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}
_NOT_SOURCES_ANYWHERE = ("__pycache__", ".egg-info", ".db", ".db-wal", ".db-shm")

PIP_TIMEOUT = 600.0


def copy_checkout(destination: Path) -> Path:
    """A copy of the checkout's sources, including files not committed yet.

    pip builds a local directory in place: building the checkout itself would leave build/ and
    a rewritten *.egg-info in the working tree, and a stale build/ would end up in the wheel.
    """

    def ignore(directory: str, names: list[str]) -> set[str]:
        at_top = Path(directory) == REPO_ROOT
        return {
            name
            for name in names
            if name.endswith(_NOT_SOURCES_ANYWHERE) or (at_top and name in _NOT_SOURCES_AT_TOP)
        }

    shutil.copytree(REPO_ROOT, destination, ignore=ignore, symlinks=True)
    return destination


def build_wheel(source: Path, output: Path) -> Path:
    """Builds the wheel of `source` into `output` with pip (build isolation, no dependencies)."""
    result = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(output), str(source)],
        cwd=output,
    )
    if result.returncode != 0:
        fail_or_skip("building the wheel", result)
    wheels = sorted(output.glob("sysnotify-*.whl"))
    assert len(wheels) == 1, f"expected one sysnotify wheel in {output}, found {wheels}"
    return wheels[0]


@dataclass(frozen=True)
class Virtualenv:
    """A virtualenv outside the checkout, and how to run its commands so that nothing of the
    checkout (PYTHONPATH, the dev virtualenv, a config named in the environment) leaks in."""

    path: Path

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        inherited = {
            name: value
            for name, value in os.environ.items()
            if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
            and not name.startswith("SYSNOTIFY_")
        }
        path = os.pathsep.join([str(self.path / "bin"), inherited.get("PATH", os.defpath)])
        return {**inherited, "PATH": path, "VIRTUAL_ENV": str(self.path), **(extra or {})}

    def run(self, argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return _run(argv, cwd=cwd, env=self.environment())

    def service(
        self,
        name: str,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        ready: Callable[[], bool],
        ready_timeout: float = 30.0,
    ) -> Service:
        """A Service (not started) running from this virtualenv in `cwd`, logging there."""
        service = Service(
            name, argv, cwd / f"{name}.log", ready=ready, cwd=cwd, ready_timeout=ready_timeout
        )
        # Service adds its arguments to the test's own environment; this one replaces it.
        service.env = self.environment(env)
        return service


def install_into_fresh_virtualenv(wheel: Path, path: Path) -> Virtualenv:
    """Creates a virtualenv at `path` and installs `wheel` with its dependencies into it."""
    result = _run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
    assert result.returncode == 0, f"python -m venv failed:\n{_tail(result)}"
    venv = Virtualenv(path)
    result = venv.run(
        [venv.bin("python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=path.parent
    )
    if result.returncode != 0:
        fail_or_skip("installing the wheel", result)
    return venv


def fail_or_skip(step: str, result: subprocess.CompletedProcess[str]) -> NoReturn:
    """Skips when the package index is out of reach (outside CI); fails otherwise."""
    if not running_in_ci() and not _index_reachable():
        pytest.skip(f"{step} needs the package index, which is unreachable")
    pytest.fail(
        f"{step} failed with exit code {result.returncode}:\n{_tail(result)}", pytrace=False
    )


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _index_reachable() -> bool:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/")
    try:
        return requests.head(index, timeout=10).status_code < 500
    except requests.RequestException:
        return False


def _run(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=PIP_TIMEOUT
    )


def _tail(result: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])
