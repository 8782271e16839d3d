"""How each service is served by gunicorn, in one place.

The mailer runs as gunicorn's own command line (`sysnotify-mailer serve`, the demo stack, the
tests and benchmarks) with its factory as the app; the exporter embeds gunicorn
(sysnotify.exporter.server) with the settings below.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# gunicorn calls the factory in each worker, after the fork (see sysnotify.mailer.web.app).
MAILER_APP = "sysnotify.mailer.web.app:create_app()"


def bind_address(host: str, port: int) -> str:
    """`host:port` as gunicorn's bind setting wants it: an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def gunicorn_executable() -> str:
    """The gunicorn installed beside this interpreter (a virtualenv's), else the name alone."""
    beside = Path(sys.executable).parent / "gunicorn"
    return str(beside) if beside.exists() else "gunicorn"


def mailer_argv(listen: str, workers: int, options: Sequence[str] = ()) -> list[str]:
    """The full command line of the mailer under gunicorn.

    :param listen: gunicorn's `--bind`, HOST:PORT (bind_address builds one).
    :param options: further gunicorn options, e.g. `("--graceful-timeout", "5")`.
    """
    return [
        gunicorn_executable(),
        "--bind",
        listen,
        "--workers",
        str(workers),
        *options,
        MAILER_APP,
    ]


def exporter_settings(host: str, port: int, *, threads: int, access_log: bool) -> dict[str, Any]:
    """gunicorn settings of the embedded exporter server: one gthread worker, because the
    exposition cache and the ingest counters live in the process, and `threads` threads."""
    return {
        "bind": [bind_address(host, port)],
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 120,
        "graceful_timeout": 10,
        "keepalive": 5,
        "errorlog": "-",
        "accesslog": "-" if access_log else None,
        "proc_name": "sysnotify-exporter",
        # The app is built in the worker, so no SQLite connection crosses a fork.
        "preload_app": False,
        # Several exporters (tests, demo) may run at once: no shared control socket.
        "control_socket_disable": True,
    }
