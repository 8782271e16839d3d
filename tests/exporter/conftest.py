"""Fixtures of the exporter tests: a settable clock at NOW, a store on a temp file, the app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.store import ApplyResult
from sysnotify.exporter.store.sqlite import SqliteFactStore
from sysnotify.exporter.web.app import create_app
from sysnotify.exporter.web.state import exporter_of
from tests.support.exporter import TOKEN, Clock, validated


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[SqliteFactStore]:
    opened = SqliteFactStore(tmp_path / "facts.db", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def apply(store: SqliteFactStore) -> Callable[..., ApplyResult]:
    """Validates and applies events (dicts); fails the test on a validation error."""

    def run(*events: dict[str, Any]) -> ApplyResult:
        return store.apply(validated(*events))

    return run


@pytest.fixture
def app(store: SqliteFactStore, clock: Clock) -> Iterator[Flask]:
    config = ExporterConfig(ingest_token=TOKEN, max_body_bytes=64 * 1024)
    app = create_app(config, store=store, clock=clock)
    yield app
    pruning = exporter_of(app).pruning  # the daily prune a batch started, before the store closes
    if pruning is not None:
        pruning.join()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
