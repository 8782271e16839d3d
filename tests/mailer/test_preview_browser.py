"""A real browser renders a preview page: headless Chromium takes a screenshot of it.

Needs Debian's `chromium` (installed by `make test`); missing, it skips locally and fails in CI.
"""

from __future__ import annotations

import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from stack.process import free_port
from sysnotify.mailer.catalog import Catalog
from sysnotify.mailer.rendering.renderer import Renderer
from sysnotify.mailer.rendering.samples import SAMPLE_BRAND
from sysnotify.mailer.web.preview import create_preview_blueprint

WIDTH, HEIGHT = 700, 1400


@pytest.fixture(scope="module")
def chromium(binary) -> str:
    return binary("chromium")


@pytest.fixture
def preview_url() -> Iterator[str]:
    app = Flask("preview-browser")
    app.register_blueprint(create_preview_blueprint(Renderer(SAMPLE_BRAND), Catalog()))
    server: BaseWSGIServer = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/preview"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def screenshot(chromium: str, url: str, out: Path, profile: Path) -> None:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            f"--window-size={WIDTH},{HEIGHT}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chromium_renders_an_email_preview(chromium: str, preview_url: str, tmp_path: Path) -> None:
    out = tmp_path / "credential_expired.png"
    screenshot(
        chromium, f"{preview_url}/credential_expired?phase=problem", out, tmp_path / "profile"
    )
    data = out.read_bytes()
    assert png_size(data) == (WIDTH, HEIGHT)
    # A blank page compresses to about 6 kB and a one-line JSON error page to under 20 kB;
    # the laid-out email (text, tables, colour bar, button) to over 100 kB.
    blank = tmp_path / "blank.png"
    screenshot(chromium, "data:text/html,<html><body></body></html>", blank, tmp_path / "profile2")
    assert len(data) > 8 * len(blank.read_bytes())
    assert len(data) > 50_000
