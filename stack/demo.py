"""`make demo`: the whole stack on loopback, with a story that makes every notification fire.

Starts the exporter, Prometheus, Alertmanager, the mailer under gunicorn and a local SMTP sink
(with an inbox page), derived from the shipped configuration with timings shortened so the
story plays in a few minutes. Registers recipients, silences one account as an operator would
for site maintenance, posts the troubled facts (stack/scenario.py), reports what fires and which
emails arrive, then fixes what has a recovery email and reports those. Ctrl-C stops everything.

    python -m stack.demo [--workdir run/demo] [--background-accounts 20] [--exit-when-done]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from stack import scenario
from stack.local import BIN, LocalStack, Ports
from stack.process import free_port

PREFERRED = {
    "exporter": 9730,
    "mailer": 9731,
    "prometheus": 9090,
    "alertmanager": 9093,
    "smtp": 2525,
    "inbox": 8025,
}
# Emails the story sends before and after its fixes: one per recipient of each notification.
EXPECTED_PROBLEMS = sum(
    len(scenario.expected_recipients(acct, category))
    for (acct, _), category in scenario.PROBLEMS.items()
)
EXPECTED_RECOVERIES = sum(
    len(scenario.expected_recipients(acct, category))
    for (acct, _), category in scenario.RECOVERIES.items()
)


def _port(preferred: int) -> int:
    """The preferred port when it is free, so the printed URLs are familiar; else any."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def say(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def banner(stack: LocalStack) -> None:
    mailer = stack.url("mailer")
    print(
        f"""
sysnotify demo is running (working directory: {stack.workdir})

  inbox (emails received)   {stack.url("inbox")}/
  email previews            {mailer}/preview/
  Prometheus alerts         {stack.url("prometheus")}/alerts
  Alertmanager              {stack.url("alertmanager")}/#/alerts
  exporter metrics          {stack.url("exporter")}/metrics
  mailer metrics            {mailer}/metrics
  .eml files                {stack.maildir}
  logs                      {stack.workdir}/*.log

Tokens for trying the APIs yourself:
  ingest (exporter)  {stack.tokens.ingest}
  admin (mailer)     {stack.tokens.admin}
Press Ctrl-C to stop every process.
""",
        flush=True,
    )


def post_background(stack: LocalStack, accounts: int) -> None:
    """Simulated accounts without recipients: they fill the dashboards; their alerts are
    kept by the mailer as undeliverable (visible at /api/v1/undeliverable)."""
    if accounts <= 0:
        return
    subprocess.run(
        [
            str(BIN / "sysnotify-exporter"),
            "simulate",
            "--accounts",
            str(accounts),
            "--seed",
            "7",
            "--post",
            stack.url("exporter"),
            "--token",
            stack.tokens.ingest,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    say(f"posted {accounts} simulated background accounts")


class Reporter:
    """Prints each new firing alert and each new email once."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.alerts_seen: set[tuple[str, ...]] = set()
        self.mails_seen = 0

    def poll(self) -> None:
        for alert in self.stack.firing_alerts():
            labels = alert["labels"]
            key = (
                labels["alertname"],
                labels.get("account", ""),
                labels.get("system", "") or labels.get("platform", ""),
                alert["state"],
            )
            if key not in self.alerts_seen:
                self.alerts_seen.add(key)
                where = " ".join(k for k in key[1:3] if k)
                say(f"alert {key[0]} {where} is {alert['state']}")
        mails = self.stack.mails()
        for mail in mails[self.mails_seen :]:
            say(f"email to {', '.join(mail.rcpt_tos)}: {mail.subject}")
        self.mails_seen = len(mails)

    def customer_mails(self, phase: str) -> int:
        return sum(1 for m in self.stack.customer_mails() if m.header("X-Sysnotify-Phase") == phase)


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    ports = Ports(**{name: _port(port) for name, port in PREFERRED.items()})
    stack = LocalStack(workdir, ports=ports, serve_inbox=True)
    say("starting exporter, SMTP sink, mailer, Alertmanager and Prometheus ...")
    with stack:
        banner(stack)
        stack.add_recipients(scenario.ACCOUNTS)
        say(f"registered recipients of {len(scenario.ACCOUNTS)} accounts")
        stack.amtool(
            "silence",
            "add",
            f"account={scenario.SILENCED_ACCOUNT}",
            "--comment=site maintenance",
            "--author=demo",
            "--duration=3m",
        )
        say(f"silenced {scenario.SILENCED_ACCOUNT} for 3 minutes (site maintenance)")
        post_background(stack, args.background_accounts)
        stack.post_events(scenario.trouble_events(datetime.now(UTC)))
        say(
            "posted the story's facts: expiring and failing credentials, API limits, a drop in "
            "web visits, pending opt-outs, a stalled sync"
        )
        reporter = Reporter(stack)
        deadline = time.monotonic() + args.timeout
        while reporter.customer_mails("problem") < EXPECTED_PROBLEMS:
            reporter.poll()
            if time.monotonic() > deadline:
                say("not every problem email arrived in time; see the logs")
                return 1
            time.sleep(2)
        reporter.poll()
        say("every problem email arrived; now fixing Contoso's Marketo login and Umbrella's sync")
        stack.post_events(scenario.recovery_events(datetime.now(UTC)))
        while reporter.customer_mails("recovery") < EXPECTED_RECOVERIES:
            reporter.poll()
            if time.monotonic() > deadline:
                say("the recovery emails did not arrive in time; see the logs")
                return 1
            time.sleep(2)
        reporter.poll()
        say(
            "recovery emails arrived. The silence on Stark ends within 3 minutes, releasing "
            "its email."
        )
        if args.exit_when_done:
            return 0
        try:
            while True:
                time.sleep(2)
                reporter.poll()
        except KeyboardInterrupt:
            say("stopping ...")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="run/demo", help="where state, logs and mail go")
    parser.add_argument(
        "--background-accounts",
        type=int,
        default=20,
        help="simulated accounts without recipients (default 20)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="seconds to wait for the story's emails (default 600)",
    )
    parser.add_argument(
        "--exit-when-done", action="store_true", help="stop once the recovery emails arrived"
    )
    try:
        return run(parser.parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
