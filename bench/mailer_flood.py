"""Valid webhooks next to a flood of refused ones: does the flood slow Alertmanager's answers?

The mailer runs under gunicorn (2 sync workers, each with a delivery thread, sending to a
counting SMTP server), the default deployment. One client thread posts valid webhooks one
after the other, each a new notification for its own account (one email each), and times
every answer from its side, as Alertmanager would see it: first `valid` of them on a quiet
mailer, then as many as it can while another process sends `flood` requests with a wrong
bearer token (401) from `flood_threads` threads. The flood is bounded and stays on
127.0.0.1; it runs in its own process so that its threads do not hold the timing thread's
interpreter lock.

A refused request must not cost a durable write: the mailer counts refusals in memory and
adds them to the store in batches (sysnotify.mailer.deferred_counters). After the run the
mailer is stopped gracefully and the store must hold every 401 of the flood.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import mailer_stack as ms
from bench.mail_counter import CountingSmtpServer
from bench.mailer_memory import webhook_body
from stack.process import free_port

WARM_UP = 10  # valid webhooks before measuring: imports, first connections, page cache


@dataclass(frozen=True)
class FloodResult:
    quiet_seconds: tuple[float, ...]  # valid webhooks' answer times, nothing else running
    flooded_seconds: tuple[float, ...]  # the same while the flood ran
    flood_requests: int
    flood_seconds: float  # first to last answer of the flood
    flood_statuses: dict[int, int]
    counted_401: float  # sysnotify_mailer_webhook_requests_total{code="401"} after the stop

    def p99_ratio(self) -> float:
        quiet = ms.percentile(self.quiet_seconds, 0.99)
        return ms.percentile(self.flooded_seconds, 0.99) / quiet if quiet else float("inf")


def _post_valid(url: str, body: bytes) -> float:
    started = time.perf_counter()
    response = requests.post(
        url,
        data=body,
        headers={"Authorization": f"Bearer {ms.WEBHOOK_TOKEN}", "Content-Type": "application/json"},
        timeout=60,
    )
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"a valid webhook got {response.status_code}: {response.text}")
    return seconds


def flood(url: str, requests_total: int, threads: int) -> dict[int, int]:
    """Sends `requests_total` webhooks with a wrong token from `threads` threads; the count
    of each answer status."""
    body = webhook_body("flood", ms.utc_now().isoformat())
    headers = {"Authorization": "Bearer wrong-token", "Content-Type": "application/json"}
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def send(count: int) -> None:
        for _ in range(count):
            status = requests.post(url, data=body, headers=headers, timeout=60).status_code
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    shares = [requests_total // threads + (n < requests_total % threads) for n in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(send, shares))
    return statuses


def _counted(db: Path, code: str) -> float:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT value FROM counters WHERE name = 'webhook_requests' AND label = ?", (code,)
        ).fetchone()
    return float(row[0]) if row else 0.0


def measure(valid: int, flood: int, flood_threads: int, workers: int) -> FloodResult:
    """One run: warm-up, `valid` quiet webhooks, then valid webhooks for as long as a flood
    of `flood` refused requests from `flood_threads` threads lasts."""
    # One new notification per valid webhook; the flooded phase stops at `flood` of them.
    accounts = [ms.account_id(n) for n in range(1, WARM_UP + valid + flood + 1)]
    with (
        tempfile.TemporaryDirectory(prefix="sysnotify-bench-flood-") as tmp,
        CountingSmtpServer(free_port()) as smtp,
    ):
        workdir = Path(tmp)
        config = ms.write_mailer_config(workdir, smtp.port)
        ms.seed_recipients(workdir / "mailer.db", accounts)
        now = ms.utc_now().isoformat()
        bodies = iter([webhook_body(account, now) for account in accounts])
        with ms.mailer_service(workdir, config, workers) as service:
            url = f"{service.url}/alertmanager/webhook"  # type: ignore[attr-defined]
            for _ in range(WARM_UP):
                _post_valid(url, next(bodies))
            quiet = tuple(_post_valid(url, next(bodies)) for _ in range(valid))
            smtp.wait_for(WARM_UP + valid, timeout=60)  # the quiet phase's emails are out

            flooded: list[float] = []
            started = time.monotonic()
            flooding = subprocess.Popen(
                [sys.executable, "-m", "bench.mailer_flood", url, str(flood), str(flood_threads)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for body in bodies:
                if flooding.poll() is not None:
                    break
                seconds = _post_valid(url, body)
                if flooding.poll() is None:  # answered while the flood still ran
                    flooded.append(seconds)
            out, _ = flooding.communicate(timeout=300)
            flood_seconds = time.monotonic() - started
            if flooding.returncode != 0:
                raise RuntimeError(f"the flood failed (exit {flooding.returncode})")
            statuses = {int(code): n for code, n in json.loads(out).items()}
        # Stopped gracefully (SIGTERM): each worker has added its refusals to the store.
        counted = _counted(workdir / "mailer.db", "401")
    return FloodResult(quiet, tuple(flooded), flood, flood_seconds, statuses, counted)


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
    # python -m bench.mailer_flood URL REQUESTS THREADS: prints {"401": n, ...}
    print(json.dumps(flood(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))), flush=True)
