"""Exporter configuration: defaults, then the YAML file, then the environment, then flags.

Every problem is collected and reported at once (:class:`ConfigError`), before anything is
served. The ingest token is never part of ``repr()`` and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

DEFAULT_LISTEN = "127.0.0.1:9730"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
TOKEN_ENV = "SYSNOTIFY_INGEST_TOKEN"
TOKEN_FILE_ENV = "SYSNOTIFY_INGEST_TOKEN_FILE"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid exporter configuration:\n" + "\n".join(
            f"  - {problem}" for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class ExporterConfig:
    listen: str = DEFAULT_LISTEN
    db: str | None = None
    ingest_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    threads: int = 4
    retention_days: int = 42
    access_log: bool = False

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)


_KEYS = {f.name for f in fields(ExporterConfig)} | {"ingest_token_file"}


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) to its parts; raises ValueError."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {listen!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


def _read_secret(path: str, what: str, problems: list[str]) -> str | None:
    try:
        value = Path(path).read_text().strip()
    except OSError as error:
        problems.append(f"{what}: cannot read {path}: {error.strerror}")
        return None
    if not value:
        problems.append(f"{what}: {path} is empty")
        return None
    return value


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                **overrides: Any) -> ExporterConfig:
    """Builds the config; `overrides` (flags) win over the environment, which wins over the file.

    Overrides whose value is None are ignored. Raises ConfigError listing every problem.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as error:
            raise ConfigError([f"{path}: cannot read: {error.strerror}"]) from None
        except yaml.YAMLError as error:
            raise ConfigError([f"{path}: not valid YAML: {error}"]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{path}: must be a mapping of settings"])
        unknown = sorted(set(loaded) - _KEYS)
        if unknown:
            problems.append(f"unknown settings: {', '.join(map(str, unknown))} "
                            f"(known: {', '.join(sorted(_KEYS))})")
        data = {key: value for key, value in loaded.items() if key in _KEYS}

    token_file = data.pop("ingest_token_file", None)
    from_env = bool(env.get(TOKEN_ENV) or env.get(TOKEN_FILE_ENV))
    if token_file is not None and not from_env:
        if "ingest_token" in data:
            problems.append("set ingest_token or ingest_token_file, not both")
        elif not isinstance(token_file, str):
            problems.append("ingest_token_file: must be a path")
        else:
            data["ingest_token"] = _read_secret(token_file, "ingest_token_file", problems)
    if env.get(TOKEN_ENV):
        data["ingest_token"] = env[TOKEN_ENV]
    elif env.get(TOKEN_FILE_ENV):
        data["ingest_token"] = _read_secret(env[TOKEN_FILE_ENV], TOKEN_FILE_ENV, problems)
    data.update({key: value for key, value in overrides.items() if value is not None})

    config = ExporterConfig()
    checks: dict[str, tuple[type, str]] = {
        "listen": (str, "a HOST:PORT string"),
        "db": (str, "a file path"),
        "ingest_token": (str, "a string"),
        "max_body_bytes": (int, "a positive integer"),
        "threads": (int, "a positive integer"),
        "retention_days": (int, "an integer of at least 36"),
        "access_log": (bool, "true or false"),
    }
    values: dict[str, Any] = {}
    for key, value in data.items():
        kind, expected = checks[key]
        if value is None:
            continue
        if type(value) is not kind:
            problems.append(f"{key}: must be {expected}")
            continue
        values[key] = value
    if "listen" in values:
        try:
            split_listen(values["listen"])
        except ValueError as error:
            problems.append(f"listen: {error}")
    for key in ("max_body_bytes", "threads"):
        if key in values and values[key] < 1:
            problems.append(f"{key}: must be a positive integer")
    if "retention_days" in values and values["retention_days"] < 36:
        problems.append("retention_days: must be at least 36 (the windows look back 35 days)")
    if "ingest_token" in values and len(values["ingest_token"]) < 16:
        problems.append("ingest_token: must be at least 16 characters")
    if problems:
        raise ConfigError(problems)
    return replace(config, **values)
