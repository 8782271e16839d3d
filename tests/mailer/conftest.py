"""Fixtures of the mailer tests: configs, apps on a temp store and a clock that moves only when
told to. The recording SMTP server (`smtp_server`) comes from tests/conftest.py; the helpers
these tests share are in tests/support/ (mailer_app, mailer_config, smtp, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sysnotify.mailer.cli import main
from sysnotify.mailer.config import MailerConfig, config_from_mapping
from sysnotify.mailer.web.app import create_app, mailer_of
from tests.support.clocks import FakeClock
from tests.support.mailer_config import TOKENS_ENV, config_mapping
from tests.support.smtp import SmtpServer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., MailerConfig]:
    def build(smtp_port: int = 25, **sections: Any) -> MailerConfig:
        return config_from_mapping(
            config_mapping(tmp_path, smtp_port, **sections), TOKENS_ENV, base_dir=tmp_path
        )

    return build


@pytest.fixture
def make_app(
    make_config: Callable[..., MailerConfig], smtp_server: SmtpServer, clock: FakeClock
) -> Iterator[Callable[..., Any]]:
    """Builds apps on the test's store with the real renderer and SMTP server; delivery is
    driven by the test (`deliver(app)`) unless start_delivery=True."""
    apps = []

    def build(start_delivery: bool = False, **sections: Any) -> Any:
        app = create_app(
            make_config(smtp_server.port, **sections), clock=clock, start_delivery=start_delivery
        )
        apps.append(app)
        return app

    yield build
    for app in apps:
        mailer_of(app).stop_delivery()
        for worker in mailer_of(app).workers:
            worker.sender.close()
        mailer_of(app).store.close()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs `sysnotify-mailer` in process on the test's store (the same file as make_app's);
    returns its exit code."""
    path = tmp_path / "mailer.yml"
    path.write_text(yaml.safe_dump(config_mapping(tmp_path, 25)))
    for name, value in TOKENS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SYSNOTIFY_MAILER_CONFIG", str(path))

    def run(*argv: str) -> int:
        return main(list(argv))

    return run
