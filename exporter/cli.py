"""``sysnotify-exporter``: serve, ingest JSON lines, simulate a platform.

Exit codes (sysnotify.exits): 0 success; 1 the operation failed (input rejected, nothing applied;
the store cannot be opened; a batch rejected by a running exporter); 2 a usage or configuration
error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any

from sysnotify import exits
from sysnotify.exporter.config import DEFAULT_LISTEN, TOKEN_ENV, ConfigError, load_config
from sysnotify.exporter.events import Event, EventError, TimeWindow, validate_event
from sysnotify.exporter.store import BatchRejected
from sysnotify.exporter.store.backends import open_fact_store

MAX_REPORTED_ERRORS = 50


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.run(args) or exits.OK)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sysnotify-exporter",
        description="Platform facts in, per-account integration-health metrics out.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the ingest API, /metrics and /healthz")
    serve.add_argument("--listen", help=f"HOST:PORT to bind (default {DEFAULT_LISTEN})")
    serve.add_argument("--db", help="the SQLite fact store (created when missing)")
    serve.add_argument("--config", help="YAML config file (see exporter/config.example.yml)")
    serve.add_argument("--threads", type=int, help="request threads (default 4)")
    serve.set_defaults(run=run_serve)

    ingest = commands.add_parser("ingest", help="import events as JSON lines, all or nothing")
    ingest.add_argument("file", nargs="?", default="-", help="JSON-lines file, or - for stdin")
    ingest.add_argument("--db", required=True, help="the SQLite fact store")
    ingest.add_argument(
        "--config", help="YAML config file, for events_max_ahead and events_max_age"
    )
    ingest.set_defaults(run=run_ingest)

    simulate = commands.add_parser(
        "simulate", help="write a simulated platform's events as JSON lines, or post them"
    )
    simulate.add_argument("--accounts", type=int, default=100, help="accounts (default 100)")
    simulate.add_argument("--days", type=int, default=35, help="days of history (default 35)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument("--now", help="RFC 3339 time the history ends at (default: now)")
    simulate.add_argument("--output", "-o", help="write to this file instead of stdout")
    simulate.add_argument(
        "--post",
        metavar="URL",
        help="post the events to a running exporter instead of writing them",
    )
    simulate.add_argument(
        "--token", help="ingest token for --post (default: $SYSNOTIFY_INGEST_TOKEN)"
    )
    simulate.add_argument(
        "--batch-size", type=int, default=1000, help="events per request with --post (default 1000)"
    )
    simulate.set_defaults(run=run_simulate)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config, listen=args.listen, db=args.db, threads=args.threads)
    except ConfigError as error:
        print(f"sysnotify-exporter: {error}", file=sys.stderr)
        return exits.USAGE
    problems = []
    if config.db is None:
        problems.append("no fact store: give --db PATH (or db: in the config file)")
    if not config.ingest_token:
        problems.append(
            "no ingest token: set SYSNOTIFY_INGEST_TOKEN, SYSNOTIFY_INGEST_TOKEN_FILE"
            " or ingest_token/ingest_token_file in the config file"
        )
    if problems:
        print("sysnotify-exporter: " + "; ".join(problems), file=sys.stderr)
        return exits.USAGE
    assert config.db is not None
    try:
        open_fact_store(config.db).close()  # create or migrate now, so errors show before serving
    except Exception as error:  # noqa: BLE001 - reported, then exit
        print(f"sysnotify-exporter: cannot open {config.db}: {error}", file=sys.stderr)
        return exits.FAILED
    from sysnotify.exporter.server import serve  # gunicorn only when serving

    serve(config)
    return exits.OK


def read_json_lines(stream: IO[str]) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, decoded value or None, JSON error or None) for each non-blank line."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), None
        except ValueError as error:
            yield number, None, f"not valid JSON: {error}"


def format_error(line: int, error: EventError) -> str:
    if error.field is None:
        return f"line {line}: {error.reason}"
    return f"line {line}: field {error.field!r}: {error.reason}"


def validate_lines(
    lines: Iterable[tuple[int, Any, str | None]], window: TimeWindow
) -> tuple[list[Event], list[int], list[str]]:
    """Events, the line number of each, and error messages for the whole input."""
    events: list[Event] = []
    numbers: list[int] = []
    problems: list[str] = []
    for number, value, json_error in lines:
        if json_error is not None:
            problems.append(f"line {number}: {json_error}")
            continue
        event, errors = validate_event(value, window, len(events))
        if errors:
            problems.extend(format_error(number, error) for error in errors)
        elif not problems:
            events.append(event)  # type: ignore[arg-type]
            numbers.append(number)
    return events, numbers, problems


def run_ingest(args: argparse.Namespace) -> int:
    source = "stdin" if args.file == "-" else args.file
    try:
        window = load_config(args.config).event_window(time.time())
    except ConfigError as error:
        print(f"sysnotify-exporter: {error}", file=sys.stderr)
        return exits.USAGE
    try:
        if args.file == "-":
            events, numbers, problems = validate_lines(read_json_lines(sys.stdin), window)
        else:
            with open(args.file, encoding="utf-8") as stream:
                events, numbers, problems = validate_lines(read_json_lines(stream), window)
    except OSError as error:
        print(f"sysnotify-exporter: cannot read {source}: {error.strerror}", file=sys.stderr)
        return exits.FAILED
    except UnicodeDecodeError as error:
        print(f"sysnotify-exporter: {source} is not UTF-8 text: {error}", file=sys.stderr)
        return exits.FAILED
    if not problems:
        try:
            store = open_fact_store(args.db)
        except Exception as error:  # noqa: BLE001
            print(f"sysnotify-exporter: cannot open {args.db}: {error}", file=sys.stderr)
            return exits.FAILED
        try:
            result = store.apply(events)
        except BatchRejected as rejected:
            problems = [format_error(numbers[e.index], e) for e in rejected.errors]
        else:
            kinds = ", ".join(f"{kind} {count}" for kind, count in result.by_type.items())
            print(
                f"applied {result.applied} events from {source} to {args.db}"
                + (f" ({kinds})" if kinds else "")
            )
            return exits.OK
        finally:
            store.close()
    for message in problems[:MAX_REPORTED_ERRORS]:
        print(message, file=sys.stderr)
    if len(problems) > MAX_REPORTED_ERRORS:
        print(f"... and {len(problems) - MAX_REPORTED_ERRORS} more", file=sys.stderr)
    print(
        f"sysnotify-exporter: {len(problems)} problem(s) in {source}; nothing applied",
        file=sys.stderr,
    )
    return exits.FAILED


def parse_now(text: str | None) -> float:
    if text is None:
        return time.time()
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"--now {text!r} needs a UTC offset, e.g. 2026-05-01T12:00:00Z")
    return parsed.timestamp()


def run_simulate(args: argparse.Namespace) -> int:
    from sysnotify.exporter.simulate import Simulator

    if args.accounts < 1 or args.days < 1 or args.batch_size < 1:
        print(
            "sysnotify-exporter: --accounts, --days and --batch-size must be positive",
            file=sys.stderr,
        )
        return exits.USAGE
    try:
        now = parse_now(args.now)
    except ValueError as error:
        print(f"sysnotify-exporter: {error}", file=sys.stderr)
        return exits.USAGE
    simulator = Simulator(seed=args.seed, accounts=args.accounts, days=args.days, now=now)
    if args.post:
        token = args.token or os.environ.get(TOKEN_ENV)
        if not token:
            print(
                "sysnotify-exporter: --post needs --token or SYSNOTIFY_INGEST_TOKEN",
                file=sys.stderr,
            )
            return exits.USAGE
        return post_events(simulator.events(), args.post, token, args.batch_size)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        buffer: list[str] = []
        for event in simulator.events():
            buffer.append(dumps(event))
            if len(buffer) >= 10_000:
                out.write("\n".join(buffer) + "\n")
                buffer.clear()
        if buffer:
            out.write("\n".join(buffer) + "\n")
    except BrokenPipeError:
        return exits.OK
    finally:
        if args.output:
            out.close()
    return exits.OK


def post_events(events: Iterable[dict[str, Any]], url: str, token: str, batch_size: int) -> int:
    """Posts the events in batches to a running exporter; stops at the first rejected batch."""
    import requests

    if not url.rstrip("/").endswith("/api/v1/events"):
        url = url.rstrip("/") + "/api/v1/events"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    posted = batches = 0
    batch: list[dict[str, Any]] = []

    def send() -> bool:
        nonlocal posted, batches
        response = session.post(url, json={"events": batch}, timeout=60)
        if response.status_code != 200:
            print(
                f"sysnotify-exporter: batch {batches + 1} rejected: HTTP "
                f"{response.status_code}: {response.text[:2000]}",
                file=sys.stderr,
            )
            return False
        posted += len(batch)
        batches += 1
        batch.clear()
        return True

    for event in events:
        batch.append(event)
        if len(batch) >= batch_size and not send():
            return exits.FAILED
    if batch and not send():
        return exits.FAILED
    print(f"posted {posted} events in {batches} batches to {url}")
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
