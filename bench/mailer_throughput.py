"""Throughput and webhook answer time: Alertmanager's email notifier against the mailer.

Both sides get the same N alerts, each in its own aggregation group (group_by account,
group_wait 0s), posted to a fresh real Alertmanager, and send to a fresh counting aiosmtpd
server. The clock runs from the first POST to Alertmanager until the N-th message is accepted
by the SMTP server.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import mailer_stack as ms
from bench.mail_counter import CountingSmtpServer, Tally, tally
from bench.proc_stats import cpu_seconds
from stack.process import free_port


@dataclass(frozen=True)
class SideResult:
    name: str
    expected: int
    seconds: float  # first POST to the last expected message (or the timeout)
    complete: bool
    tally: Tally
    smtp_connections: int
    webhook_ms: tuple[float, ...] = ()
    outbox_seconds: tuple[float, ...] = ()  # webhook received -> SMTP accepted, per email
    webhook_span: float = 0.0  # first to last webhook received by the mailer
    cpu_seconds: tuple[tuple[str, float], ...] = ()  # (party, CPU seconds during the run)

    @property
    def rate(self) -> float:
        return self.tally.received / self.seconds if self.seconds else 0.0


def _run(
    name: str,
    am_config: dict,
    workdir: Path,
    smtp: CountingSmtpServer,
    accounts: list[str],
    timeout: float,
    parties: dict[str, int] | None = None,
) -> tuple[float, bool, dict[str, float]]:
    """Posts the alerts and waits for the emails; returns the seconds, whether all arrived,
    and the CPU seconds each party (name -> pid, besides Alertmanager) spent meanwhile."""
    alerts = ms.expired_credential_alerts(accounts, ms.utc_now())
    with ms.alertmanager(am_config, workdir, name) as am:
        pids = {"Alertmanager": am.process.pid, **(parties or {})}  # type: ignore[union-attr]
        before = {party: cpu_seconds(pid) for party, pid in pids.items()}
        in_process = time.process_time()
        started = time.monotonic()
        ms.post_alerts(am.url, alerts)  # type: ignore[attr-defined]
        complete = smtp.wait_for(len(accounts), timeout)
        last = max((a.at for a in smtp.arrivals()), default=time.monotonic())
        seconds = (last if complete else time.monotonic()) - started
        cpu = {party: cpu_seconds(pid) - before[party] for party, pid in pids.items()}
        cpu["SMTP server (+ this driver)"] = time.process_time() - in_process
        # Anything still in flight (a doubled message) gets a moment to show up.
        time.sleep(1.0)
    return seconds, complete, cpu


def alertmanager_email(accounts: list[str], timeout: float) -> SideResult:
    """Side (a): Alertmanager's email_configs straight to the SMTP server."""
    with (
        tempfile.TemporaryDirectory(prefix="sysnotify-bench-am-") as tmp,
        CountingSmtpServer(free_port()) as smtp,
    ):
        seconds, complete, cpu = _run(
            "am-email", ms.alertmanager_email_config(smtp.port), Path(tmp), smtp, accounts, timeout
        )
        arrivals = smtp.arrivals()
        return SideResult(
            "Alertmanager email_configs",
            len(accounts),
            seconds,
            complete,
            tally(arrivals, {ms.recipient_of(a) for a in accounts}),
            smtp.connections(),
            cpu_seconds=tuple(cpu.items()),
        )


def mailer(
    accounts: list[str], timeout: float, workers: int, threads: int, delivery_process: bool = False
) -> SideResult:
    """Side (b): Alertmanager's webhook to the mailer under gunicorn, then SMTP. With
    `delivery_process`, the gunicorn workers only take webhooks (`delivery.enabled: false`)
    and `sysnotify-mailer deliver --watch` sends with `threads` threads; otherwise each
    worker runs `threads` delivery threads (the default deployment)."""
    with (
        tempfile.TemporaryDirectory(prefix="sysnotify-bench-mailer-") as tmp,
        CountingSmtpServer(free_port()) as smtp,
        contextlib.ExitStack() as services,
    ):
        workdir = Path(tmp)
        config = ms.write_mailer_config(
            workdir, smtp.port, {"threads": threads, "enabled": not delivery_process}
        )
        ms.seed_recipients(workdir / "mailer.db", accounts)
        token_file = workdir / "webhook-token"
        token_file.write_text(ms.WEBHOOK_TOKEN)
        service = services.enter_context(ms.mailer_service(workdir, config, workers))
        requests.get(f"{service.url}/readyz", timeout=10)  # type: ignore[attr-defined]
        parties = {"mailer (gunicorn)": service.process.pid}  # type: ignore[union-attr]
        if delivery_process:
            delivery = services.enter_context(ms.delivery_service(workdir, config))
            parties["mailer (delivery process)"] = delivery.process.pid  # type: ignore
        seconds, complete, cpu = _run(
            "am-webhook",
            ms.alertmanager_webhook_config(
                service.port,  # type: ignore
                token_file,
            ),
            workdir,
            smtp,
            accounts,
            timeout,
            parties,
        )
        services.close()
        arrivals = smtp.arrivals()
        rows = ms.outbox_latencies(workdir / "mailer.db")
        latencies = tuple(done - received for _, received, done in rows)
        received = [r for _, r, _ in rows]
        name = (
            f"mailer ({workers} workers taking webhooks + a delivery process with "
            f"{threads} threads)"
            if delivery_process
            else f"mailer ({workers} workers x {threads} delivery threads)"
        )
        return SideResult(
            name,
            len(accounts),
            seconds,
            complete,
            tally(arrivals, {ms.recipient_of(a) for a in accounts}),
            smtp.connections(),
            tuple(ms.webhook_times_ms(workdir / "mailer-access.log")),
            latencies,
            max(received, default=0) - min(received, default=0),
            tuple(cpu.items()),
        )


def describe(result: SideResult) -> list[tuple[str, str]]:
    t = result.tally
    rows = [
        (
            f"{result.name}: emails",
            f"{t.received}/{result.expected}{'' if result.complete else ' (TIMED OUT)'}",
        ),
        ("  seconds, first POST to last email", f"{result.seconds:.2f} s"),
        ("  throughput", f"{result.rate:,.0f} emails/s"),
        ("  SMTP connections", f"{result.smtp_connections}"),
        (
            "  lost / doubled recipients / doubled Message-IDs",
            f"{t.lost_recipients} / {t.doubled_recipients} / {t.doubled_message_ids}",
        ),
    ]
    for party, seconds in result.cpu_seconds:
        rows.append(
            (
                f"  CPU: {party}",
                f"{seconds:.1f} s ({seconds * 1000 / max(1, t.received):.2f} ms per email)",
            )
        )
    if result.cpu_seconds and t.received:
        # Every party shares this machine's cores: the CPU they spend per email together
        # bounds the rate, however well the work overlaps.
        per_email = sum(s for _, s in result.cpu_seconds) / t.received
        cores = os.cpu_count() or 1
        rows.append(
            (
                "  CPU, all parties",
                f"{per_email * 1000:.2f} ms per email: at most "
                f"{cores / per_email:,.0f} emails/s on {cores} cores "
                f"({result.rate * per_email / cores:.0%} of it reached)",
            )
        )
    if result.webhook_ms:
        w = result.webhook_ms
        rows.append(
            (
                "  webhook answers (gunicorn request time)",
                f"{len(w)}: p50 {ms.percentile(w, 0.5):.0f} ms, "
                f"p99 {ms.percentile(w, 0.99):.0f} ms, max {max(w):.0f} ms",
            )
        )
    if result.outbox_seconds:
        o = result.outbox_seconds
        rows.append(
            (
                "  webhooks: first to last received",
                f"{result.webhook_span:.2f} s "
                f"({len(o) / result.webhook_span if result.webhook_span else 0:,.0f}/s)",
            )
        )
        rows.append(
            (
                "  webhook received -> SMTP accepted",
                f"p50 {ms.percentile(o, 0.5) * 1000:.0f} ms, "
                f"p99 {ms.percentile(o, 0.99) * 1000:.0f} ms, "
                f"mean {statistics.fmean(o) * 1000:.0f} ms",
            )
        )
    return rows
