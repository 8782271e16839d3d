"""Every sample email (notification x phase) renders exactly as its golden files.

After an intended change to a template or a sample, regenerate and review the diff:

    .venv/bin/python -m sysnotify.mailer.rendering.samples --write-golden tests/golden
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.model import EmailRequest
from sysnotify.mailer.rendering.renderer import Renderer
from sysnotify.mailer.rendering.samples import SAMPLE_BRAND, all_requests, golden_name, write_golden

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
REGENERATE = ".venv/bin/python -m sysnotify.mailer.rendering.samples --write-golden tests/golden"
REQUESTS = list(all_requests(Catalog()))


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SAMPLE_BRAND)


@pytest.mark.parametrize("request_", REQUESTS, ids=golden_name)
def test_sample_matches_golden_files(renderer: Renderer, request_: EmailRequest) -> None:
    email = renderer.render(request_)
    stem = golden_name(request_)
    for suffix, actual in (
        ("subject.txt", email.subject + "\n"),
        ("txt", email.text),
        ("html", email.html),
    ):
        path = GOLDEN / f"{stem}.{suffix}"
        assert path.is_file(), f"{path.name} missing; run: {REGENERATE}"
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, f"{path.name} differs; if intended, run: {REGENERATE}"


def test_golden_directory_has_no_stale_files() -> None:
    expected = {
        f"{golden_name(r)}.{suffix}" for r in REQUESTS for suffix in ("subject.txt", "txt", "html")
    }
    present = {path.name for path in GOLDEN.iterdir() if path.is_file()}
    assert present == expected, f"stale or missing golden files; run: {REGENERATE}"


def test_regenerating_writes_the_same_files(tmp_path: Path) -> None:
    (tmp_path / "gone.problem.html").write_text("from a removed notification")
    written = write_golden(tmp_path)
    assert {path.name for path in written} == {path.name for path in tmp_path.iterdir()}
    for path in written:
        assert path.read_text(encoding="utf-8") == (GOLDEN / path.name).read_text(
            encoding="utf-8"
        ), path.name
