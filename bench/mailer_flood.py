"""Valid webhooks next to a flood of refused ones: does the flood slow Alertmanager's answers?

The mailer runs under gunicorn (2 sync workers, each with a delivery thread, sending to a
counting SMTP server), the default deployment. One client thread posts valid webhooks one
after the other, each a new notification for its own account (one email each), and times
every answer from its side, as Alertmanager would see it, in rounds: some on a quiet mailer,
then as many as it can while another process sends requests with a wrong bearer token (401)
from `flood_threads` threads. The flood (`flood` requests over all rounds) is bounded and
stays on 127.0.0.1; it runs in its own process so that its threads do not hold the timing
thread's interpreter lock.

A refused request must not cost a durable write: the mailer counts refusals in memory and
adds them to the store in batches (sysnotify.mailer.deferred_counters). After the run the
mailer is stopped gracefully and the store must hold every 401 of the flood.
"""

from __future__ import annotations

import collections
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import mailer_stack as ms
from bench.mail_counter import CountingSmtpServer
from bench.mailer_memory import webhook_body
from stack.process import free_port

WARM_UP = 10  # valid webhooks before measuring: imports, first connections, page cache


@dataclass(frozen=True)
class FloodResult:
    quiet_seconds: tuple[float, ...]  # valid webhooks' answer times, nothing else running
    flooded_seconds: tuple[float, ...]  # the same while the flood ran
    quiet_served_ms: tuple[float, ...]  # gunicorn's request time of the same webhooks
    flooded_served_ms: tuple[float, ...]
    flood_requests: int
    flood_seconds: float  # first to last answer of the flood
    flood_statuses: dict[int, int]
    counted_401: float  # sysnotify_mailer_webhook_requests_total{code="401"} after the stop

    def p99_ratio(self) -> float:
        quiet = ms.percentile(self.quiet_seconds, 0.99)
        return ms.percentile(self.flooded_seconds, 0.99) / quiet if quiet else float("inf")


def _request(url: str, token: str, body: bytes) -> bytes:
    """An HTTP/1.1 POST of `body` to `url`, encoded once: the clients below only write it and
    read the answer, so their own CPU stays small next to the mailer's."""
    parts = urllib.parse.urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _status(url: str, request: bytes) -> int:
    """Sends a request from _request() on a new connection; the answer's status code."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def _post_valid(url: str, body: bytes) -> float:
    request = _request(url, ms.WEBHOOK_TOKEN, body)
    started = time.perf_counter()
    status = _status(url, request)
    seconds = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"a valid webhook got {status}")
    return seconds


def flood(url: str, requests_total: int, threads: int) -> dict[int, int]:
    """Sends `requests_total` webhooks with a wrong token from `threads` threads; the count
    of each answer status."""
    request = _request(url, "wrong-token", webhook_body("flood", ms.utc_now().isoformat()))
    statuses: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def send(count: int) -> None:
        for _ in range(count):
            status = _status(url, request)
            with lock:
                statuses[status] += 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(send, _shares(requests_total, threads)))
    return dict(statuses)


def _counted(db: Path, code: str) -> float:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT value FROM counters WHERE name = 'webhook_requests' AND label = ?", (code,)
        ).fetchone()
    return float(row[0]) if row else 0.0


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (n < total % parts) for n in range(parts)]


def measure(valid: int, flood: int, flood_threads: int, workers: int, rounds: int) -> FloodResult:
    """One run of `rounds` rounds, each: a share of the `valid` quiet webhooks, then valid
    webhooks for as long as a share of the `flood` refused requests lasts. Alternating keeps
    the machine's other load from favouring one side."""
    # One new notification per valid webhook; a flooded phase stops at its flood's size.
    accounts = [ms.account_id(n) for n in range(1, WARM_UP + valid + flood + rounds + 1)]
    quiet: list[float] = []
    flooded: list[float] = []
    phases: list[str] = []  # of each valid webhook, in the order posted: quiet, flooded or ""
    statuses: collections.Counter[int] = collections.Counter()
    flood_seconds = 0.0
    with (
        tempfile.TemporaryDirectory(prefix="sysnotify-bench-flood-") as tmp,
        CountingSmtpServer(free_port()) as smtp,
    ):
        workdir = Path(tmp)
        config = ms.write_mailer_config(workdir, smtp.port)
        ms.seed_recipients(workdir / "mailer.db", accounts)
        now = ms.utc_now().isoformat()
        bodies = iter([webhook_body(account, now) for account in accounts])
        posted = 0

        def post(url: str, phase: str = "") -> float:
            nonlocal posted
            posted += 1
            phases.append(phase)
            return _post_valid(url, next(bodies))

        with ms.mailer_service(workdir, config, workers) as service:
            url = f"{service.url}/alertmanager/webhook"  # type: ignore[attr-defined]
            for _ in range(WARM_UP):
                post(url)
            for quiet_share, flood_share in zip(
                _shares(valid, rounds), _shares(flood, rounds), strict=True
            ):
                smtp.wait_for(posted, timeout=60)  # each phase starts with nothing to send
                quiet.extend(post(url, "quiet") for _ in range(quiet_share))
                smtp.wait_for(posted, timeout=60)
                flooding = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.mailer_flood",
                        url,
                        str(flood_share),
                        str(flood_threads),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert flooding.stdout is not None
                flooding.stdout.readline()  # "sending": its imports are done
                started = time.monotonic()
                for _ in range(flood_share):
                    seconds = post(url, "flooded")
                    if flooding.poll() is not None:
                        phases[-1] = ""
                        break
                    flooded.append(seconds)  # answered while the flood still ran
                out = flooding.communicate(timeout=300)[0]
                flood_seconds += time.monotonic() - started
                if flooding.returncode != 0:
                    raise RuntimeError(f"the flood failed (exit {flooding.returncode})")
                statuses.update({int(code): n for code, n in json.loads(out).items()})
        # Stopped gracefully (SIGTERM): each worker has added its refusals to the store.
        counted = _counted(workdir / "mailer.db", "401")
        # One valid webhook at a time: their 200s are logged in the order they were posted.
        valid_served = [
            ms_
            for status, ms_ in ms.webhook_answers(workdir / "mailer-access.log")
            if status == "200"
        ]
    return FloodResult(
        tuple(quiet),
        tuple(flooded),
        tuple(t for t, phase in zip(valid_served, phases, strict=True) if phase == "quiet"),
        tuple(t for t, phase in zip(valid_served, phases, strict=True) if phase == "flooded"),
        flood,
        flood_seconds,
        dict(statuses),
        counted,
    )


def describe(result: FloodResult) -> list[tuple[str, str]]:
    def spread(values: Sequence[float]) -> str:
        if not values:
            return "no samples"
        return (
            f"p50 {ms.percentile(values, 0.5) * 1000:,.1f} ms, "
            f"p99 {ms.percentile(values, 0.99) * 1000:,.1f} ms, "
            f"max {max(values) * 1000:,.1f} ms ({len(values)} webhooks)"
        )

    statuses = ", ".join(f"{n} x {code}" for code, n in sorted(result.flood_statuses.items()))
    return [
        ("valid webhooks, quiet mailer", spread(result.quiet_seconds)),
        ("valid webhooks, during the flood", spread(result.flooded_seconds)),
        ("ratio of the p99s: flooded / quiet", f"{result.p99_ratio():.2f}x"),
        (
            "  of it, gunicorn's request time: quiet",
            spread([t / 1000 for t in result.quiet_served_ms]),
        ),
        (
            "  of it, gunicorn's request time: during the flood",
            spread([t / 1000 for t in result.flooded_served_ms]),
        ),
        (
            "the flood",
            f"{statuses} in {result.flood_seconds:.1f} s "
            f"({result.flood_requests / result.flood_seconds:,.0f} requests/s)",
        ),
        (
            "401s counted in the store after a graceful stop",
            f"{result.counted_401:.0f}/{result.flood_requests}",
        ),
    ]


if __name__ == "__main__":
    # python -m bench.mailer_flood URL REQUESTS THREADS: prints "sending", then {"401": n, ...}
    print("sending", flush=True)
    print(json.dumps(flood(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))), flush=True)
