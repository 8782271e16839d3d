"""The whole stack on loopback, once per module: real exporter, Prometheus, Alertmanager, the
mailer under gunicorn and an SMTP sink, configured from the shipped files with timings shortened
(minutes become seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.local import LocalStack


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, binary) -> Iterator[LocalStack]:
    for name in ("prometheus", "alertmanager", "amtool"):
        binary(name)
    workdir: Path = tmp_path_factory.mktemp("stack")
    stack = LocalStack(workdir)
    try:
        stack.start()
    except Exception:
        for log in sorted(workdir.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    try:
        yield stack
    finally:
        stack.stop()
