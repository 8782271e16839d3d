"""Exporter configuration: defaults, then the YAML file, then the environment, then flags.

Every key is declared once below (`EXPORTER`): its kind, default, bounds, meaning and whether
it is required or secret; reading, the dataclass's defaults and the checks of
exporter/config.example.yml and the documentation tables come from it
(sysnotify/settings.py reads it).

Every problem is collected and reported at once (:class:`ConfigError`), before anything is
served. The ingest token is never part of ``repr()`` and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sysnotify import settings
from sysnotify.exporter.events import TimeWindow
from sysnotify.settings import Duration, Flag, Integer, Reader, Secret, Section, Setting, Text

TOKEN_ENV = "SYSNOTIFY_INGEST_TOKEN"
TOKEN_FILE_ENV = f"{TOKEN_ENV}_FILE"


class ConfigError(settings.ConfigError):
    """The configuration is invalid; the message lists every problem, one per line."""

    what = "exporter configuration"


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) to its parts; raises ValueError."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {listen!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


def _listen_problem(listen: str) -> str | None:
    try:
        split_listen(listen)
    except ValueError as error:
        return str(error)
    return None


# -- the declaration: every key, once ------------------------------------------------------
# `db` and the token are required to serve, but flags may still give them and other commands
# need neither, so `serve` checks them (load_config waives them).

EXPORTER = Section(
    "",
    unknown="unknown settings: {unknown} (known: {known})",
    entries=(
        Setting(
            "listen",
            Text(expected="a HOST:PORT string", check=_listen_problem),
            default="127.0.0.1:9730",
            meaning="HOST:PORT the ingest API, /metrics and /healthz listen on (--listen)",
        ),
        Setting(
            "db",
            Text(expected="a file path"),
            required=True,
            meaning="the SQLite fact store; created when missing, migrated when older (--db)",
        ),
        Setting(
            "ingest_token",
            Secret(
                env=TOKEN_ENV,
                file_key="ingest_token_file",
                name="ingest token",
                inline=True,
                min_length=16,
                file_expected="a path",
            ),
            required=True,
            meaning="bearer token of POST /api/v1/events, at least 16 characters",
        ),
        Setting(
            "max_body_bytes",
            Integer(
                minimum=1, expected="a positive integer", out_of_range="must be a positive integer"
            ),
            default=10 * 1024 * 1024,
            meaning="larger request bodies are answered 413",
        ),
        Setting(
            "threads",
            Integer(
                minimum=1, expected="a positive integer", out_of_range="must be a positive integer"
            ),
            default=4,
            meaning="request threads of the single gunicorn worker (--threads)",
        ),
        Setting(
            "retention_days",
            Integer(
                minimum=36,
                expected="an integer of at least 36",
                out_of_range="must be at least 36 (the windows look back 35 days)",
            ),
            default=42,
            meaning="per-page visits and handled privacy requests older than this many days "
            "are pruned once a day",
        ),
        Setting(
            "sync_run_retention_days",
            Integer(
                minimum=2,
                expected="an integer of at least 2",
                out_of_range="must be at least 2",
            ),
            default=42,
            meaning="sync runs that started more than this many days ago are pruned once a "
            "day, except each account's latest started, latest successful and latest finished "
            "run, which the sync metrics show",
        ),
        Setting(
            "idle_account_retention_days",
            Integer(
                minimum=2,
                expected="an integer of at least 2",
                out_of_range="must be at least 2 (longer than SysnotifyAccountDataStale's 26h)",
            ),
            default=90,
            meaning="an account with no fact left (credential, API usage, web visits, sync "
            "run, privacy request) and no event for this many days is forgotten once a day",
        ),
        Setting(
            "events_max_ahead",
            Duration(),
            default="1d",
            meaning="event times and days further ahead of the exporter's clock than this are "
            "refused (422): a clock a little ahead is tolerated, a mistyped year would win "
            "every later comparison and freeze the fact",
        ),
        Setting(
            "events_max_age",
            Duration(
                minimum=36 * 86400,
                out_of_range="must be at least 36d (the windows look back 35 days)",
            ),
            default="400d",
            meaning="event times and days older than this are refused (422); password change "
            "times may be older",
        ),
        Setting(
            "access_log",
            Flag(),
            default=False,
            meaning="log every request (gunicorn's access log) to stderr",
        ),
    ),
)
_WAIVED = ("db", "ingest_token")

DEFAULT_LISTEN: str = EXPORTER.default("listen")
DEFAULT_MAX_BODY_BYTES: int = EXPORTER.default("max_body_bytes")


@dataclass(frozen=True)
class ExporterConfig:
    listen: str = EXPORTER.field("listen")
    db: str | None = EXPORTER.field("db")
    ingest_token: str | None = EXPORTER.field("ingest_token")
    max_body_bytes: int = EXPORTER.field("max_body_bytes")
    threads: int = EXPORTER.field("threads")
    retention_days: int = EXPORTER.field("retention_days")
    sync_run_retention_days: int = EXPORTER.field("sync_run_retention_days")
    idle_account_retention_days: int = EXPORTER.field("idle_account_retention_days")
    events_max_ahead: float = EXPORTER.field("events_max_ahead")
    events_max_age: float = EXPORTER.field("events_max_age")
    access_log: bool = EXPORTER.field("access_log")

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)

    def event_window(self, now: float) -> TimeWindow:
        """The times events may name, seen from `now`."""
        return TimeWindow(now, self.events_max_ahead, self.events_max_age)


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any
) -> ExporterConfig:
    """Builds the config; `overrides` (flags) win over the environment, which wins over the file.

    Overrides whose value is None are ignored. Raises ConfigError listing every problem.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        loaded = settings.read_yaml(Path(path), ConfigError)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{path}: must be a mapping of settings"])
        raw = loaded
    # A flag is read like the same key in the file, in its place.
    raw = {**raw, **{name: value for name, value in overrides.items() if value is not None}}
    reader = Reader(env, waived=_WAIVED)
    values = reader.read(EXPORTER, raw)
    if reader.problems:
        raise ConfigError(reader.problems)
    return ExporterConfig(**values)
