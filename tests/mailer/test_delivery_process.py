"""A separate delivery process (`sysnotify-mailer deliver --watch`) next to gunicorn workers
that only take webhooks (`delivery.enabled: false`), woken through the store's socket."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from stack.process import free_port
from sysnotify.mailer.delivery.wakeup import WakeListener, Waker, socket_path
from tests.support.mailer_config import TOKENS_ENV, config_mapping
from tests.support.mailer_process import FIRING, mailer_service, post_fixtures, register_all
from tests.support.paths import BIN
from tests.support.polling import wait_until
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.integration

# Far longer than the test waits: only a wake-up can explain an email leaving in time.
POLL = "60s"


def write_config(tmp_path: Path, smtp_port: int) -> Path:
    mapping = config_mapping(
        tmp_path,
        smtp_port,
        smtp={"timeout": "2s"},
        delivery={"enabled": False, "threads": 2, "poll_interval": POLL, "lease": "5s"},
    )
    path = tmp_path / "mailer.yml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def start_delivery(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN / "sysnotify-mailer"), "--config", str(config), "deliver", "--watch"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**TOKENS_ENV, "PATH": str(BIN)},
        )


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


def test_webhooks_wake_the_delivery_process_and_each_email_goes_once(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config = write_config(tmp_path, smtp_server.port)
    expected = register_all(config)
    wake = socket_path(tmp_path / "mailer.db")
    delivery = start_delivery(config, tmp_path / "delivery.log")
    try:
        assert wait_until(wake.exists, 30), (tmp_path / "delivery.log").read_text()
        port = free_port()
        with mailer_service(tmp_path, config, port):
            started = time.monotonic()
            assert post_fixtures(port, FIRING + FIRING) == [200] * (2 * len(FIRING))
            assert wait_until(lambda: len(smtp_server.messages) >= expected, 30)
            assert time.monotonic() - started < 30  # well inside one poll interval
            time.sleep(0.5)
            ids = [r.message["Message-ID"] for r in smtp_server.messages]
            assert len(ids) == expected == len(set(ids))
            # The gunicorn workers sent none of them: only the delivery process's two
            # threads connected (each worker with delivery threads would add its own).
            assert smtp_server.handler.sessions <= 2
    finally:
        assert stop(delivery) == 0
    assert not wake.exists()
    log = (tmp_path / "delivery.log").read_text()
    assert "delivering with 2 thread(s); woken through" in log
    assert "delivery stopped" in log


def test_a_second_delivery_process_polls_and_both_stop_cleanly(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config = write_config(tmp_path, smtp_server.port)
    wake = socket_path(tmp_path / "mailer.db")
    first = start_delivery(config, tmp_path / "first.log")
    second = None
    try:
        assert wait_until(wake.exists, 30)
        second = start_delivery(config, tmp_path / "second.log")
        assert wait_until(lambda: "delivering with" in (tmp_path / "second.log").read_text(), 30)
        assert "another delivery process listens" in (tmp_path / "second.log").read_text()
        assert stop(second) == 0
        assert wake.exists()  # the second one left the first one's socket alone
    finally:
        if second is not None and second.poll() is None:
            stop(second)
        assert stop(first) == 0


def test_wake_listener_hears_notify_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "store.db.wake"
    path.write_text("a stale file of a killed process")
    heard = threading.Event()
    listener = WakeListener(path, heard.set)
    assert listener.start()
    try:
        Waker(path).notify()
        assert heard.wait(5)
    finally:
        listener.stop()
    assert not path.exists()
    Waker(path).notify()  # nobody listens: no error


def test_a_socket_path_too_long_falls_back_to_polling(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120) / "store.db.wake"
    assert not WakeListener(path, lambda: None).start()
