"""`sysnotify-mailer`: the recipient registry, a delivery pass, and a convenience `serve`.

    sysnotify-mailer recipients list ACCOUNT
    sysnotify-mailer recipients add ACCOUNT ADDRESS --categories credentials,sync
    sysnotify-mailer recipients remove ACCOUNT ADDRESS
    sysnotify-mailer recipients set-primary ACCOUNT ADDRESS
    sysnotify-mailer integration disconnect|connect ACCOUNT SYSTEM
    sysnotify-mailer account offboard|onboard|status ACCOUNT
    sysnotify-mailer deliver            # send what is due now, then exit
    sysnotify-mailer deliver --watch    # keep delivering until SIGTERM (a delivery process)
    sysnotify-mailer serve [--listen 127.0.0.1:9731] [--workers 2]
    sysnotify-mailer check-config --alertmanager alertmanager.yml [--alertmanager-retention 200h]

Every command reads the same config (--config or $SYSNOTIFY_MAILER_CONFIG) and works on
the same store as the running service. Errors go to stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sysnotify import exits
from sysnotify.gunicorn import mailer_argv
from sysnotify.mailer import alertmanager_config, crosscheck
from sysnotify.mailer.config import CONFIG_ENV, ConfigError, MailerConfig, load_config
from sysnotify.mailer.lifecycle import Lifecycle, LifecycleError
from sysnotify.mailer.recipients import RecipientError, Registry
from sysnotify.mailer.store import Store, StoreError
from sysnotify.mailer.store.backends import open_store

if TYPE_CHECKING:
    from sysnotify.mailer.build import Mailer

DEFAULT_LISTEN = "127.0.0.1:9731"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sysnotify-mailer", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help=f"mailer YAML config (default: ${CONFIG_ENV})")
    commands = parser.add_subparsers(dest="command", required=True)

    recipients = commands.add_parser("recipients", help="manage who receives notifications")
    actions = recipients.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list an account's recipients")
    listing.add_argument("account")
    add = actions.add_parser("add", help="add a recipient (or change its categories)")
    add.add_argument("account")
    add.add_argument("address")
    add.add_argument(
        "--categories",
        required=True,
        help="comma-separated: credentials,api_limits,web_visits,privacy,sync",
    )
    remove = actions.add_parser("remove", help="remove a recipient (not the primary)")
    remove.add_argument("account")
    remove.add_argument("address")
    primary = actions.add_parser("set-primary", help="make ADDRESS the primary administrator")
    primary.add_argument("account")
    primary.add_argument("address")

    integration = commands.add_parser(
        "integration", help="an integration the customer disconnected or connected again"
    )
    changes = integration.add_subparsers(dest="action", required=True)
    for action, text in (
        ("disconnect", "end its episodes silently and withdraw its unsent emails"),
        ("connect", "mail problems that start from now on again"),
    ):
        command = changes.add_parser(action, help=text)
        command.add_argument("account")
        command.add_argument("system", help="salesforce, eloqua, marketo, hubspot or pardot")
    account = commands.add_parser("account", help="an account that left or joined the platform")
    changes = account.add_subparsers(dest="action", required=True)
    for action, text in (
        ("offboard", "no email of any kind for it from now on; its recipients are removed"),
        ("onboard", "mail problems that start from now on to the recipients registered again"),
        ("status", "whether it is offboarded, and its disconnected integrations"),
    ):
        changes.add_parser(action, help=text).add_argument("account")

    deliver = commands.add_parser("deliver", help="send every email that is due now, then exit")
    deliver.add_argument(
        "--watch",
        action="store_true",
        help="keep delivering with delivery.threads threads until SIGTERM or Ctrl-C: the "
        "delivery process for gunicorn workers configured with delivery.enabled: false",
    )

    serve = commands.add_parser("serve", help="run the mailer under gunicorn")
    serve.add_argument("--listen", default=DEFAULT_LISTEN, help=f"default: {DEFAULT_LISTEN}")
    serve.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: 2)")

    check = commands.add_parser(
        "check-config",
        help="check the mailer config against Alertmanager's: duplicate windows against "
        "repeat intervals, send_resolved, max_alerts, retention",
    )
    check.add_argument(
        "--alertmanager", required=True, metavar="FILE", help="Alertmanager's YAML config"
    )
    check.add_argument(
        "--alertmanager-retention",
        default=crosscheck.DEFAULT_DATA_RETENTION,
        type=_flag_duration,
        metavar="DURATION",
        help="the --data.retention Alertmanager runs with: a flag of Alertmanager, not in its "
        f"file (default: {crosscheck.DEFAULT_DATA_RETENTION}, Alertmanager's own default)",
    )
    return parser


def _flag_duration(text: str) -> float:
    try:
        return alertmanager_config.parse_flag_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _config(path: str | None, require_webhook_token: bool) -> MailerConfig:
    return load_config(path, require_webhook_token=require_webhook_token)


@contextmanager
def _store(config: MailerConfig) -> Iterator[Store]:
    """The config's store, migrated, for one command."""
    store = open_store(config.store)
    try:
        store.migrate()
        yield store
    finally:
        store.close()


def _recipients(args: argparse.Namespace, config: MailerConfig) -> int:
    with _store(config) as store:
        registry = Registry(store)
        if args.action == "list":
            for recipient in registry.list(args.account):
                categories = (
                    "all" if recipient.role == "primary" else ",".join(recipient.categories)
                )
                print(f"{recipient.address}\t{recipient.role}\t{categories}")
        elif args.action == "add":
            chosen = [c.strip() for c in args.categories.split(",") if c.strip()]
            added = registry.add(args.account, args.address, chosen)
            print(f"{added.address} receives {', '.join(added.categories)} for {args.account}")
        elif args.action == "remove":
            registry.remove(args.account, args.address)
            print(f"{args.address} removed from {args.account}")
        elif args.action == "set-primary":
            primary = registry.set_primary(args.account, args.address)
            print(f"{primary.address} is now the primary administrator of {args.account}")
    return exits.OK


def _lifecycle(args: argparse.Namespace, config: MailerConfig) -> int:
    with _store(config) as store:
        lifecycle = Lifecycle(store)
        if args.action == "status":
            status = lifecycle.status(args.account)
            print(f"{args.account}\t{'offboarded' if status['offboarded'] else 'active'}")
            for integration in status["disconnected"]:
                print(f"{integration['system']}\tdisconnected")
            return exits.OK
        if args.command == "integration":
            command = lifecycle.disconnect if args.action == "disconnect" else lifecycle.connect
            result = command(args.account, args.system)
        else:
            result = (lifecycle.offboard if args.action == "offboard" else lifecycle.onboard)(
                args.account
            )
    subject = args.account if result.system is None else f"{result.system} of {args.account}"
    print(
        f"{subject}: {result.state}{'' if result.changed else ' already'}; "
        f"{result.episodes_ended} episode(s) ended, {result.emails_cancelled} email(s) "
        f"cancelled, {result.emails_shortened} shortened, "
        f"{result.recipients_removed} recipient(s) removed"
    )
    return exits.OK


def _deliver(config: MailerConfig, watch: bool) -> int:
    from sysnotify.mailer.build import build_mailer, freeze_startup_objects

    mailer = build_mailer(config)
    if watch:
        freeze_startup_objects()
        return _watch(mailer)
    totals: dict[str, int] = {}
    for worker in mailer.workers[:1]:
        totals = worker.drain()
        worker.sender.close()
    print(", ".join(f"{k}: {v}" for k, v in sorted(totals.items())) or "nothing due")
    return 0


def _watch(mailer: Mailer) -> int:
    """Runs the delivery threads until SIGTERM or SIGINT, woken by webhooks
    (sysnotify.mailer.delivery.wakeup).

    Webhooks are answered by gunicorn workers whose config says `delivery.enabled: false`;
    this process takes the rendering and SMTP work off them, so a webhook never waits behind
    a delivery for the interpreter lock. On a stop signal the threads finish the email in
    hand and give their other claimed rows back.
    """
    from sysnotify.mailer.delivery.wakeup import WakeListener

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
    )
    log = logging.getLogger("gunicorn.error")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    listener = WakeListener(mailer.wake_socket, mailer.wake_delivery)
    mailer.start_delivery()
    listening = listener.start()
    log.info(
        "delivering with %d thread(s); %s",
        len(mailer.workers),
        f"woken through {mailer.wake_socket}" if listening else "polling only (no wake-up socket)",
    )
    try:
        stop.wait()
    finally:
        listener.stop()
        mailer.stop_delivery()
        mailer.store.close()
    log.info("delivery stopped")
    return 0


def _check_config(args: argparse.Namespace, config: MailerConfig) -> int:
    alertmanager = alertmanager_config.read(Path(args.alertmanager))
    report = crosscheck.check(alertmanager, config.dedup, args.alertmanager_retention)
    if report.problems:
        print(
            f"sysnotify-mailer: {args.alertmanager} and the mailer config disagree:",
            *(f"  - {problem}" for problem in report.problems),
            sep="\n",
            file=sys.stderr,
        )
        return exits.FAILED
    print(f"{args.alertmanager} agrees with the mailer config:")
    print(*(f"  {line}" for line in report.summary), sep="\n")
    return exits.OK


def _serve(args: argparse.Namespace) -> int:
    argv = mailer_argv(args.listen, args.workers, ("--access-logfile", "-"))
    env = dict(os.environ)
    if args.config:
        env[CONFIG_ENV] = os.path.abspath(args.config)
    os.execve(argv[0], argv, env)
    return exits.OK  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sysnotify-mailer`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        # Managing recipients and lifecycles and checking configs need no webhook secret.
        config = _config(
            args.config,
            require_webhook_token=args.command
            not in ("recipients", "integration", "account", "check-config"),
        )
        if args.command == "recipients":
            return _recipients(args, config)
        if args.command in ("integration", "account"):
            return _lifecycle(args, config)
        if args.command == "check-config":
            return _check_config(args, config)
        return _deliver(config, args.watch)
    except (ConfigError, alertmanager_config.AlertmanagerConfigError) as error:
        print(f"sysnotify-mailer: {error}", file=sys.stderr)
        return exits.USAGE
    except (RecipientError, LifecycleError, StoreError) as error:
        print(f"sysnotify-mailer: {error}", file=sys.stderr)
        return exits.FAILED


if __name__ == "__main__":
    sys.exit(main())
