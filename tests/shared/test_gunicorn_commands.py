"""sysnotify.gunicorn: the one place each service's gunicorn command line or settings are built."""

from __future__ import annotations

import sys
from pathlib import Path

from sysnotify.gunicorn import MAILER_APP, bind_address, exporter_settings, mailer_argv


def test_bind_address_brackets_ipv6_hosts() -> None:
    assert bind_address("127.0.0.1", 9730) == "127.0.0.1:9730"
    assert bind_address("::1", 9730) == "[::1]:9730"
    assert bind_address("localhost", 1) == "localhost:1"


def test_the_mailer_command_line_ends_with_the_factory() -> None:
    argv = mailer_argv("127.0.0.1:9731", 3, ("--graceful-timeout", "5"))
    assert argv[0] == str(Path(sys.executable).parent / "gunicorn")
    assert argv[1:] == [
        "--bind",
        "127.0.0.1:9731",
        "--workers",
        "3",
        "--graceful-timeout",
        "5",
        MAILER_APP,
    ]
    assert MAILER_APP == "sysnotify.mailer.web.app:create_app()"


def test_the_exporter_runs_one_threaded_worker() -> None:
    settings = exporter_settings("::", 9730, threads=4, access_log=False)
    assert settings["bind"] == ["[::]:9730"]
    assert (settings["workers"], settings["worker_class"], settings["threads"]) == (1, "gthread", 4)
    assert settings["accesslog"] is None
    assert exporter_settings("0.0.0.0", 1, threads=1, access_log=True)["accesslog"] == "-"
