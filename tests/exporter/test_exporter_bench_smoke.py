"""The exporter benchmark still runs (tiny sizes; its figures are not checked here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_exporter_runs_on_a_tiny_platform(repo_root):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "exporter",
            "--",
            "--accounts",
            "30",
            "--days",
            "10",
            "--scrapes",
            "3",
            "--baseline-runs",
            "1",
            "--http-events",
            "2000",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cache bytes == generate_latest bytes" in result.stdout
    assert "[ok] cache output identical to the ordinary path" in result.stdout
