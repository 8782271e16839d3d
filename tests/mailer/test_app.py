"""The application factory: config from the environment, fail-fast checks at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sysnotify.mailer.config import ConfigError
from sysnotify.mailer.rendering.renderer import RenderError
from sysnotify.mailer.web.app import create_app, mailer_of
from tests.support.mailer_config import TOKENS_ENV, config_mapping
from tests.support.smtp import SmtpServer


def write(tmp_path: Path, mapping: dict[str, object]) -> Path:
    path = tmp_path / "mailer.yml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def test_create_app_reads_the_config_named_in_the_environment(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, config_mapping(tmp_path, smtp_server.port))
    monkeypatch.setenv("SYSNOTIFY_MAILER_CONFIG", str(path))
    for name, value in TOKENS_ENV.items():
        monkeypatch.setenv(name, value)
    app = create_app(start_delivery=False)
    try:
        assert app.test_client().get("/readyz").status_code == 200
        assert (tmp_path / "mailer.db").exists()
    finally:
        mailer_of(app).store.close()


def test_an_invalid_config_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mapping = config_mapping(tmp_path, 25)
    mapping["smtp"].pop("host")
    monkeypatch.setenv("SYSNOTIFY_MAILER_CONFIG", str(write(tmp_path, mapping)))
    monkeypatch.delenv("SYSNOTIFY_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("SYSNOTIFY_WEBHOOK_TOKEN_FILE", raising=False)
    with pytest.raises(ConfigError) as caught:
        create_app(start_delivery=False)
    assert "smtp.host: required" in caught.value.problems
    assert any(p.startswith("webhook token:") for p in caught.value.problems)


def test_a_broken_template_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "templates"
    empty.mkdir()
    mapping = config_mapping(tmp_path, 25, templates_dir=str(empty))
    monkeypatch.setenv("SYSNOTIFY_MAILER_CONFIG", str(write(tmp_path, mapping)))
    for name, value in TOKENS_ENV.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RenderError):
        create_app(start_delivery=False)


def test_a_store_from_a_newer_mailer_is_refused(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from sysnotify.mailer.store import StoreError

    conn = sqlite3.connect(tmp_path / "mailer.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    monkeypatch.setenv(
        "SYSNOTIFY_MAILER_CONFIG", str(write(tmp_path, config_mapping(tmp_path, smtp_server.port)))
    )
    for name, value in TOKENS_ENV.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StoreError, match="schema version 99, newer than this release"):
        create_app(start_delivery=False)


def test_a_migrated_store_opens_while_another_process_holds_its_write_lock(tmp_path: Path) -> None:
    """A gunicorn worker restarted during a long lock must boot: a store already at the
    latest version is only read (otherwise gunicorn gives up on every worker)."""
    import sqlite3
    import time

    from sysnotify.mailer.store.sqlite import MIGRATIONS, SqliteStore

    path = tmp_path / "mailer.db"
    first = SqliteStore(path)
    first.migrate()
    first.close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        store = SqliteStore(path)
        assert store.migrate() == MIGRATIONS[-1].version
        store.close()
        assert time.monotonic() - started < 5  # not a busy wait that happened to end
    finally:
        locker.execute("ROLLBACK")
        locker.close()
