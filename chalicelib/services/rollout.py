"""The rollout's steps, called by the state machine: dispatch a step, poll it, finish.

Each call is idempotent enough to be retried by Step Functions: dispatch records what it sent,
poll only reads SSM and overwrites per-host rows, finish ignores a deploy already finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..domain.errors import RoadieError
from ..domain.lifecycle import check_transition, is_active
from ..domain.model import Deploy, DeployStatus, HostCommand, HostResult, HostStatus, Phase
from .clock import iso, parse_iso, utcnow
from .deploys import DeployService
from .ports import DeployMetrics, DeployStore, HostCommandRunner, HostResultStore


class CancelRequestedError(RoadieError):
    """Raised by dispatch instead of sending the next step of a cancelled deploy."""

    code = "cancel_requested"


TAIL_CHARS = 2000  # of each host's stdout/stderr kept in the record
# How long SSM may take to deliver a command, on top of the phase's execution timeout.
DELIVERY_GRACE_SECONDS = 60
OUTCOMES = {
    "succeeded": DeployStatus.SUCCEEDED,
    "failed": DeployStatus.FAILED,
    "timed_out": DeployStatus.TIMED_OUT,
    "errored": DeployStatus.ERRORED,
    "cancelled": DeployStatus.CANCELLED,
}


def final_status(deploy: Deploy, outcome: DeployStatus) -> DeployStatus:
    """What the deploy ends as. A rollout that rolled back ends ``rolled_back`` (or
    ``cancelled`` when a cancel caused it); a rollback that itself failed ends ``failed``."""
    if deploy.phase is Phase.ROLLING_BACK:
        if outcome is DeployStatus.SUCCEEDED:
            return (
                DeployStatus.CANCELLED if deploy.cancel_requested_by else DeployStatus.ROLLED_BACK
            )
        if outcome in (DeployStatus.FAILED, DeployStatus.TIMED_OUT):
            return DeployStatus.FAILED
    return outcome


def step_at(plan: dict[str, Any], cursor: int) -> dict[str, Any]:
    """The plan's step at ``cursor``; one past the last step is the rollback step."""
    steps = plan["steps"]
    return dict(steps[cursor]) if cursor < len(steps) else dict(plan["rollback"])


def first_switch(plan: dict[str, Any]) -> int:
    """The cursor of the first switch (from there on, hosts may run the new release)."""
    for index, step in enumerate(plan["steps"]):
        if step["command"] == HostCommand.SWITCH.value:
            return index
    return len(plan["steps"])


def errored_evidence(deploy: Deploy, error: Any) -> dict[str, Any]:
    """The record of an AWS or code failure (Step Functions' ``{"Error", "Cause"}``)."""
    error = error if isinstance(error, dict) else {}
    evidence: dict[str, Any] = {
        "kind": "errored",
        "phase": deploy.phase.value,
        "error": str(error.get("Error", "")),
        "message": str(error.get("Cause", ""))[-1000:] or "rollout errored",
    }
    if deploy.error and deploy.error.get("kind") != "errored":
        evidence["earlier"] = deploy.error
    return evidence


def step_label(step: dict[str, Any]) -> str:
    """``stage``, ``migrate``, ``batch-2.switch``, ... (keys of the record's ``phases``)."""
    if step.get("batch"):
        return f"batch-{step['batch']}.{step['command']}"
    return str(step["command"])


@dataclass
class RolloutService:
    deploys: DeployStore
    host_results: HostResultStore
    commands: HostCommandRunner
    metrics: DeployMetrics
    lifecycle: DeployService
    clock: Callable[[], datetime] = utcnow

    def dispatch(self, event: dict[str, Any]) -> dict[str, Any]:
        deploy_id = event["deploy_id"]
        cursor = int(event["cursor"])
        step = step_at(event["plan"], cursor)
        command = HostCommand(step["command"])
        timeout = int(step["timeout"])
        deploy = self.deploys.get(deploy_id)
        if deploy.cancel_requested_by and command is not HostCommand.ROLLBACK:
            raise CancelRequestedError(f"cancel requested by {deploy.cancel_requested_by}")
        self.lifecycle.renew(deploy)
        sent = deploy.phases.get(step_label(step), {})
        if sent.get("cursor") == cursor and sent.get("command_ids"):
            # a retry of a dispatch that already sent this step: never send it twice
            return {
                "cursor": cursor,
                "command_ids": sent["command_ids"],
                "deadline": sent["deadline"],
            }
        now = self.clock()
        deadline = iso(now + timedelta(seconds=timeout + DELIVERY_GRACE_SECONDS))
        parameters = {
            **event["parameters"],
            "phase": command.value,
            "executionTimeout": str(timeout),
        }
        command_ids = [
            self.commands.run(
                chunk,
                parameters,
                timeout_seconds=timeout,
                comment=f"roadie {deploy_id} {step_label(step)}",
            )
            for chunk in step["chunks"]
        ]
        self.host_results.put_many(
            HostResult(
                deploy_id=deploy_id,
                instance_id=host,
                step=cursor,
                batch=int(step.get("batch", 0)),
                command=command,
                status=HostStatus.PENDING,
                started_at=iso(now),
                command_id=command_id,
            )
            for chunk, command_id in zip(step["chunks"], command_ids, strict=True)
            for host in chunk
        )

        def started(d: Deploy) -> None:
            d.phase = command.deploy_phase
            d.step = cursor
            d.updated_at = iso(now)
            d.phases[step_label(step)] = {
                "command": command.value,
                "batch": int(step.get("batch", 0)),
                "hosts": len(step["hosts"]),
                "status": "running",
                "started_at": iso(now),
                "cursor": cursor,
                "command_ids": command_ids,
                "deadline": deadline,
            }

        self.deploys.mutate(deploy_id, started)
        return {"cursor": cursor, "command_ids": command_ids, "deadline": deadline}

    def poll(self, event: dict[str, Any]) -> dict[str, Any]:
        """Answer ``running`` until the step is done, then where the rollout goes next:
        ``next`` (after ``bake`` seconds), ``done``, ``rollback`` (a switched batch failed, or
        a cancel arrived after the first switch), ``cancelled``, ``failed`` or ``timed_out``.
        """
        deploy_id = event["deploy_id"]
        wave = event["wave"]
        cursor = int(wave["cursor"])
        plan = event["plan"]
        step = step_at(plan, cursor)
        deploy = self.deploys.get(deploy_id)
        self.lifecycle.renew(deploy)
        now = self.clock()
        overdue = now > parse_iso(wave["deadline"])
        finished = all(self.commands.is_finished(cid) for cid in wave["command_ids"])
        if not finished and not overdue:
            return {"state": "running", "next": cursor, "bake": 0}

        results = self._collect(deploy_id, step, cursor, wave["command_ids"], event, overdue)
        self.host_results.put_many(results)
        bad = [r for r in results if r.status is not HostStatus.SUCCEEDED]
        timed_out = [r for r in results if r.status is HostStatus.TIMED_OUT]
        label = step_label(step)
        outcome = "timed_out" if timed_out else "failed" if bad else "ok"
        command = HostCommand(step["command"])
        rollback_index = len(plan["steps"])
        switched = cursor >= first_switch(plan) and command is not HostCommand.ROLLBACK

        def record(d: Deploy) -> None:
            entry = d.phases.setdefault(label, {})
            entry["status"] = "succeeded" if outcome == "ok" else outcome
            entry["finished_at"] = iso(now)
            started = entry.get("started_at")
            if isinstance(started, str):
                entry["duration_s"] = round((now - parse_iso(started)).total_seconds(), 3)
            d.updated_at = iso(now)
            if bad:
                first = (timed_out or bad)[0]
                evidence: dict[str, object] = {
                    "kind": outcome,
                    "phase": first.command.deploy_phase.value,
                    "step": label,
                    "host": first.instance_id,
                    "hosts": [r.instance_id for r in bad],
                    "exit_code": first.exit_code,
                    "stderr_tail": first.stderr_tail[-1000:],
                    "stdout_tail": first.stdout_tail[-1000:],
                    "message": first.detail or f"{first.command.value} {first.status.value}",
                }
                if command is HostCommand.ROLLBACK and d.error is not None:
                    d.error = {**d.error, "rollback": evidence}
                else:
                    d.error = evidence

        self.deploys.mutate(deploy_id, record)
        if outcome != "ok":
            if switched and command in (HostCommand.SWITCH, HostCommand.VERIFY):
                return {"state": "rollback", "next": rollback_index, "bake": 0}
            return {"state": outcome, "next": cursor, "bake": 0}
        if command is HostCommand.ROLLBACK:
            return {"state": "done", "next": cursor, "bake": 0}
        if deploy.cancel_requested_by:
            if switched and command is not HostCommand.POST_MIGRATE:
                return {"state": "rollback", "next": rollback_index, "bake": 0}
            return {"state": "cancelled", "next": cursor, "bake": 0}
        nxt = cursor + 1
        if nxt >= rollback_index:
            return {"state": "done", "next": nxt, "bake": 0}
        return {"state": "next", "next": nxt, "bake": int(step.get("bake", 0))}

    def _collect(
        self,
        deploy_id: str,
        step: dict[str, Any],
        cursor: int,
        command_ids: list[str],
        event: dict[str, Any],
        overdue: bool,
    ) -> list[HostResult]:
        command = HostCommand(step["command"])
        expected_sha = event["parameters"]["sha"]
        results = []
        for chunk, command_id in zip(step["chunks"], command_ids, strict=True):
            for host in chunk:
                inv = self.commands.invocation(command_id, host)
                status, detail = inv.status, inv.detail
                if status is HostStatus.PENDING and overdue:
                    status, detail = HostStatus.TIMED_OUT, "no answer before the phase timeout"
                elif status is HostStatus.SUCCEEDED and command is HostCommand.VERIFY:
                    if f"REVISION={expected_sha}" not in inv.stdout.splitlines():
                        status = HostStatus.FAILED
                        detail = f"host did not report REVISION={expected_sha}"
                elif status is HostStatus.FAILED and not detail:
                    detail = f"exit code {inv.exit_code}"
                results.append(
                    HostResult(
                        deploy_id=deploy_id,
                        instance_id=host,
                        step=cursor,
                        batch=int(step.get("batch", 0)),
                        command=command,
                        status=status,
                        exit_code=inv.exit_code,
                        stdout_tail=inv.stdout[-TAIL_CHARS:],
                        stderr_tail=inv.stderr[-TAIL_CHARS:],
                        started_at=inv.started_at,
                        finished_at=inv.finished_at,
                        command_id=command_id,
                        detail=detail if status is not HostStatus.SUCCEEDED else "",
                    )
                )
        return results

    def recover(self, event: dict[str, Any]) -> dict[str, Any]:
        """After an AWS or code error: roll back if hosts may run the new release (once: an
        error while already rolling back is final), otherwise end as ``errored``."""
        deploy_id = event["deploy_id"]
        plan = event["plan"]
        cursor = int(event.get("cursor", 0))
        deploy = self.deploys.get(deploy_id)
        rolling_back = deploy.phase is Phase.ROLLING_BACK or cursor >= len(plan["steps"])
        if deploy.cancel_requested_by and not rolling_back:
            # a cancel stops the rollout before its next step; switched hosts go back
            if cursor >= first_switch(plan):
                return {"state": "rollback", "next": len(plan["steps"]), "bake": 0}
            return {"state": "cancelled", "next": cursor, "bake": 0}
        if rolling_back or cursor < first_switch(plan):
            return {"state": "errored", "next": cursor, "bake": 0}
        now = iso(self.clock())

        def cause(d: Deploy) -> None:
            d.error = errored_evidence(d, event.get("error"))
            d.updated_at = now

        self.deploys.mutate(deploy_id, cause)
        return {"state": "rollback", "next": len(plan["steps"]), "bake": 0}

    def finish(self, event: dict[str, Any]) -> dict[str, Any]:
        deploy_id = event["deploy_id"]
        requested = OUTCOMES[event["outcome"]]
        now = self.clock()
        changed = False

        def close(d: Deploy) -> None:
            nonlocal changed
            if not is_active(d.status):
                changed = False
                return
            outcome = final_status(d, requested)
            check_transition(d.status, outcome)
            changed = True
            d.status = outcome
            d.finished_at = iso(now)
            d.updated_at = iso(now)
            if outcome is DeployStatus.SUCCEEDED:
                d.phase = Phase.DONE
            if outcome is DeployStatus.ERRORED:
                d.error = errored_evidence(d, event.get("error"))

        deploy = self.deploys.mutate(deploy_id, close)
        # always (idempotent): a retry after a failed release must still free the environment
        all_switched = deploy.status is DeployStatus.SUCCEEDED or (
            deploy.phase is Phase.POST_MIGRATING
        )
        self.lifecycle.end(deploy, live_sha=deploy.sha if all_switched else None)
        if changed:
            started = deploy.started_at or deploy.created_at
            duration = (now - parse_iso(started)).total_seconds()
            self.metrics.deploy_finished(deploy, duration)
        return {"deploy_id": deploy_id, "status": deploy.status.value}
