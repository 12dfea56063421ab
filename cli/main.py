"""roadie: the command-line client of Roadie's deploy API: the argument parser and ``main``,
which runs one command and turns every expected failure into one message and an exit code.

Standard library only (argparse, urllib, json), so it runs with any Python 3.11 and no venv:
``python -m cli deploy shop production --ref main --wait``.

Settings: ``--url`` (else ``$ROADIE_URL``, else http://127.0.0.1:8000) and ``--token`` (else
``$ROADIE_TOKEN``, else ``$ROADIE_API_TOKEN``). Both may be given before or after the subcommand.

Exit codes: 0 done; 1 a waited-for deploy ended in any state but ``succeeded``; 2 a usage error
or an HTTP 4xx answer; 3 an HTTP 5xx answer, no answer, or an answer that is not JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from .api import Api
from .commands import (
    Context,
    cmd_cancel,
    cmd_deploy,
    cmd_env,
    cmd_freeze,
    cmd_list,
    cmd_log,
    cmd_rollback,
    cmd_status,
    cmd_unfreeze,
)
from .errors import EXIT_CLIENT, EXIT_INTERRUPTED, EXIT_OK, CliError
from .settings import DEFAULT_URL, resolve_settings

REQUEST_TIMEOUT = 10.0  # seconds, for every request
POLL_SECONDS = 1.0  # --wait's default polling interval


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("the interval must be 0..3600 seconds")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    settings = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the subcommand, a flag overrides; absent, it leaves the global alone
    settings.add_argument(
        "--url", default=argparse.SUPPRESS, help="API base URL (as before the command)"
    )
    settings.add_argument(
        "--token", default=argparse.SUPPRESS, help="API bearer token (as before the command)"
    )

    parser = argparse.ArgumentParser(
        prog="roadie",
        description="Roadie's command-line client: ask for deploys, watch them, read the record."
        " Run it as `python -m cli` (standard library only, no venv needed).",
        epilog="exit codes: 0 ok; 1 a waited-for deploy did not succeed; 2 usage error or "
        "HTTP 4xx; 3 HTTP 5xx or no answer; 130 stopped watching (Ctrl-C). Every request "
        "times out after "
        f"{REQUEST_TIMEOUT:g}s.",
    )
    parser.add_argument(
        "--url",
        default=None,
        help=f"Roadie API base URL (default: $ROADIE_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="API bearer token (default: $ROADIE_TOKEN, else $ROADIE_API_TOKEN)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, handler: Callable[..., int]) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            parents=[settings],
            help=help_text,
            description=help_text[:1].upper() + help_text[1:] + ".",
        )
        sub.set_defaults(handler=handler)
        return sub

    deploy = command(
        "deploy", "ask for a deploy of an app to an environment (POST /deploys)", cmd_deploy
    )
    deploy.add_argument("app", metavar="APP", help="the app, e.g. shop")
    deploy.add_argument("environment", metavar="ENV", help="its environment, e.g. production")
    what = deploy.add_mutually_exclusive_group(required=True)
    what.add_argument("--sha", help="the 40-character commit SHA to deploy")
    what.add_argument("--ref", help="a branch or tag, resolved to a SHA by the server")
    _request_flags(deploy, "the deploy record", "deploy")

    status = command("status", "show one deploy (GET /deploys/{id})", cmd_status)
    status.add_argument("deploy_id", metavar="DEPLOY_ID")
    status.add_argument("--json", action="store_true", help="print the raw JSON record")

    listing = command("list", "list deploys, newest first (GET /deploys)", cmd_list)
    listing.add_argument("--app", help="only this app")
    listing.add_argument("--env", dest="environment", metavar="ENV", help="only this environment")
    listing.add_argument("--status", help="only this status (succeeded, failed, running, ...)")
    listing.add_argument(
        "--limit", type=_positive, metavar="N", help="deploys per page (server default 25)"
    )
    listing.add_argument("--all", action="store_true", help="follow next_cursor to the end")
    listing.add_argument("--json", action="store_true", help="print the deploys as JSON")

    log = command(
        "log", "print each host's whole output of a deploy (GET /deploys/{id}/log)", cmd_log
    )
    log.add_argument("deploy_id", metavar="DEPLOY_ID")
    log.add_argument("--host", help="only this host (its instance id)")
    log.add_argument("--phase", help="only this phase: a step (batch-2.switch) or a command")
    log.add_argument("--json", action="store_true", help="print the output blocks as JSON")

    cancel = command("cancel", "cancel a queued deploy or stop a running one", cmd_cancel)
    cancel.add_argument("deploy_id", metavar="DEPLOY_ID")

    rollback = command(
        "rollback", "deploy the release that was live before DEPLOY_ID", cmd_rollback
    )
    rollback.add_argument("deploy_id", metavar="DEPLOY_ID")
    _request_flags(rollback, "the rollback's deploy record", "roll back")

    freeze = command("freeze", "stop deploys to an environment until unfrozen", cmd_freeze)
    freeze.add_argument("app", metavar="APP")
    freeze.add_argument("environment", metavar="ENV")
    freeze.add_argument("--reason", required=True, help="why (required; audited)")

    unfreeze = command("unfreeze", "lift an environment's freeze", cmd_unfreeze)
    unfreeze.add_argument("app", metavar="APP")
    unfreeze.add_argument("environment", metavar="ENV")

    env = command("env", "show an environment: live release, lock, queue, freeze, audit", cmd_env)
    env.add_argument("app", metavar="APP")
    env.add_argument("environment", metavar="ENV")
    env.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def _request_flags(sub: argparse.ArgumentParser, record: str, verb: str) -> None:
    """The flags of a command that asks for a deploy: ``--reason``, ``--force``, ``--wait``."""
    sub.add_argument("--reason", help=f"why (recorded in {record})")
    sub.add_argument(
        "--force", action="store_true", help=f"{verb} even if the environment is frozen"
    )
    sub.add_argument(
        "--wait",
        action="store_true",
        help="follow the deploy until it ends; exit 0 only if it succeeded, else 1",
    )
    sub.add_argument(
        "--interval",
        type=_interval,
        default=POLL_SECONDS,
        metavar="SECONDS",
        help=f"with --wait: seconds between polls (default {POLL_SECONDS:g})",
    )


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run one command; return its exit code. Expected failures print one message, no traceback."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_CLIENT
    try:
        settings = resolve_settings(
            args.url, args.token, os.environ if environ is None else environ
        )
        api = Api(settings.url, settings.token, timeout=REQUEST_TIMEOUT)
        ctx = Context(api=api, out=out, err=err, sleep=sleep)
        handler: Callable[[Context, argparse.Namespace], int] = args.handler
        return handler(ctx, args)
    except CliError as exc:
        print(f"roadie: error: {exc}", file=err, flush=True)
        return exc.exit_code


def run() -> int:
    """``python -m cli``: ``main`` plus a quiet Ctrl-C and a closed pipe (``| head``)."""
    try:
        return main()
    except KeyboardInterrupt:
        print("\nroadie: interrupted (a deploy keeps running on the server)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
