"""`sysnotify-mailer check-config`: the shipped configs agree, and the exit codes say what broke.

The rules themselves are tested in test_crosscheck.py; here, the command on the files this
repository ships and what it prints and returns.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from stack import derive
from sysnotify.mailer.cli import main
from tests.support.mailer_config import config_mapping
from tests.support.paths import BIN, REPO_ROOT

ALERTMANAGER = REPO_ROOT / "alertmanager" / "alertmanager.yml"
EXAMPLE = REPO_ROOT / "mailer" / "config.example.yml"


def check_config(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, as an operator runs it: the config through the environment."""
    environment = {**os.environ, "SYSNOTIFY_MAILER_CONFIG": str(config)}
    environment.pop("SYSNOTIFY_WEBHOOK_TOKEN", None)  # not needed for a check
    return subprocess.run(
        [str(BIN / "sysnotify-mailer"), "check-config", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# The docker compose stack's mailer config is checked against what it mounts in
# tests/stack/test_compose.py.
def test_the_example_config_agrees_with_the_shipped_alertmanager_config() -> None:
    result = check_config(
        EXAMPLE,
        "--alertmanager",
        str(ALERTMANAGER),
        "--alertmanager-retention",
        derive.ALERTMANAGER_DATA_RETENTION,  # the flag alertmanager.yml asks for
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{ALERTMANAGER} agrees with the mailer config:")
    assert "receiver(s) mailer, operators" in result.stdout
    assert result.stderr == ""


def test_alertmanagers_default_retention_is_too_short_for_the_shipped_routes() -> None:
    # Without the flag the command assumes Alertmanager's default, 120h, which the 144h and
    # 192h routes outlast: exactly why the shipped files ask for --data.retention=200h.
    result = check_config(EXAMPLE, "--alertmanager", str(ALERTMANAGER))
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 2
    assert 'route.routes[2].routes[0] (alertname="CredentialExpiringSoon")' in problems[0]
    assert 'route.routes[2].routes[4] (category="privacy")' in problems[1]
    assert all("--data.retention 120h" in problem for problem in problems)


def write(tmp_path: Path, name: str, document: object) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return path


def mailer_config(tmp_path: Path, **dedup: object) -> Path:
    return write(tmp_path, "mailer.yml", config_mapping(tmp_path, 25, dedup=dedup))


def alertmanager_config(tmp_path: Path, **webhook: object) -> Path:
    return write(
        tmp_path,
        "alertmanager.yml",
        {
            "route": {"receiver": "mailer", "repeat_interval": "4h"},
            "receivers": [
                {
                    "name": "mailer",
                    "webhook_configs": [{"url": "http://mailer/alertmanager/webhook", **webhook}],
                }
            ],
        },
    )


def test_every_problem_is_on_stderr_at_once_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = mailer_config(tmp_path, duplicate_window="4h")
    alertmanager = alertmanager_config(tmp_path, send_resolved=False, max_alerts=10)
    code = main(["--config", str(config), "check-config", "--alertmanager", str(alertmanager)])
    assert code == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"sysnotify-mailer: {alertmanager} and the mailer config disagree:"
    assert len(lines) == 4
    assert "send_resolved is false" in lines[1]
    assert "max_alerts is 10" in lines[2]
    assert "route -> receiver mailer: repeat_interval 4h is not longer" in lines[3]


def test_agreeing_configs_print_a_short_summary_with_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = mailer_config(tmp_path)
    alertmanager = alertmanager_config(tmp_path)
    code = main(["--config", str(config), "check-config", "--alertmanager", str(alertmanager)])
    assert code == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        f"{alertmanager} agrees with the mailer config:",
        "  1 route(s) reach the mailer through receiver(s) mailer",
        "  repeat intervals 4h to 4h, each longer than its receiver's duplicate window (mailer 1h)",
        "  the longest wait for a repeat, 4h5m (route), is shorter than Alertmanager's data "
        "retention (120h) and dedup.state_retention (720h)",
        "  1 mailer webhook(s), each with send_resolved on and max_alerts 0",
    ]


@pytest.mark.parametrize(
    ("alertmanager_text", "message"),
    [
        (None, "cannot read"),
        ("route: [unclosed", "not valid YAML"),
        ("route: {receiver: nobody}\nreceivers: []\n", "'nobody' is not defined under receivers"),
        (
            "route: {receiver: r, repeat_interval: often}\nreceivers: [{name: r}]\n",
            "route.repeat_interval: not a duration: 'often'",
        ),
    ],
    ids=["missing", "not-yaml", "undefined-receiver", "bad-duration"],
)
def test_an_unusable_alertmanager_file_is_a_usage_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    alertmanager_text: str | None,
    message: str,
) -> None:
    alertmanager = tmp_path / "alertmanager.yml"
    if alertmanager_text is not None:
        alertmanager.write_text(alertmanager_text)
    argv = ["--config", str(mailer_config(tmp_path)), "check-config", "--alertmanager"]
    assert main([*argv, str(alertmanager)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sysnotify-mailer: invalid Alertmanager configuration:")
    assert str(alertmanager) in err and message in err


def test_an_invalid_mailer_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = mailer_config(tmp_path, duplicate_window="soon")
    alertmanager = alertmanager_config(tmp_path)
    code = main(["--config", str(config), "check-config", "--alertmanager", str(alertmanager)])
    assert code == 2
    assert "dedup.duplicate_window: not a duration: 'soon'" in capsys.readouterr().err


@pytest.mark.parametrize("retention", ["8d", "1w", "soon", ""])
def test_a_retention_alertmanager_would_refuse_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], retention: str
) -> None:
    # Alertmanager's flags take Go durations: hours at most, no days or weeks.
    argv = ["check-config", "--alertmanager", "am.yml", "--alertmanager-retention", retention]
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(mailer_config(tmp_path)), *argv])
    assert exit_.value.code == 2
    assert "--alertmanager-retention: not a duration Alertmanager's flags accept" in (
        capsys.readouterr().err
    )
