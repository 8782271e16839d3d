"""``sysnotify-exporter ingest`` and ``simulate``, and the configuration they and serve read."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from sysnotify.exporter import cli
from sysnotify.exporter.cli import main
from sysnotify.exporter.config import ConfigError, load_config
from sysnotify.exporter.events import validate_events
from sysnotify.exporter.simulate import TROUBLES, Simulator
from sysnotify.exporter.store.backends import open_fact_store
from tests.support.exporter import (
    BAD_EVENTS,
    WINDOW,
    Clock,
    account,
    ago,
    api_usage,
    credential,
    sync_finished,
    sync_started,
    web_visits,
)

NOW_ARG = "2026-05-28T10:00:00Z"


def write_lines(path: Path, events: list, blank_after: int | None = None) -> Path:
    lines = [json.dumps(e) if not isinstance(e, str) else e for e in events]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def store_state(db: Path) -> tuple[int, int]:
    store = open_fact_store(db)
    try:
        return store.version(), store.account_count()
    finally:
        store.close()


# -- ingest --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clock_at_now(monkeypatch):
    """`ingest` checks event times against its clock: the events here are dated around NOW."""
    monkeypatch.setattr(cli, "time", SimpleNamespace(time=Clock()))


def test_ingest_refuses_times_outside_the_window_of_its_config(tmp_path, capsys):
    path = write_lines(tmp_path / "e.jsonl", [account(), credential(checked_at=ago(days=50))])
    config = tmp_path / "exporter.yml"
    config.write_text("events_max_age: 40d\n")
    args = ["ingest", str(path), "--db", str(tmp_path / "x.db")]
    assert main([*args, "--config", str(config)]) == 1
    assert "line 2: field 'checked_at': is more than 40 days in the past" in capsys.readouterr().err
    assert main(args) == 0
    config.write_text("events_max_age: 1d\n")
    assert main([*args, "--config", str(config)]) == 2
    assert "events_max_age: must be at least 36d" in capsys.readouterr().err


def test_ingest_a_file(tmp_path, capsys):
    path = write_lines(tmp_path / "e.jsonl", [account(), api_usage(), web_visits()])
    assert main(["ingest", str(path), "--db", str(tmp_path / "x.db")]) == 0
    assert "applied 3 events" in capsys.readouterr().out
    assert store_state(tmp_path / "x.db") == (1, 1)


def test_ingest_stdin(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(account()) + "\n"))
    assert main(["ingest", "-", "--db", str(tmp_path / "x.db")]) == 0
    assert "from stdin" in capsys.readouterr().out


def test_ingest_defaults_to_stdin(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(account()) + "\n"))
    assert main(["ingest", "--db", str(tmp_path / "x.db")]) == 0
    assert store_state(tmp_path / "x.db") == (1, 1)


def test_errors_name_the_line_and_nothing_is_applied(tmp_path, capsys):
    events = [
        account(),
        account("acc-2"),
        account("acc-3"),
        api_usage(),
        web_visits(),
        web_visits(page="/b"),
        api_usage(used=-1),
    ]
    path = write_lines(tmp_path / "e.jsonl", events)
    assert main(["ingest", str(path), "--db", str(tmp_path / "x.db")]) == 1
    err = capsys.readouterr().err
    assert "line 7: field 'used': must be a non-negative integer" in err
    assert "nothing applied" in err
    assert store_state(tmp_path / "x.db") == (0, 0)


def test_blank_lines_are_skipped_but_counted(tmp_path, capsys):
    path = write_lines(tmp_path / "e.jsonl", [account(), account(""), "{not json"], blank_after=1)
    assert main(["ingest", str(path), "--db", str(tmp_path / "x.db")]) == 1
    err = capsys.readouterr().err
    assert "line 3: field 'account': must be a non-empty string" in err
    assert "line 4: not valid JSON" in err


@pytest.mark.parametrize(
    "event, field, reason", [row[1:] for row in BAD_EVENTS], ids=[row[0] for row in BAD_EVENTS]
)
def test_every_bad_input_class_fails_the_file(tmp_path, capsys, event, field, reason):
    db = tmp_path / "x.db"
    assert (
        main(["ingest", str(write_lines(tmp_path / "ok.jsonl", [account()])), "--db", str(db)]) == 0
    )
    path = write_lines(tmp_path / "e.jsonl", [account("acc-2"), event])
    assert main(["ingest", str(path), "--db", str(db)]) == 1
    err = capsys.readouterr().err
    where = f"line 2: field {field!r}: " if field else "line 2: "
    assert where + reason in err or (where in err and reason in err)
    assert store_state(db) == (1, 1)


def test_a_finish_without_a_start_names_its_line(tmp_path, capsys):
    path = write_lines(
        tmp_path / "e.jsonl",
        [sync_started(run="a"), sync_finished(run="a"), account(), sync_finished(run="b")],
    )
    assert main(["ingest", str(path), "--db", str(tmp_path / "x.db")]) == 1
    assert "line 4: field 'run_id': no sync_started for run 'b'" in capsys.readouterr().err
    assert store_state(tmp_path / "x.db") == (0, 0)


def test_a_missing_file(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "x.db")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_the_console_script_exits_non_zero(tmp_path):
    path = write_lines(tmp_path / "e.jsonl", [web_visits(visits=-1)])
    config = tmp_path / "exporter.yml"
    config.write_text("events_max_age: 36500d\n")  # its clock is the real one; NOW is fixed
    exe = Path(sys.executable).parent / "sysnotify-exporter"
    result = subprocess.run(
        [str(exe), "ingest", str(path), "--db", str(tmp_path / "x.db"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "line 1: field 'visits'" in result.stderr


# -- serve (start-up checks only; the running server is tested in the integration tests) -------


def test_serve_refuses_to_start_without_a_token(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SYSNOTIFY_INGEST_TOKEN", raising=False)
    monkeypatch.delenv("SYSNOTIFY_INGEST_TOKEN_FILE", raising=False)
    assert main(["serve", "--db", str(tmp_path / "x.db")]) == 2  # a configuration error
    assert "no ingest token" in capsys.readouterr().err


def test_serve_reports_every_config_problem_at_once(tmp_path, capsys):
    config = tmp_path / "c.yml"
    config.write_text("listen: nowhere\nthreads: 0\ncolour: blue\n")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "listen" in err and "threads" in err and "colour" in err


def test_serve_exits_1_when_the_store_cannot_be_opened(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYSNOTIFY_INGEST_TOKEN", "ingest-token-0123456789")
    assert main(["serve", "--db", str(tmp_path)]) == 1  # a directory, not a database file
    assert "cannot open" in capsys.readouterr().err


# -- config --------------------------------------------------------------------------------


def test_config_layers(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-token-0123456789\n")
    path = tmp_path / "c.yml"
    path.write_text(f"listen: 127.0.0.1:1234\nthreads: 2\ningest_token_file: {token_file}\n")
    config = load_config(path, env={})
    assert (config.listen, config.threads, config.ingest_token) == (
        "127.0.0.1:1234",
        2,
        "file-token-0123456789",
    )
    config = load_config(
        path, env={"SYSNOTIFY_INGEST_TOKEN": "env-token-0123456789"}, listen="127.0.0.1:9999"
    )
    assert (config.listen, config.ingest_token) == ("127.0.0.1:9999", "env-token-0123456789")
    assert "token" not in repr(config)
    config = load_config(None, env={"SYSNOTIFY_INGEST_TOKEN_FILE": str(token_file)})
    assert config.ingest_token == "file-token-0123456789"
    assert config.listen == "127.0.0.1:9730"


def test_config_example_is_valid(repo_root, tmp_path):
    token = tmp_path / "t"
    token.write_text("x" * 32)
    config = load_config(
        repo_root / "exporter" / "config.example.yml",
        env={"SYSNOTIFY_INGEST_TOKEN_FILE": str(token)},
    )
    assert config.max_body_bytes == 10 * 1024 * 1024


@pytest.mark.parametrize(
    "text, problem",
    [
        ("max_body_bytes: -1", "max_body_bytes"),
        ("max_body_bytes: ten", "max_body_bytes"),
        ("retention_days: 7", "retention_days"),
        ("ingest_token: short", "at least 16"),
        ("ingest_token: aaaaaaaaaaaaaaaaaa\ningest_token_file: /x", "not both"),
        ("ingest_token_file: /does/not/exist", "cannot read"),
        ("- a list", "mapping"),
        ("listen: [1, 2]", "listen"),
        ("access_log: maybe", "access_log"),
    ],
)
def test_config_problems(tmp_path, text, problem):
    path = tmp_path / "c.yml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=problem):
        load_config(path, env={})


# -- simulate ------------------------------------------------------------------------------


def run_simulate(*args: str) -> str:
    exe = Path(sys.executable).parent / "sysnotify-exporter"
    result = subprocess.run(
        [str(exe), "simulate", "--now", NOW_ARG, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return result.stdout


def test_simulate_is_reproducible_from_its_seed():
    first = run_simulate("--accounts", "20", "--seed", "3")
    assert first == run_simulate("--accounts", "20", "--seed", "3")
    assert first != run_simulate("--accounts", "20", "--seed", "4")


def test_simulated_events_are_valid_and_apply(tmp_path):
    text = run_simulate("--accounts", "60", "--seed", "5")
    objs = [json.loads(line) for line in text.splitlines()]
    events, errors = validate_events(objs, WINDOW)
    assert errors == []
    store = open_fact_store(tmp_path / "sim.db")
    store.apply(events)
    assert store.account_count() == 60
    store.close()
    kinds = Counter(o["type"] for o in objs)
    assert set(kinds) == {
        "account",
        "credential",
        "api_usage",
        "web_visits",
        "sync_started",
        "sync_finished",
        "privacy_optout",
    }
    pages = Counter((o["account"], o["page"]) for o in objs if o["type"] == "web_visits")
    per_account = Counter(acc for acc, _ in pages)
    assert max(per_account.values()) <= 40


def test_simulate_output_file(tmp_path):
    out = tmp_path / "events.jsonl"
    run_simulate("--accounts", "3", "--output", str(out))
    assert out.read_text().count('"type":"account"') == 3


def test_every_trouble_state_occurs_in_a_large_enough_platform():
    simulator = Simulator(seed=1, accounts=400, days=35, now=1779962400.0)
    troubles = Counter(simulator.trouble(i) for i in range(1, 401))
    assert set(TROUBLES) <= set(troubles)
    assert 0.05 < (400 - troubles[None]) / 400 < 0.25


def test_ten_thousand_accounts_work():
    started = time.monotonic()
    text = run_simulate("--accounts", "10000", "--days", "1")
    assert text.count('"type":"account"') == 10000
    assert time.monotonic() - started < 120
