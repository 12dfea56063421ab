"""How the API's answers read on a terminal: each function turns a decoded JSON answer (a deploy,
a page of deploys, an environment) into lines, and prints nothing itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .api import TERMINAL


def accepted_lines(summary: Mapping[str, Any]) -> list[str]:
    """The answer to ``deploy`` or ``rollback``: what was accepted, and why it waits if it does."""
    line = (
        f"{summary.get('deploy_id')} {summary.get('status')} (phase {summary.get('phase')}): "
        f"{summary.get('app')}/{summary.get('environment')} {_short(summary.get('sha'))}"
    )
    if summary.get("ref"):
        line += f" ref {summary['ref']}"
    lines = [line]
    if summary.get("existing"):
        lines.append("  this SHA is already deploying or queued there: that deploy is the answer")
    elif summary.get("status") == "queued":
        lines.append(
            "  queued: the environment is busy or frozen, or its fleet diverged; "
            "it starts when the lock is free"
        )
    if summary.get("rollback_of"):
        lines.append(f"  {summary.get('reason') or 'rollback of ' + str(summary['rollback_of'])}")
    return lines


def phase_line(record: Mapping[str, Any]) -> str:
    """``--wait``: the phase a deploy entered, with the step running in it if any."""
    running = _running_step(record)
    return f"phase {record.get('phase')}" + (f" ({running})" if running else "")


def step_line(host: Mapping[str, Any], step: Mapping[str, Any]) -> str:
    """``--wait``: one host step's result, as it lands."""
    return (
        f"{host.get('name') or host.get('instance_id')!s:<20}"
        f" {step.get('command', '?'):<13}"
        f" {step.get('status', '?'):<10} {_exit_and_detail(step)}"
    )


def end_line(record: Mapping[str, Any]) -> str:
    """``--wait``: how the deploy ended, and how long it took."""
    took = record.get("duration_s")
    line = f"{record.get('deploy_id')} {record.get('status')}"
    if isinstance(took, int | float):
        line += f" in {_duration(took)}"
    return line


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
    hosts = records(d.get("hosts"))
    if hosts:
        lines.append("hosts")
        for host in hosts:
            steps = records(host.get("steps"))
            batch = host.get("batch")
            label = f"  {_host_label(host):<40} batch {batch if batch is not None else '-'}"
            if not steps:
                lines.append(f"{label}  no steps yet")
                continue
            last = steps[-1]
            lines.append(
                f"{label}  {last.get('command')} {last.get('status')} {_exit_and_detail(last)}"
            )
    lines.extend(error_lines(d))
    return lines


def error_lines(d: Mapping[str, Any]) -> list[str]:
    """What went wrong in a deploy (its ``error``), or nothing."""
    error = d.get("error")
    if not isinstance(error, dict) or not error:
        return []
    names = {
        str(h.get("instance_id")): str(h.get("name") or "")
        for h in records(d.get("hosts"))
        if h.get("instance_id")
    }
    lines = ["error     " + _error_text(error, names)]
    stderr = _last_line(error.get("stderr_tail"))
    if stderr:
        lines.append(f"  stderr    {stderr}")
    if error.get("message"):
        lines.append(f"  message   {error['message']}")
    others = [str(h) for h in _items(error.get("hosts")) if h != error.get("host")]
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


def cancel_line(summary: Mapping[str, Any]) -> str:
    """The answer to ``cancel``: cancelled at once (queued), or asked to stop (running)."""
    if summary.get("status") == "cancelled":
        return f"{summary.get('deploy_id')} cancelled"
    return (
        f"{summary.get('deploy_id')} cancel requested (status {summary.get('status')}, "
        f"phase {summary.get('phase')}): the step in flight is stopped on its hosts, "
        "switched hosts are rolled back, then it ends cancelled"
    )


def describe_environment(v: Mapping[str, Any]) -> list[str]:
    """``GET /environments/{app}/{env}``: live release, lock, queue, freeze and recent audit."""
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
    if v.get("fleet_state"):
        state = str(v["fleet_state"])
        if v.get("diverged_deploy_id"):
            state += f" (diverged by {v['diverged_deploy_id']}; new deploys wait)"
        lines.append(f"  fleet     {state}")
        for host in records(v.get("hosts")):
            name = host.get("name") or host.get("instance_id")
            lines.append(f"    {name!s:<22} {_short(host.get('sha') or None)}")
    audit = records(v.get("audit"))
    if audit:
        lines.append("audit (newest last)")
        for entry in audit[-10:]:
            extra = " ".join(
                f"{k}={val}" for k, val in entry.items() if k not in ("at", "by", "action")
            )
            who, action = entry.get("by"), entry.get("action")
            lines.append(f"  {entry.get('at')}  {who!s:<14} {action!s:<9} {extra}".rstrip())
    return lines


def log_header(block: Mapping[str, Any]) -> str:
    """``== shop-production-1 (i-0a65...) batch-1.switch stdout ==`` over a host's output."""
    host = str(block.get("host", "?"))
    name = str(block.get("name") or "")
    who = f"{name} ({host})" if name else host
    return f"== {who} {block.get('phase', '?')} {block.get('stream', '?')} =="


def records(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON list; anything else reads as an empty list."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _short(sha: Any) -> str:
    return str(sha)[:12] if sha else "-"


def _name(instance_id: str, names: Mapping[str, str]) -> str:
    name = names.get(instance_id)
    return f"{name} ({instance_id})" if name else instance_id


def _host_label(host: Mapping[str, Any]) -> str:
    name, instance = host.get("name"), host.get("instance_id")
    return f"{name} ({instance})" if name else str(instance)


def _exit_and_detail(step: Mapping[str, Any]) -> str:
    exit_code = step.get("exit_code")
    text = f"exit {'-' if exit_code is None else exit_code}"
    return text + (f": {step['detail']}" if step.get("detail") else "")


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
