"""sysnotify as a user installs it: the wheel built from the checkout holds one import package
with its templates, example configs and commands, and once installed into a fresh virtualenv
the exporter and the mailer work from there, away from the checkout.

The set-up (copy, build, virtualenv, pip) is in installation.py.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from stack.process import free_port, http_ready
from stack.smtp_sink import MailSink, wait_for_messages
from tests.packaging.installation import (
    REPO_ROOT,
    Virtualenv,
    build_wheel,
    copy_checkout,
    install_into_fresh_virtualenv,
)

COMMANDS = ("sysnotify-exporter", "sysnotify-mailer")
EXAMPLE_CONFIGS = ("sysnotify/exporter/config.example.yml", "sysnotify/mailer/config.example.yml")
INGEST_TOKEN = "packaging-test-ingest-token"
WEBHOOK_TOKEN = "packaging-test-webhook-token"
# A webhook payload captured from a real Alertmanager, the account it is about, and the
# account's administrator, who is to receive the email.
PAYLOAD = REPO_ROOT / "tests" / "fixtures" / "alertmanager" / "credential_expired_firing.json"
ACCOUNT = "acc-1001"
PRIMARY = "admin@globex.example"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout as the wheel is built from it (a copy: others may be editing the tree)."""
    return copy_checkout(tmp_path_factory.mktemp("checkout") / "sysnotify")


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(source, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Virtualenv:
    venv = install_into_fresh_virtualenv(wheel, tmp_path_factory.mktemp("installed") / "venv")
    assert not venv.path.is_relative_to(REPO_ROOT)
    return venv


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """The working directory of everything the test runs from the virtualenv."""
    assert not tmp_path.is_relative_to(REPO_ROOT)
    return tmp_path


def expected_package_files(source: Path) -> set[str]:
    """Every module and template of the checkout, named as the wheel should hold it.

    Read from the folder mapping in pyproject.toml, so a subpackage or template added to a
    folder but left out of the packaging shows up here as a missing file.
    """
    setuptools = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]
    expected = set()
    for package, folder in setuptools["package-dir"].items():
        root = source / folder
        for path in root.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if path.suffix == ".py" or (
                package == "sysnotify.templates" and path.suffix in (".txt", ".html")
            ):
                relative = path.relative_to(root).as_posix()
                expected.add(f"{package.replace('.', '/')}/{relative}")
    return expected


def test_the_wheel_holds_one_package_with_its_templates_example_configs_and_commands(
    source: Path, wheel: Path
) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (dist_info,) = {name.split("/")[0] for name in names if ".dist-info/" in name}
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        declared_top_level = archive.read(f"{dist_info}/top_level.txt").decode().split()

    top_level = {name.split("/")[0] for name in names} - {dist_info}
    assert top_level == {"sysnotify"}, f"top-level entries besides sysnotify: {top_level}"
    assert declared_top_level == ["sysnotify"]

    templates = {name for name in names if name.startswith("sysnotify/templates/")}
    notifications = {name.split("/")[2] for name in templates if name.count("/") == 3}
    assert "credential_expired" in notifications
    for notification in notifications:
        for part in ("subject.txt", "body.txt", "body.html"):
            assert f"sysnotify/templates/{notification}/{part}" in names
    for shared in ("base.txt", "base.html", "_subject.txt", "_macros.txt", "_macros.html"):
        assert f"sysnotify/templates/{shared}" in names

    missing = sorted(expected_package_files(source) - names)
    assert not missing, f"in the checkout but not in the wheel: {missing}"
    for config in EXAMPLE_CONFIGS:
        assert config in names

    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    scripts = dict(parser["console_scripts"])
    assert sorted(scripts) == sorted(COMMANDS)
    assert all(target.startswith("sysnotify.") for target in scripts.values()), scripts


@pytest.mark.integration
def test_the_installed_exporter_and_mailer_work_away_from_the_checkout(
    installed: Virtualenv, outside: Path
) -> None:
    imports = "import sysnotify.exporter.server, sysnotify.mailer.web.app, sysnotify.templates"
    where = installed.run(
        [installed.bin("python"), "-c", f"{imports}; print(sysnotify.templates.__file__)"],
        cwd=outside,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.path), where.stdout

    with contextlib.ExitStack() as running:
        exporter_url = running.enter_context(_exporter(installed, outside))
        _ingest_one_batch_and_see_it_in_metrics(exporter_url)

        maildir = outside / "mail"
        smtp = running.enter_context(MailSink(maildir, port=free_port()))
        mailer_url = running.enter_context(_mailer(installed, outside, smtp.port))
        payload = json.loads(PAYLOAD.read_text())
        assert {alert["labels"]["account"] for alert in payload["alerts"]} == {ACCOUNT}
        response = requests.post(
            f"{mailer_url}/alertmanager/webhook",
            json=payload,
            timeout=30,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
        assert response.status_code == 200, response.text

        received = wait_for_messages(maildir, 1, timeout=60)
        assert len(received) == 1, f"emails received: {len(received)}"
        (mail,) = received
        assert mail.rcpt_tos == (PRIMARY,)
        assert mail.header("To") == PRIMARY
        assert mail.header("X-Sysnotify-Notification") == "credential_expired"
        assert mail.subject == "Action needed: Oracle Eloqua password for Globex has expired"
        assert "Acme Insights" in mail.part("text/plain")
        assert "Acme Insights" in mail.part("text/html")


@contextlib.contextmanager
def _exporter(installed: Virtualenv, cwd: Path) -> Iterator[str]:
    listen = f"127.0.0.1:{free_port()}"
    url = f"http://{listen}"
    database = str(cwd / "exporter.db")
    service = installed.service(
        "exporter",
        [installed.bin("sysnotify-exporter"), "serve", "--listen", listen, "--db", database],
        cwd=cwd,
        env={"SYSNOTIFY_INGEST_TOKEN": INGEST_TOKEN},
        ready=http_ready(f"{url}/healthz"),
    )
    with service:
        yield url


def _ingest_one_batch_and_see_it_in_metrics(url: str) -> None:
    batch = {"events": [{"type": "account", "account": ACCOUNT, "name": "Globex"}]}
    response = requests.post(
        f"{url}/api/v1/events",
        json=batch,
        timeout=30,
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["applied"] == 1
    metrics = requests.get(f"{url}/metrics", timeout=30).text.splitlines()
    assert f'abm_account_info{{account="{ACCOUNT}",account_name="Globex"}} 1.0' in metrics
    assert 'sysnotify_exporter_events_ingested_total{type="account"} 1.0' in metrics


@contextlib.contextmanager
def _mailer(installed: Virtualenv, cwd: Path, smtp_port: int) -> Iterator[str]:
    """The mailer served from the virtualenv, its one recipient set with its own command.

    The config names no templates_dir: the emails are rendered from the installed package.
    """
    config = cwd / "mailer.yml"
    config.write_text(yaml.safe_dump(_mailer_config(cwd, smtp_port)))
    mailer = installed.bin("sysnotify-mailer")
    added = installed.run(
        [mailer, "--config", str(config), "recipients", "set-primary", ACCOUNT, PRIMARY], cwd=cwd
    )
    assert added.returncode == 0, added.stderr

    listen = f"127.0.0.1:{free_port()}"
    url = f"http://{listen}"
    service = installed.service(
        "mailer",
        [mailer, "--config", str(config), "serve", "--listen", listen, "--workers", "1"],
        cwd=cwd,
        # A grace shorter than gunicorn's 30 s: stopping need not wait for the delivery thread.
        env={"SYSNOTIFY_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "GUNICORN_CMD_ARGS": "--graceful-timeout 5"},
        ready=http_ready(f"{url}/readyz"),
        ready_timeout=60,
    )
    with service:
        yield url


def _mailer_config(directory: Path, smtp_port: int) -> dict[str, Any]:
    """The mailer's required keys, sending over plain SMTP on loopback, polling for due emails
    often so the test does not wait; no templates_dir."""
    return {
        "store": {"path": str(directory / "mailer.db")},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": "5s"},
        "delivery": {"poll_interval": "0.1s", "lease": "30s"},
        "brand": {
            "product_name": "Acme Insights",
            "sender_address": "no-reply@acme.example",
            "console_url": "https://console.acme.example",
            "support_email": "support@acme.example",
        },
    }
