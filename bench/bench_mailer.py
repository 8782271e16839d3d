"""Mailer benchmark, side by side with Alertmanager's own email notifier.

    .venv/bin/python -m bench --only mailer                  # everything (make bench)
    .venv/bin/python -m bench --only mailer -- --only throughput --alerts 500

Scenarios (each prints its figures and, where there are two sides, the ratio):

throughput  N alerts, each its own group, posted to a real Alertmanager 0.25: (a) its
            email_configs to an aiosmtpd server, (b) its webhook to the mailer under gunicorn
            (delivery threads in the workers, the default) to the same kind of server, (c)
            the same with the workers only taking webhooks and a delivery process sending.
            Emails/s, ratios b/a and c/a, lost and doubled messages, and the mailer's
            webhook answer times (gunicorn's request time, p50/p99).
latency     the whole stack (stack.local.LocalStack, timings shortened as in the end-to-end
            tests): a fact posted to the exporter -> the email stored by the SMTP sink, and
            the mailer's share of it (webhook received -> SMTP accepted), p50/p99.
stages      where one mailer email's time goes, stage by stage, in one process.
flood       valid webhooks' answer times (client side, p99) on a quiet mailer and during a
            bounded flood of 401s (wrong bearer token) from a few threads, side by side,
            and the ratio; then whether the store counted every 401.
memory      resident memory (RSS and PSS over all processes) of the mailer with 10,000
            accounts of recipients after a batch of notifications, and of the exporter
            serving simulated data of 10,000 accounts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench import mailer_flood, mailer_latency, mailer_memory, mailer_stages, mailer_throughput
from bench import mailer_stack as ms

TARGET_RATIO = 1.2
TARGET_WEBHOOK_P99_MS = 50.0
TARGET_MAILER_SHARE_P99_MS = 100.0
TARGET_FLOOD_P99_RATIO = 1.5
SCENARIOS = ("throughput", "stages", "latency", "flood", "memory")


def _print(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}", flush=True)


def _verdicts(verdicts: Sequence[tuple[str, bool]]) -> None:
    for label, ok in verdicts:
        print(f"  [{'ok' if ok else 'MISSED'}] {label}", flush=True)


def throughput(args: argparse.Namespace) -> None:
    accounts = [ms.account_id(n) for n in range(1, args.alerts + 1)]
    print(f"throughput: {len(accounts)} alerts, one group each", flush=True)
    email = mailer_throughput.alertmanager_email(accounts, args.timeout)
    _print(mailer_throughput.describe(email))
    sides = [
        mailer_throughput.mailer(accounts, args.timeout, args.workers, args.threads),
        mailer_throughput.mailer(
            accounts, args.timeout, args.workers, args.process_threads, delivery_process=True
        ),
    ]
    for side, label in zip(sides, "bc", strict=True):
        _print(mailer_throughput.describe(side))
        ratio = side.rate / email.rate if email.rate else 0.0
        p99 = ms.percentile(side.webhook_ms, 0.99) if side.webhook_ms else float("inf")
        _print([(f"ratio ({label}): mailer / Alertmanager email", f"{ratio:.2f}x")])
        _verdicts(
            [
                (
                    f"({label}) mailer >= {TARGET_RATIO}x Alertmanager's emails/s",
                    ratio >= TARGET_RATIO,
                ),
                (
                    f"({label}) zero lost, zero doubled (and Alertmanager's side)",
                    email.complete and side.complete and email.tally.clean and side.tally.clean,
                ),
                (
                    f"({label}) webhook answer p99 < {TARGET_WEBHOOK_P99_MS:.0f} ms",
                    p99 < TARGET_WEBHOOK_P99_MS,
                ),
            ]
        )


def stages(args: argparse.Namespace) -> None:
    print(f"stages: {args.stage_emails} emails through the real code, one at a time", flush=True)
    _print(mailer_stages.describe(mailer_stages.measure(args.stage_emails)))


def latency(args: argparse.Namespace) -> None:
    print(f"latency: {args.samples} samples, {args.spacing:.1f} s apart, whole stack", flush=True)
    result = mailer_latency.measure(args.samples, args.spacing, args.timeout)
    _print(mailer_latency.describe(result))
    share = result.mailer_seconds
    p99 = ms.percentile(share, 0.99) * 1000 if share else float("inf")
    _verdicts(
        [
            (
                f"mailer's share p99 < {TARGET_MAILER_SHARE_P99_MS:.0f} ms when idle",
                p99 < TARGET_MAILER_SHARE_P99_MS and not result.missing,
            )
        ]
    )


def flood(args: argparse.Namespace) -> None:
    print(
        f"flood: {args.flood_rounds} rounds of valid webhooks quiet, then valid webhooks "
        f"during refused ones from {args.flood_threads} threads ({args.valid_webhooks} "
        f"quiet and {args.flood:,} refused in all)",
        flush=True,
    )
    result = mailer_flood.measure(
        args.valid_webhooks, args.flood, args.flood_threads, args.workers, args.flood_rounds
    )
    _print(mailer_flood.describe(result))
    _verdicts(
        [
            (
                f"valid webhooks' p99 during the flood within {TARGET_FLOOD_P99_RATIO}x quiet",
                result.p99_ratio() <= TARGET_FLOOD_P99_RATIO,
            ),
            (
                "every 401 of the flood counted",
                result.counted_401 == result.flood_requests
                and result.flood_statuses == {401: result.flood_requests},
            ),
        ]
    )


def memory(args: argparse.Namespace) -> None:
    print(f"memory: {args.accounts} accounts", flush=True)
    idle, loaded, sent = mailer_memory.mailer(
        args.accounts, args.notifications, args.workers, args.timeout
    )
    rows = [
        (f"mailer ({args.workers} workers), ready", mailer_memory.mib(idle)),
        (
            f"mailer after {args.notifications} notifications ({sent} emails sent)",
            mailer_memory.mib(loaded),
        ),
    ]
    _print(rows)
    idle, loaded, events, seconds = mailer_memory.exporter(args.accounts, args.days)
    _print(
        [
            (
                f"exporter store: {events:,} simulated events ({args.days} days)",
                f"loaded in {seconds:.0f} s",
            ),
            ("exporter, ready", mailer_memory.mib(idle)),
            ("exporter after two /metrics scrapes", mailer_memory.mib(loaded)),
        ]
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench --only mailer --")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)"
    )
    parser.add_argument("--alerts", type=int, default=2000, help="alert groups (throughput)")
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for all emails of one side"
    )
    parser.add_argument("--workers", type=int, default=2, help="mailer gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="delivery threads per worker")
    parser.add_argument(
        "--process-threads",
        type=int,
        default=3,
        help="threads of the delivery process (throughput, side c)",
    )
    parser.add_argument(
        "--stage-emails", type=int, default=1000, help="emails timed stage by stage (stages)"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=100,
        help="latency samples (100, so that p99 is not simply the slowest)",
    )
    parser.add_argument(
        "--spacing",
        type=float,
        default=1.5,
        help="seconds between latency samples (more than one evaluation)",
    )
    parser.add_argument(
        "--valid-webhooks",
        type=int,
        default=400,
        help="valid webhooks timed on the quiet mailer (flood)",
    )
    parser.add_argument(
        "--flood", type=int, default=2000, help="requests with a wrong token (flood)"
    )
    parser.add_argument(
        "--flood-threads", type=int, default=3, help="threads sending the flood (flood)"
    )
    parser.add_argument(
        "--flood-rounds",
        type=int,
        default=4,
        help="quiet and flooded phases alternate this many times (flood)",
    )
    parser.add_argument("--accounts", type=int, default=10_000, help="accounts (memory)")
    parser.add_argument(
        "--notifications",
        type=int,
        default=2000,
        help="webhooks posted to the mailer before measuring its memory",
    )
    parser.add_argument("--days", type=int, default=35, help="simulated days (memory)")
    args = parser.parse_args(argv)
    for name in args.only or SCENARIOS:
        globals()[name](args)
    return 0
