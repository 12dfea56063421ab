"""The commands: each turns its parsed arguments into API calls and prints the answers
(through ``render``); ``deploy --wait`` and ``rollback --wait`` follow the deploy to its end."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from . import render
from .api import TERMINAL, Api, deploy_path, environment_path
from .errors import EXIT_DEPLOY_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_SERVER, CliError


@dataclass
class Context:
    api: Api
    out: TextIO
    err: TextIO
    sleep: Callable[[float], None] = time.sleep

    def say(self, *lines: str) -> None:
        for text in lines:
            print(text, file=self.out, flush=True)


def cmd_deploy(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"app": args.app, "environment": args.environment}
    if args.sha is not None:
        body["sha"] = args.sha
    else:
        body["ref"] = args.ref
    _, summary = ctx.api.call("POST", "/deploys", _with_reason_and_force(body, args))
    return _accepted(ctx, summary, args)


def cmd_rollback(ctx: Context, args: argparse.Namespace) -> int:
    body = _with_reason_and_force({}, args)
    _, summary = ctx.api.call("POST", deploy_path(args.deploy_id, "rollback"), body)
    return _accepted(ctx, summary, args)


def _with_reason_and_force(body: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if args.reason is not None:
        body["reason"] = args.reason
    if args.force:
        body["force"] = True
    return body


def _accepted(ctx: Context, summary: Mapping[str, Any], args: argparse.Namespace) -> int:
    ctx.say(*render.accepted_lines(summary))
    if not args.wait:
        return EXIT_OK
    return watch(ctx, str(summary.get("deploy_id")), args.interval)


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
    path = deploy_path(deploy_id)
    while True:
        _, record = ctx.api.call("GET", path)
        stamp = f"[{time.monotonic() - start:6.1f}s]"
        if record.get("status") != status and record.get("status") not in TERMINAL:
            status = record.get("status")
            ctx.say(f"{stamp} status {status}")
        if record.get("phase") != phase:
            phase = record.get("phase")
            ctx.say(f"{stamp} {render.phase_line(record)}")
        for host, step in _landed(record, seen):
            ctx.say(f"{stamp}   {render.step_line(host, step)}")
        if record.get("status") in TERMINAL:
            ctx.say(f"{stamp} {render.end_line(record)}")
            if record.get("status") == "succeeded":
                return EXIT_OK
            ctx.say(*render.error_lines(record))
            return EXIT_DEPLOY_FAILED
        ctx.sleep(interval)


def _landed(
    record: Mapping[str, Any], seen: set[tuple[str, int, str]]
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Host step results not printed yet (pending steps have not landed), in step order."""
    new = []
    for order, host in enumerate(render.records(record.get("hosts"))):
        for step in render.records(host.get("steps")):
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


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    _, record = ctx.api.call("GET", deploy_path(args.deploy_id))
    lines = [json.dumps(record, indent=2)] if args.json else render.describe_deploy(record)
    ctx.say(*lines)
    return EXIT_OK


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
        batch = render.records(page.get("deploys"))
        deploys.extend(batch)
        if not args.json:
            for deploy in batch:
                ctx.say(render.describe_line(deploy))
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


def cmd_log(ctx: Context, args: argparse.Namespace) -> int:
    """Every page of ``GET /deploys/{id}/log``: each host's whole output per phase and stream,
    under a header line whenever the host, phase or stream changes."""
    query: dict[str, Any] = {"host": args.host, "phase": args.phase}
    blocks: list[Mapping[str, Any]] = []
    cursor, seen_cursors, last = None, set(), None
    while True:
        _, page = ctx.api.call(
            "GET", deploy_path(args.deploy_id, "log"), query={**query, "cursor": cursor}
        )
        for block in render.records(page.get("output")):
            blocks.append(block)
            source = (block.get("host"), block.get("phase"), block.get("stream"))
            if not args.json:
                if source != last:
                    ctx.say(render.log_header(block))
                ctx.say(*[str(line) for line in block.get("lines") or []])
            last = source
        cursor = page.get("next_cursor")
        if not cursor:
            break
        if cursor in seen_cursors:
            raise CliError(f"the server repeated cursor {cursor!r}; stopping", EXIT_SERVER)
        seen_cursors.add(cursor)
    if args.json:
        ctx.say(json.dumps(blocks, indent=2))
    elif not blocks:
        ctx.say("no output")
    return EXIT_OK


def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    _, summary = ctx.api.call("POST", deploy_path(args.deploy_id, "cancel"), {})
    ctx.say(render.cancel_line(summary))
    return EXIT_OK


def cmd_freeze(ctx: Context, args: argparse.Namespace) -> int:
    lock = environment_path(args.app, args.environment, "lock")
    _, view = ctx.api.call("PUT", lock, {"reason": args.reason})
    ctx.say(f"froze {args.app}/{args.environment}", *render.describe_environment(view))
    return EXIT_OK


def cmd_unfreeze(ctx: Context, args: argparse.Namespace) -> int:
    _, view = ctx.api.call("DELETE", environment_path(args.app, args.environment, "lock"))
    ctx.say(f"unfroze {args.app}/{args.environment}", *render.describe_environment(view))
    return EXIT_OK


def cmd_env(ctx: Context, args: argparse.Namespace) -> int:
    _, view = ctx.api.call("GET", environment_path(args.app, args.environment))
    lines = [json.dumps(view, indent=2)] if args.json else render.describe_environment(view)
    ctx.say(*lines)
    return EXIT_OK
