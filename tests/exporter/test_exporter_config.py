"""The exporter's config declaration (exporter/config.py) against everything that repeats it,
and how the file, the environment and flags are layered."""

from __future__ import annotations

from pathlib import Path

import pytest

from sysnotify.exporter.config import (
    DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES,
    EXPORTER,
    ConfigError,
    ExporterConfig,
    load_config,
)
from sysnotify.settings import dataclass_mismatches
from tests.support.config_docs import config_table, example_mismatches, table_mismatches

ROOT = Path(__file__).resolve().parents[2]


def test_the_dataclass_has_the_declared_fields_and_defaults() -> None:
    assert dataclass_mismatches(EXPORTER, ExporterConfig) == []
    assert ExporterConfig().listen == DEFAULT_LISTEN == "127.0.0.1:9730"
    assert ExporterConfig().max_body_bytes == DEFAULT_MAX_BODY_BYTES == 10 * 1024 * 1024


def test_the_example_shows_every_key_with_its_declared_default() -> None:
    text = (ROOT / "exporter" / "config.example.yml").read_text()
    assert example_mismatches(text, EXPORTER) == []


def test_the_docs_table_has_every_key_with_its_declared_default() -> None:
    table = config_table((ROOT / "docs" / "exporter.md").read_text())
    assert table_mismatches(table, EXPORTER, complete=True) == []


def test_the_readme_table_agrees_with_the_declaration() -> None:
    table = config_table((ROOT / "README.md").read_text(), heading="Exporter")
    assert table_mismatches(table, EXPORTER, complete=False, check_required=False) == []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return path


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listen: nowhere\nthreads: 0\nretention_days: 7\naccess_log: 1\n"
        "max_body_bytes: ten\ningest_token: short\ncolour: blue\n"
        "events_max_ahead: soon\nevents_max_age: 30d\n"
        "sync_run_retention_days: 1\nidle_account_retention_days: 0\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert sorted(caught.value.problems) == sorted(
        [
            "listen: listen address 'nowhere' must be HOST:PORT",
            "threads: must be a positive integer",
            "retention_days: must be at least 36 (the windows look back 35 days)",
            "access_log: must be true or false",
            "max_body_bytes: must be a positive integer",
            "ingest_token: must be at least 16 characters",
            "events_max_ahead: not a duration: 'soon' (use e.g. 30s, 15m, 1h, 7d)",
            "events_max_age: must be at least 36d (the windows look back 35 days)",
            "sync_run_retention_days: must be at least 2",
            "idle_account_retention_days: must be at least 2 (longer than "
            "SysnotifyAccountDataStale's 26h)",
            "unknown settings: colour (known: access_log, db, events_max_age, events_max_ahead, "
            "idle_account_retention_days, ingest_token, ingest_token_file, listen, "
            "max_body_bytes, retention_days, sync_run_retention_days, threads)",
        ]
    )
    assert str(caught.value).startswith("invalid exporter configuration:\n  - ")


def test_flags_win_over_the_file_and_the_environment_over_its_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-0123456789\n")
    path = write(tmp_path, f"listen: nowhere\nthreads: 2\ningest_token_file: {token_file}\n")
    config = load_config(
        path,
        env={"SYSNOTIFY_INGEST_TOKEN": "env-token-0123456789"},
        listen="127.0.0.1:1234",
        db="facts.db",
        threads=None,
    )
    assert (config.listen, config.db, config.threads, config.ingest_token) == (
        "127.0.0.1:1234",
        "facts.db",
        2,
        "env-token-0123456789",
    )
    with pytest.raises(ConfigError, match="threads: must be a positive integer"):
        load_config(path, env={}, listen="127.0.0.1:1234", threads=0)


def test_store_and_token_are_left_to_serve_to_require(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={})
    assert (config.db, config.ingest_token) == (None, None)
