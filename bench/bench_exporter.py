"""Exporter benchmark: ingest throughput and /metrics serve time on simulated data.

    .venv/bin/python -m bench --only exporter                 # 10,000 accounts (make bench)
    .venv/bin/python -m bench --only exporter -- --accounts 500 --scrapes 5

Steps, all on loopback and in temporary files:

1. Simulate N accounts (35 days of history ending now) and load every event into a fresh store
   directly, in batches of 1,000: validation plus transaction, i.e. the store-direct ingest rate.
2. Start a real ``sysnotify-exporter serve`` on a second, empty store and post the first
   events over HTTP in batches of 1,000 (bodies encoded before timing): the HTTP ingest rate.
3. Start a real ``sysnotify-exporter serve`` on the loaded store and time ``GET /metrics``:
   the first (cold) scrape, then the median of `--scrapes` cached scrapes, then the median
   scrape right after a small batch touching 10 accounts (a partial rebuild).
4. In this process, over the same store: prometheus_client's ordinary custom-collector path
   (``generate_latest`` over :class:`sysnotify.exporter.collector.StoreCollector`, each time)
   and the cache's full rebuild, for the ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, generate_latest

from stack.process import Service, free_port, http_ready
from sysnotify.exporter.collector import StoreCollector
from sysnotify.exporter.config import ExporterConfig
from sysnotify.exporter.events import validate_events
from sysnotify.exporter.exposition import ExpositionCache
from sysnotify.exporter.series import utc_day
from sysnotify.exporter.simulate import Simulator, iso
from sysnotify.exporter.store import FactStore
from sysnotify.exporter.store.backends import open_fact_store

TOKEN = "bench-token-0123456789abcdef"
TARGET_SCRAPE_MS = 150.0
TARGET_INGEST_EPS = 50_000.0


def batched(iterable, size):  # type: ignore[no-untyped-def]
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def exporter_service(db: Path, workdir: Path, name: str) -> Service:
    port = free_port()
    exe = Path(sys.executable).parent / "sysnotify-exporter"
    argv = [
        str(exe) if exe.exists() else sys.executable,
        *([] if exe.exists() else ["-m", "sysnotify.exporter.cli"]),
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--db",
        str(db),
    ]
    service = Service(
        name,
        argv,
        workdir / f"{name}.log",
        ready=http_ready(f"http://127.0.0.1:{port}/healthz"),
        env={"SYSNOTIFY_INGEST_TOKEN": TOKEN},
        ready_timeout=60,
    )
    service.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return service


class _Preloaded:
    """Stands in for the store with facts read once, for the baseline without SQL."""

    def __init__(self, store: FactStore) -> None:
        self._facts = store.facts(utc_day(time.time()))
        self._last = store.last_event_at()

    def facts(self, today: int, accounts: object = None) -> dict:
        return self._facts

    def last_event_at(self) -> float | None:
        return self._last


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench --only exporter --")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scrapes", type=int, default=30, help="cached scrapes to time")
    parser.add_argument("--baseline-runs", type=int, default=5)
    parser.add_argument(
        "--http-events",
        type=int,
        default=300_000,
        help="events posted over HTTP for the HTTP ingest rate",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)

    now = time.time()
    simulator = Simulator(seed=args.seed, accounts=args.accounts, days=args.days, now=now)
    window = ExporterConfig().event_window(now)
    print(
        f"exporter bench: {args.accounts} accounts, {args.days} days, seed {args.seed}, "
        f"batches of {args.batch_size}, {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="sysnotify-bench-") as tmp:
        workdir = Path(tmp)
        db = workdir / "loaded.db"

        # 1. Store-direct ingest of everything.
        store = open_fact_store(db)
        events = validate_seconds = apply_seconds = 0.0
        generate_started = time.perf_counter()
        for batch in batched(simulator.events(), args.batch_size):
            started = time.perf_counter()
            valid, errors = validate_events(batch, window)
            validated = time.perf_counter()
            if errors:
                raise SystemExit(f"simulator produced invalid events: {errors[:3]}")
            store.apply(valid)
            validate_seconds += validated - started
            apply_seconds += time.perf_counter() - validated
            events += len(batch)
        total = time.perf_counter() - generate_started
        store_eps = events / (validate_seconds + apply_seconds)
        print(f"simulated and loaded {int(events)} events in {total:.1f} s", flush=True)

        # 4 (first, while no server competes for the CPUs). Ordinary collector path vs cache.
        registry = CollectorRegistry()
        StoreCollector(store, registry=registry)
        baseline_bytes = generate_latest(registry)
        series = sum(1 for line in baseline_bytes.splitlines() if not line.startswith(b"#"))
        baseline = timed(lambda: generate_latest(registry), args.baseline_runs)
        # The same path with the facts read once beforehand: prometheus_client's share alone.
        preloaded = CollectorRegistry()
        StoreCollector(_Preloaded(store), registry=preloaded)  # type: ignore[arg-type]
        baseline_no_sql = timed(lambda: generate_latest(preloaded), args.baseline_runs)
        cache = ExpositionCache(store)

        def rebuild() -> None:
            cache.invalidate()
            cache.render()

        cold_inprocess = timed(rebuild, 3)
        cache_bytes = cache.render()
        same = cache_bytes == generate_latest(registry)
        hit_inprocess = timed(cache.render, 200)
        store.close()

        # 2. HTTP ingest into an empty store.
        bodies = []
        posted = 0
        for batch in batched(
            itertools.islice(simulator.events(), args.http_events), args.batch_size
        ):
            bodies.append(json.dumps({"events": batch}).encode())
            posted += len(batch)
        with exporter_service(workdir / "http.db", workdir, "exporter-ingest") as service:
            session = requests.Session()
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            url = f"{service.url}/api/v1/events"  # type: ignore[attr-defined]
            started = time.perf_counter()
            for body in bodies:
                response = session.post(url, data=body, headers=headers, timeout=60)
                response.raise_for_status()
            http_seconds = time.perf_counter() - started
        http_eps = posted / http_seconds

        # 3. /metrics from a real server on the loaded store.
        with exporter_service(db, workdir, "exporter-metrics") as service:
            session = requests.Session()
            url = f"{service.url}/metrics"  # type: ignore[attr-defined]

            def scrape() -> None:
                response = session.get(url, timeout=60)
                response.raise_for_status()
                assert len(response.content) > 0

            cold = timed(scrape, 1)[0]
            cached = timed(scrape, args.scrapes)
            small = []
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for round_ in range(max(5, args.scrapes // 3)):
                batch = [
                    {
                        "type": "api_usage",
                        "account": simulator.account_id(1 + (round_ * 10 + k) % args.accounts),
                        "platform": "salesforce",
                        "used": round_,
                        "limit": 1000,
                        "window_start": iso(now - 3600),
                    }
                    for k in range(10)
                ]
                session.post(
                    f"{service.url}/api/v1/events",  # type: ignore[attr-defined]
                    json={"events": batch},
                    headers=headers,
                    timeout=60,
                ).raise_for_status()
                small.append(timed(scrape, 1)[0])

    median_cached = statistics.median(cached)
    median_baseline = statistics.median(baseline)
    rows = [
        ("events simulated and loaded", f"{int(events)}"),
        ("series in /metrics (store-derived)", f"{series}"),
        ("exposition size", f"{len(cache_bytes) / 1e6:.1f} MB"),
        ("cache bytes == generate_latest bytes", "yes" if same else "NO"),
        (
            "ingest, store direct (validate+apply)",
            f"{store_eps:,.0f} events/s (apply only {events / apply_seconds:,.0f})",
        ),
        ("ingest, HTTP API", f"{http_eps:,.0f} events/s ({posted} events)"),
        ("/metrics first scrape (cold, full build)", ms(cold)),
        (f"/metrics median of {len(cached)} scrapes (cached)", ms(median_cached)),
        ("/metrics p90 (cached)", ms(sorted(cached)[int(0.9 * (len(cached) - 1))])),
        ("/metrics median after a 10-account batch", ms(statistics.median(small))),
        ("in-process full rebuild (median of 3)", ms(statistics.median(cold_inprocess))),
        ("in-process cache hit (median of 200)", ms(statistics.median(hit_inprocess))),
        (
            f"ordinary collector path, generate_latest (median of {len(baseline)})",
            ms(median_baseline),
        ),
        ("  the same with facts preloaded (no SQL)", ms(statistics.median(baseline_no_sql))),
        ("ratio: ordinary path / cached /metrics", f"{median_baseline / median_cached:,.1f}x"),
        (
            "ratio: ordinary path / /metrics after a batch",
            f"{median_baseline / statistics.median(small):,.1f}x",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    verdicts = [
        (f"median /metrics < {TARGET_SCRAPE_MS:.0f} ms", median_cached * 1000 < TARGET_SCRAPE_MS),
        (f"store ingest >= {TARGET_INGEST_EPS:,.0f} events/s", store_eps >= TARGET_INGEST_EPS),
        (f"HTTP ingest >= {TARGET_INGEST_EPS:,.0f} events/s", http_eps >= TARGET_INGEST_EPS),
        ("cache output identical to the ordinary path", same),
    ]
    for label, ok in verdicts:
        print(f"  [{'ok' if ok else 'MISSED'}] {label}")
    return 0
