"""`make demo` plays its whole story: every problem email, then the recovery emails, then exits
(with --exit-when-done), stopping every process it started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stack.smtp_sink import read_maildir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_demo_story_runs_to_the_end(tmp_path: Path, binary, repo_root: Path) -> None:
    for name in ("prometheus", "alertmanager", "amtool"):
        binary(name)
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stack.demo",
            "--exit-when-done",
            "--workdir",
            str(workdir),
            "--background-accounts",
            "5",
            "--timeout",
            "420",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "every problem email arrived" in result.stdout
    assert "recovery emails arrived" in result.stdout
    mails = read_maildir(workdir / "mail")
    phases = {
        m.header("X-Sysnotify-Phase")
        for m in mails
        if m.header("X-Sysnotify-Notification") != "operators"
    }
    assert {"problem", "recovery"} <= phases
    # Every process the demo started is gone: its ports are free again.
    leftover = subprocess.run(["pgrep", "-f", str(workdir)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
