"""roadie: the command-line client of Roadie's deploy API.

Standard library only (argparse, urllib, json), so it runs with any Python 3.11 and no venv:
``python -m cli deploy shop production --ref main --wait``.

Settings: ``--url`` (else ``$ROADIE_URL``, else http://127.0.0.1:8000) and ``--token`` (else
``$ROADIE_TOKEN``, else ``$ROADIE_API_TOKEN``). Both may be given before or after the subcommand.

Exit codes: 0 done; 1 a waited-for deploy ended in any state but ``succeeded``; 2 a usage error
or an HTTP 4xx answer; 3 an HTTP 5xx answer, no answer, or an answer that is not JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:8000"
REQUEST_TIMEOUT = 10.0  # seconds, for every request
POLL_SECONDS = 1.0  # --wait's default polling interval
TERMINAL = frozenset(
    {"succeeded", "failed", "errored", "timed_out", "cancelled", "rolled_back", "superseded"}
)
EXIT_OK, EXIT_DEPLOY_FAILED, EXIT_CLIENT, EXIT_SERVER = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class CliError(Exception):
    """An expected failure: printed as one message, no traceback, with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- HTTP -------------------------------------------------------------------------------------


class Api:
    """A tiny JSON client: bearer token, timeouts, and Roadie's error bodies turned into
    ``CliError`` (exit 2 for 4xx, 3 for 5xx and for no answer)."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"the API URL {url!r} is not an http:// or https:// URL", EXIT_CLIENT)
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        # The local stack never sits behind a proxy; a stray http_proxy must not break it.
        handlers = [urllib.request.ProxyHandler({})] if parsed.hostname in LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """``(status, decoded JSON)`` of a 2xx answer; raises ``CliError`` otherwise."""
        target = self.url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            target += "?" + urllib.parse.urlencode(params)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(target, data=data, headers=headers, method=method)
        where = f"{method} {self.url}{path}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, where) from None
        except TimeoutError:
            raise CliError(
                f"no answer from Roadie within {self.timeout:g}s ({where})", EXIT_SERVER
            ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise CliError(
                    f"no answer from Roadie within {self.timeout:g}s ({where})", EXIT_SERVER
                ) from None
            raise CliError(f"cannot reach Roadie at {self.url}: {reason}", EXIT_SERVER) from None
        except (OSError, http.client.HTTPException) as exc:
            raise CliError(f"connection to Roadie failed ({where}): {exc!r}", EXIT_SERVER) from None
        if not raw.strip():
            return status, {}
        try:
            return status, json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise CliError(
                f"Roadie answered {where} with HTTP {status} but not JSON: {_snippet(raw)}",
                EXIT_SERVER,
            ) from None


def _http_error(exc: urllib.error.HTTPError, where: str) -> CliError:
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    finally:
        exc.close()
    code = EXIT_CLIENT if 400 <= exc.code < 500 else EXIT_SERVER
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        text = f"{body['message']} (HTTP {exc.code}"
        text += f" {body['error']})" if body.get("error") else ")"
        if body.get("deploy_id"):
            text += f"\n  deploy: {body['deploy_id']}"
        return CliError(text, code)
    detail = _snippet(raw) or exc.reason
    return CliError(f"HTTP {exc.code} from {where}: {detail}", code)


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


def _seg(value: str) -> str:
    """One URL path segment."""
    return urllib.parse.quote(value, safe="")


# --- settings and arguments ---------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    url: str
    token: str


def resolve_settings(url: str | None, token: str | None, environ: Mapping[str, str]) -> Settings:
    """Flags first, then ``ROADIE_URL`` / ``ROADIE_TOKEN`` (then ``ROADIE_API_TOKEN``)."""
    url = url or environ.get("ROADIE_URL") or DEFAULT_URL
    token = token or environ.get("ROADIE_TOKEN") or environ.get("ROADIE_API_TOKEN")
    if not token:
        raise CliError(
            "no API token: pass --token or set ROADIE_TOKEN (or ROADIE_API_TOKEN)", EXIT_CLIENT
        )
    return Settings(url=url, token=token)


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
    deploy.add_argument("--reason", help="why (recorded in the deploy record)")
    deploy.add_argument(
        "--force", action="store_true", help="deploy even if the environment is frozen"
    )
    _wait_flags(deploy)

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

    cancel = command("cancel", "cancel a queued deploy or stop a running one", cmd_cancel)
    cancel.add_argument("deploy_id", metavar="DEPLOY_ID")

    rollback = command(
        "rollback", "deploy the release that was live before DEPLOY_ID", cmd_rollback
    )
    rollback.add_argument("deploy_id", metavar="DEPLOY_ID")
    rollback.add_argument("--reason", help="why (recorded in the rollback's deploy record)")
    rollback.add_argument(
        "--force", action="store_true", help="roll back even if the environment is frozen"
    )
    _wait_flags(rollback)

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


def _wait_flags(sub: argparse.ArgumentParser) -> None:
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


# --- commands --------------------------------------------------------------------------------


@dataclass
class Context:
    api: Api
    out: TextIO
    err: TextIO
    sleep: Callable[[float], None] = time.sleep

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)


def cmd_deploy(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"app": args.app, "environment": args.environment}
    if args.sha is not None:
        body["sha"] = args.sha
    else:
        body["ref"] = args.ref
    if args.reason is not None:
        body["reason"] = args.reason
    if args.force:
        body["force"] = True
    _, summary = ctx.api.call("POST", "/deploys", body)
    return _accepted(ctx, summary, args)


def cmd_rollback(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.reason is not None:
        body["reason"] = args.reason
    if args.force:
        body["force"] = True
    _, summary = ctx.api.call("POST", f"/deploys/{_seg(args.deploy_id)}/rollback", body)
    return _accepted(ctx, summary, args)


def _accepted(ctx: Context, summary: Mapping[str, Any], args: argparse.Namespace) -> int:
    deploy_id = str(summary.get("deploy_id"))
    line = (
        f"{deploy_id} {summary.get('status')} (phase {summary.get('phase')}): "
        f"{summary.get('app')}/{summary.get('environment')} {_short(summary.get('sha'))}"
    )
    if summary.get("ref"):
        line += f" ref {summary['ref']}"
    ctx.say(line)
    if summary.get("existing"):
        ctx.say("  this SHA is already deploying or queued there: that deploy is the answer")
    elif summary.get("status") == "queued":
        ctx.say("  queued: the environment is busy or frozen; it starts when the lock is free")
    if summary.get("rollback_of"):
        ctx.say(f"  {summary.get('reason') or 'rollback of ' + str(summary['rollback_of'])}")
    if not args.wait:
        return EXIT_OK
    return watch(ctx, deploy_id, args.interval)


def watch(ctx: Context, deploy_id: str, interval: float) -> int:
    """Poll until the deploy ends, printing phase changes and host step results as they land."""
    try:
        return _watch(ctx, deploy_id, interval)
    except KeyboardInterrupt:
        raise CliError(
            f"stopped watching {deploy_id}; it goes on (see: status {deploy_id})",
            EXIT_INTERRUPTED,
        ) from None


def _watch(ctx: Context, deploy_id: str, interval: float) -> int:
    start = time.monotonic()
    status = phase = None
    seen: set[tuple[str, int, str]] = set()
    path = f"/deploys/{_seg(deploy_id)}"
    while True:
        _, record = ctx.api.call("GET", path)
        stamp = f"[{time.monotonic() - start:6.1f}s]"
        if record.get("status") != status and record.get("status") not in TERMINAL:
            status = record.get("status")
            ctx.say(f"{stamp} status {status}")
        if record.get("phase") != phase:
            phase = record.get("phase")
            running = _running_step(record)
            ctx.say(f"{stamp} phase {phase}" + (f" ({running})" if running else ""))
        for host, step in _landed(record, seen):
            exit_code = step.get("exit_code")
            line = (
                f"{stamp}   {host.get('name') or host.get('instance_id')!s:<20}"
                f" {step.get('command', '?'):<13}"
                f" {step.get('status', '?'):<10} exit {'-' if exit_code is None else exit_code}"
            )
            if step.get("detail"):
                line += f": {step['detail']}"
            ctx.say(line)
        if record.get("status") in TERMINAL:
            return _finished(ctx, record, stamp)
        ctx.sleep(interval)


def _landed(
    record: Mapping[str, Any], seen: set[tuple[str, int, str]]
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Host step results not printed yet (pending steps have not landed), in step order."""
    new = []
    for order, host in enumerate(_list(record.get("hosts"))):
        for step in _list(host.get("steps")):
            key = (
                str(host.get("instance_id")),
                int(step.get("step") or 0),
                str(step.get("status")),
            )
            if step.get("status") in (None, "pending") or key in seen:
                continue
            seen.add(key)
            new.append((key[1], order, host, step))
    new.sort(key=lambda item: (item[0], item[1]))
    return [(host, step) for _, _, host, step in new]


def _finished(ctx: Context, record: Mapping[str, Any], stamp: str) -> int:
    status = record.get("status")
    took = record.get("duration_s")
    line = f"{stamp} {record.get('deploy_id')} {status}"
    if isinstance(took, int | float):
        line += f" in {_duration(took)}"
    ctx.say(line)
    if status == "succeeded":
        return EXIT_OK
    for text in _error_lines(record):
        ctx.say(text)
    return EXIT_DEPLOY_FAILED


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    _, record = ctx.api.call("GET", f"/deploys/{_seg(args.deploy_id)}")
    if args.json:
        ctx.say(json.dumps(record, indent=2))
        return EXIT_OK
    for line in describe_deploy(record):
        ctx.say(line)
    return EXIT_OK


def describe_deploy(d: Mapping[str, Any]) -> list[str]:
    """A readable summary of ``GET /deploys/{id}``."""
    lines = [
        f"deploy {d.get('deploy_id')}  {d.get('app')}/{d.get('environment')}  "
        f"{d.get('status')} (phase {d.get('phase')})"
    ]
    what = f"sha {d.get('sha')}"
    if d.get("ref"):
        what += f" (ref {d['ref']})"
    what += f", previously {_short(d.get('previous_sha'))}"
    if d.get("rollback_of"):
        what += f", rollback of {d['rollback_of']}"
    if d.get("force"):
        what += ", forced"
    lines.append(f"  what      {what}")
    who = f"{d.get('requested_by')} via {d.get('requested_via')}"
    if d.get("reason"):
        who += f": {d['reason']}"
    lines.append(f"  who       {who}")
    when = f"created {d.get('created_at')}"
    when += f", started {d.get('started_at') or '-'}"
    when += f", finished {d.get('finished_at') or '-'}"
    lines.append(f"  when      {when}")
    took = d.get("duration_s")
    if isinstance(took, int | float):
        lines.append(f"  duration  {_duration(took)}")
    elif d.get("status") not in TERMINAL:
        lines.append("  duration  (still going)")
    if d.get("cancel_requested_by"):
        lines.append(f"  cancel    requested by {d['cancel_requested_by']}")
    if d.get("superseded_by"):
        lines.append(f"  replaced  superseded by {d['superseded_by']}")
    phases = d.get("phases")
    if isinstance(phases, dict) and phases:
        lines.append("phases")
        for label, raw in phases.items():
            entry = raw if isinstance(raw, dict) else {}
            took = entry.get("duration_s")
            took_text = _duration(took) if isinstance(took, int | float) else "-"
            lines.append(f"  {label:<20} {entry.get('status', '-')!s:<11} {took_text}")
    hosts = _list(d.get("hosts"))
    if hosts:
        lines.append("hosts")
        for host in hosts:
            steps = _list(host.get("steps"))
            batch = host.get("batch")
            label = f"  {_host_label(host):<40} batch {batch if batch is not None else '-'}"
            if not steps:
                lines.append(f"{label}  no steps yet")
                continue
            last = steps[-1]
            exit_code = last.get("exit_code")
            text = (
                f"{label}  {last.get('command')} {last.get('status')}"
                f" exit {'-' if exit_code is None else exit_code}"
            )
            if last.get("detail"):
                text += f": {last['detail']}"
            lines.append(text)
    lines.extend(_error_lines(d))
    return lines


def _error_lines(d: Mapping[str, Any]) -> list[str]:
    error = d.get("error")
    if not isinstance(error, dict) or not error:
        return []
    names = {
        str(h.get("instance_id")): str(h.get("name") or "")
        for h in _list(d.get("hosts"))
        if h.get("instance_id")
    }
    lines = ["error     " + _error_text(error, names)]
    stderr = _last_line(error.get("stderr_tail"))
    if stderr:
        lines.append(f"  stderr    {stderr}")
    if error.get("message"):
        lines.append(f"  message   {error['message']}")
    others = [str(h) for h in _list_any(error.get("hosts")) if h != error.get("host")]
    if others:
        lines.append("  also      " + ", ".join(_name(h, names) for h in others))
    for key, title in (("rollback", "rollback"), ("earlier", "earlier")):
        nested = error.get(key)
        if isinstance(nested, dict) and nested:
            text = _error_text(nested, names)
            line = _last_line(nested.get("stderr_tail")) or nested.get("message")
            lines.append(f"  {title:<9} {text}" + (f": {line}" if line else ""))
    return lines


def _error_text(error: Mapping[str, Any], names: Mapping[str, str]) -> str:
    text = str(error.get("kind") or "error")
    if error.get("phase"):
        text += f" in {error['phase']}"
    if error.get("step"):
        text += f" ({error['step']})"
    if error.get("host"):
        text += f" on {_name(str(error['host']), names)}"
    if error.get("exit_code") is not None:
        text += f", exit code {error['exit_code']}"
    if error.get("error"):
        text += f" [{error['error']}]"
    return text


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    query: dict[str, Any] = {
        "app": args.app,
        "environment": args.environment,
        "status": args.status,
        "limit": args.limit,
    }
    deploys: list[Mapping[str, Any]] = []
    cursor = None
    seen_cursors: set[str] = set()
    while True:
        _, page = ctx.api.call("GET", "/deploys", query={**query, "cursor": cursor})
        batch = _list(page.get("deploys"))
        deploys.extend(batch)
        if not args.json:
            for deploy in batch:
                ctx.say(describe_line(deploy))
        cursor = page.get("next_cursor")
        if not cursor or not args.all:
            break
        if cursor in seen_cursors:
            raise CliError(f"the server repeated cursor {cursor!r}; stopping", EXIT_SERVER)
        seen_cursors.add(cursor)
    if args.json:
        ctx.say(json.dumps(deploys, indent=2))
    elif not deploys:
        ctx.say("no deploys")
    if cursor and not args.all:
        print("(more: use --all to follow next_cursor)", file=ctx.err, flush=True)
    return EXIT_OK


def describe_line(d: Mapping[str, Any]) -> str:
    """One deploy on one line (``list``)."""
    target = f"{d.get('app')}/{d.get('environment')}"
    line = (
        f"{d.get('deploy_id')}  {target:<20} {d.get('status')!s:<11} {d.get('phase')!s:<14} "
        f"{_short(d.get('sha'))}  {d.get('ref') or '-':<12} {d.get('requested_by')}"
    )
    if d.get("reason"):
        line += f"  {d['reason']}"
    return line


def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    _, summary = ctx.api.call("POST", f"/deploys/{_seg(args.deploy_id)}/cancel", {})
    if summary.get("status") == "cancelled":
        ctx.say(f"{summary.get('deploy_id')} cancelled")
    else:
        ctx.say(
            f"{summary.get('deploy_id')} cancel requested (status {summary.get('status')}, "
            f"phase {summary.get('phase')}): it stops at its next step boundary and rolls "
            "switched hosts back"
        )
    return EXIT_OK


def cmd_freeze(ctx: Context, args: argparse.Namespace) -> int:
    _, view = ctx.api.call("PUT", _lock_path(args), {"reason": args.reason})
    ctx.say(f"froze {args.app}/{args.environment}")
    for line in describe_environment(view):
        ctx.say(line)
    return EXIT_OK


def cmd_unfreeze(ctx: Context, args: argparse.Namespace) -> int:
    _, view = ctx.api.call("DELETE", _lock_path(args))
    ctx.say(f"unfroze {args.app}/{args.environment}")
    for line in describe_environment(view):
        ctx.say(line)
    return EXIT_OK


def _lock_path(args: argparse.Namespace) -> str:
    return f"/environments/{_seg(args.app)}/{_seg(args.environment)}/lock"


def cmd_env(ctx: Context, args: argparse.Namespace) -> int:
    _, view = ctx.api.call("GET", f"/environments/{_seg(args.app)}/{_seg(args.environment)}")
    if args.json:
        ctx.say(json.dumps(view, indent=2))
        return EXIT_OK
    for line in describe_environment(view):
        ctx.say(line)
    return EXIT_OK


def describe_environment(v: Mapping[str, Any]) -> list[str]:
    live = _short(v.get("current_sha"))
    if v.get("current_deploy_id"):
        live += f" (deploy {v['current_deploy_id']})"
    lines = [
        f"environment {v.get('app')}/{v.get('environment')}",
        f"  live      {live}",
        f"  running   {v.get('running_deploy_id') or '-'}",
        f"  queued    {v.get('queued_deploy_id') or '-'}",
    ]
    if v.get("frozen"):
        lines.append(
            f"  frozen    yes: {v.get('frozen_reason')} "
            f"(by {v.get('frozen_by')} at {v.get('frozen_at')})"
        )
    else:
        lines.append("  frozen    no")
    audit = _list(v.get("audit"))
    if audit:
        lines.append("audit (newest last)")
        for entry in audit[-10:]:
            extra = " ".join(
                f"{k}={val}" for k, val in entry.items() if k not in ("at", "by", "action")
            )
            who, action = entry.get("by"), entry.get("action")
            lines.append(f"  {entry.get('at')}  {who!s:<14} {action!s:<9} {extra}".rstrip())
    return lines


# --- small helpers ---------------------------------------------------------------------------


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _list_any(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _short(sha: Any) -> str:
    return str(sha)[:12] if sha else "-"


def _name(instance_id: str, names: Mapping[str, str]) -> str:
    name = names.get(instance_id)
    return f"{name} ({instance_id})" if name else instance_id


def _host_label(host: Mapping[str, Any]) -> str:
    name, instance = host.get("name"), host.get("instance_id")
    return f"{name} ({instance})" if name else str(instance)


def _running_step(record: Mapping[str, Any]) -> str | None:
    phases = record.get("phases")
    if not isinstance(phases, dict):
        return None
    running = [k for k, v in phases.items() if isinstance(v, dict) and v.get("status") == "running"]
    return running[-1] if running else None


def _last_line(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


# --- entry points ----------------------------------------------------------------------------


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
