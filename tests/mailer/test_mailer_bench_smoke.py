"""The mailer benchmark still runs end to end (tiny sizes; its speed figures are not checked
here, only that both sides deliver everything once and every scenario prints its figures)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_bench_mailer_runs_every_scenario_on_tiny_sizes(repo_root, binary):
    for name in ("prometheus", "alertmanager"):
        binary(name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "mailer",
            "--",
            "--alerts",
            "40",
            "--stage-emails",
            "20",
            "--samples",
            "2",
            "--accounts",
            "60",
            "--notifications",
            "20",
            "--days",
            "3",
            "--valid-webhooks",
            "8",
            "--flood",
            "200",
            "--flood-rounds",
            "2",
            "--timeout",
            "60",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for pattern in (
        r"Alertmanager email_configs: emails\s+40/40\n",
        r"mailer \(2 workers x 1 delivery threads\): emails\s+40/40\n",
        r"mailer \(2 workers taking webhooks \+ a delivery process with 3 threads\): "
        r"emails\s+40/40\n",
        r"CPU: mailer \(delivery process\)\s+\d+\.\d s",
        r"\[ok\] \(b\) zero lost, zero doubled \(and Alertmanager's side\)",
        r"\[ok\] \(c\) zero lost, zero doubled \(and Alertmanager's side\)",
        r"ratio \(b\): mailer / Alertmanager email\s+\d+\.\d+x",
        r"ratio \(c\): mailer / Alertmanager email\s+\d+\.\d+x",
        r"webhook answers \(gunicorn request time\)\s+40: p50 \d+ ms, p99 \d+ ms",
        r"mark sent \(own commit, no fsync\)\s+\d+\.\d+ ms per email",
        r"mailer's share: webhook received -> SMTP accepted\s+p50 [\d,]+ ms",
        r"emails missing after the wait\s+0\n",
        r"valid webhooks, during the flood\s+(p50 [\d.]+ ms|no samples)",
        r"\[ok\] every 401 of the flood counted",
        r"mailer after 20 notifications \(20 emails sent\)\s+RSS \d+ MiB",
        r"exporter after two /metrics scrapes\s+RSS \d+ MiB",
    ):
        assert re.search(pattern, out), f"{pattern!r} not in:\n{out}"
