"""Where a mailer email's time goes: each stage timed in one process, one email at a time.

The real code runs on a fresh store: the webhook view through Flask's test client (no
gunicorn, no HTTP parsing), then the delivery steps one by one as DeliveryWorker runs them:
claiming (in batches), rebuilding and rendering the request, building the MIME message,
sending it over one SMTP connection to a counting aiosmtpd server in another process, and
the "sent" transaction. Times are wall-clock per email with nothing else running in this
process, so they are close to the CPU each stage costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench import mailer_stack as ms
from bench.mailer_memory import webhook_body
from stack.process import free_port
from sysnotify.mailer import counters
from sysnotify.mailer.config import load_config
from sysnotify.mailer.delivery.message import build_message
from sysnotify.mailer.delivery.queue import tracking_headers
from sysnotify.mailer.stored_request import email_request
from sysnotify.mailer.web.app import create_app, mailer_of

T = TypeVar("T")


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, step: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = step()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started
        return result


def measure(emails: int) -> list[tuple[str, float]]:
    """(stage, milliseconds per email) for `emails` notifications of one email each."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.mail_counter", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        return _measure(emails, port)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)


def _measure(emails: int, smtp_port: int) -> list[tuple[str, float]]:
    timer = _Timer()
    accounts = [ms.account_id(n) for n in range(1, emails + 1)]
    with tempfile.TemporaryDirectory(prefix="sysnotify-bench-stages-") as tmp:
        workdir = Path(tmp)
        config_path = ms.write_mailer_config(workdir, smtp_port)
        ms.seed_recipients(workdir / "mailer.db", accounts)
        config = load_config(
            str(config_path),
            env={
                "SYSNOTIFY_WEBHOOK_TOKEN": ms.WEBHOOK_TOKEN,
                "SYSNOTIFY_ADMIN_TOKEN": ms.ADMIN_TOKEN,
            },
        )
        app = create_app(config, start_delivery=False)
        mailer = mailer_of(app)
        client = app.test_client()
        headers = {
            "Authorization": f"Bearer {ms.WEBHOOK_TOKEN}",
            "Content-Type": "application/json",
        }
        now = ms.utc_now().isoformat()
        bodies = [webhook_body(account, now) for account in accounts]

        def post(body: bytes) -> Callable[[], Any]:
            return lambda: client.post("/alertmanager/webhook", data=body, headers=headers)

        for body in bodies:
            response = timer("webhook: view, decide, durable commit (no HTTP)", post(body))
            assert response.status_code == 200, response.get_data(as_text=True)
        worker = mailer.workers[0]
        mailer.store.tune_for_delivery()  # as a delivery thread does
        queue, batch = worker.queue, config.delivery.claim_batch
        sent = 0
        while rows := timer(
            f"claim (batches of {batch})", lambda: queue.claim_batch(time.time(), batch)
        ):
            for row in rows:
                sent += _deliver(timer, worker, row)
        worker.sender.close()
        mailer.stop_delivery()
        mailer.store.close()
    assert sent == emails, f"sent {sent} of {emails}"
    stages = [(stage, seconds * 1000 / emails) for stage, seconds in timer.seconds.items()]
    return stages + [("total", sum(ms_ for _, ms_ in stages))]


def _deliver(timer: _Timer, worker: Any, row: Any) -> int:
    request = timer(
        "rebuild request from the row", lambda: email_request(row.request, worker.catalog)
    )
    rendered = timer(
        "render: Jinja2, text wrap, css-inline", lambda: worker.renderer.render(request)
    )
    message = timer(
        "build MIME message",
        lambda: build_message(
            rendered,
            worker.brand,
            row.recipient,
            row.message_id,
            row.thread_ids,
            datetime.now(UTC),
            tracking_headers(row),
        ),
    )
    timer(
        "SMTP: serialise + MAIL/RCPT/DATA round trips",
        lambda: worker.sender.send(message, worker.brand.sender_address, row.recipient),
    )
    return int(
        timer(
            "mark sent (own commit, no fsync)",
            lambda: worker.queue.mark_sent(row, time.time(), counters.LATENCY_BUCKETS),
        )
    )


def describe(stages: list[tuple[str, float]]) -> list[tuple[str, str]]:
    return [(f"  {stage}", f"{value:.2f} ms per email") for stage, value in stages]


if __name__ == "__main__":  # python -m bench.mailer_stages [EMAILS]
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 300), indent=1))
