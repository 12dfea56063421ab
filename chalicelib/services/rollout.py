"""The rollout's steps, called by the state machine: dispatch a step, poll it, recover, finish.

Each call is idempotent enough to be retried by Step Functions: dispatch records what it sent,
poll only reads SSM and overwrites per-host rows, finish ignores a deploy already finished.
The ``*_step`` methods take and answer the typed contract (``domain/contract.py``). The Lambda
tasks' JSON meets it in ``dispatch``/``poll``/``recover``/``finish``, one line each, which app.py
calls (and bench/ wraps to time each task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..domain import lifecycle
from ..domain.contract import (
    DispatchTask,
    Finished,
    FinishTask,
    PollTask,
    RecoverTask,
    Route,
    RouteState,
    TaskError,
    Wave,
)
from ..domain.errors import UnavailableError
from ..domain.fleet import HostRelease, divergence_note, off_release, reported_release
from ..domain.model import Deploy, DeployStatus, HostCommand, HostResult, HostStatus, Phase
from ..domain.rollout import RolloutPlan, Step
from .clock import iso, parse_iso, utcnow
from .errors import CancelRequestedError
from .evidence import contract_failure, divergence, host_names, plan_hosts
from .ports import (
    DeployMetrics,
    DeployNotifier,
    DeployStore,
    FleetLedger,
    Handover,
    HostCommandRunner,
    HostResultStore,
    Lease,
)

TAIL_CHARS = 2000  # of each host's stdout/stderr kept in the record
# How long SSM may take to deliver a command, on top of the phase's execution timeout.
DELIVERY_GRACE_SECONDS = 60
HOST_OUTCOMES = {"failed": RouteState.FAILED, "timed_out": RouteState.TIMED_OUT}
# Phases in which some host may already run the new release.
SWITCHED_PHASES = (Phase.SWITCHING, Phase.VERIFYING, Phase.ROLLING_BACK)


def final_status(deploy: Deploy, outcome: DeployStatus, *, mixed: bool = False) -> DeployStatus:
    """What the deploy ends as. A rollout that rolled back ends ``rolled_back`` (or
    ``cancelled`` when a cancel caused it). One that did not succeed after hosts switched and
    left some host off the environment's release (``mixed``: a rollback failed, timed out or
    never ran to its end) ends ``diverged``; a rollback that failed with every host back on
    the environment's release ends ``failed``."""
    if deploy.phase is Phase.ROLLING_BACK and outcome is DeployStatus.SUCCEEDED:
        return DeployStatus.CANCELLED if deploy.cancel_requested_by else DeployStatus.ROLLED_BACK
    if outcome is DeployStatus.SUCCEEDED:
        return outcome
    if mixed and deploy.phase in SWITCHED_PHASES:
        return DeployStatus.DIVERGED
    if deploy.phase is Phase.ROLLING_BACK and outcome in (
        DeployStatus.FAILED,
        DeployStatus.TIMED_OUT,
    ):
        return DeployStatus.FAILED
    return outcome


def phase_key(deploy: Deploy, step: Step) -> str:
    """Where a step is recorded in ``deploy.phases``: its label, or for a convergence attempt
    of a diverged deploy ``converge-<attempt>.<label>`` (each attempt is sent afresh)."""
    if deploy.status is DeployStatus.DIVERGED:
        return f"converge-{deploy.fleet.get('attempts', 0)}.{step.label}"
    return step.label


def errored_evidence(deploy: Deploy, error: TaskError | None) -> dict[str, object]:
    """The record of an AWS or code failure (Step Functions' ``{"Error", "Cause"}``)."""
    error = error or TaskError()
    detail: dict[str, object] = {"error": error.error}
    if deploy.error and deploy.error.get("kind") != "errored":
        detail["earlier"] = deploy.error
    message = error.cause[-1000:] or "rollout errored"
    return lifecycle.failure("errored", deploy.phase.value, message, **detail)


def step_label(step: Step | Mapping[str, Any]) -> str:
    """``stage``, ``migrate``, ``batch-2.switch``, ... (``Step.label``; the JSON form of a step
    is accepted for readers of an execution input, such as bench/)."""
    return (step if isinstance(step, Step) else Step.from_json(step)).label


def host_failure(step: Step, bad: list[HostResult], kind: str) -> dict[str, object]:
    """The record's error for a step some hosts failed: the first (timed-out first) speaks."""
    first = next((r for r in bad if r.status is HostStatus.TIMED_OUT), bad[0])
    return lifecycle.failure(
        kind,
        first.command.deploy_phase.value,
        first.detail or f"{first.command.value} {first.status.value}",
        step=step.label,
        host=first.instance_id,
        hosts=[r.instance_id for r in bad],
        exit_code=first.exit_code,
        stderr_tail=first.stderr_tail[-1000:],
        stdout_tail=first.stdout_tail[-1000:],
    )


def cancel_commands(commands: HostCommandRunner, command_ids: Iterable[str]) -> None:
    """Ask SSM to stop each command, best effort: a command that already finished keeps its
    result, and an API error leaves the rollout's next poll to ask again."""
    for command_id in command_ids:
        try:
            commands.cancel(command_id)
        except UnavailableError:
            continue


@dataclass
class RolloutService:
    deploys: DeployStore
    host_results: HostResultStore
    commands: HostCommandRunner
    metrics: DeployMetrics
    lease: Lease
    handover: Handover
    clock: Callable[[], datetime] = utcnow
    fleet: FleetLedger | None = None  # where hosts' release reports go (None: not recorded)
    notifier: DeployNotifier | None = None  # tells the commit and chat (None: nobody)

    # -- the JSON edge: each Lambda event becomes its task, each answer JSON again

    # -- the steps

    def dispatch_step(self, task: DispatchTask) -> Wave:
        """Send the step at ``task.cursor`` (once: a retry answers with what was sent)."""
        cursor, step = task.cursor, task.plan.step_at(task.cursor)
        deploy = self.deploys.get(task.deploy_id)
        if deploy.cancel_requested_by and step.command is not HostCommand.ROLLBACK:
            raise CancelRequestedError(f"cancel requested by {deploy.cancel_requested_by}")
        self.lease.renew(deploy)
        key = phase_key(deploy, step)
        sent = deploy.phases.get(key, {})
        command_ids = sent.get("command_ids")
        if sent.get("cursor") == cursor and isinstance(command_ids, list) and command_ids:
            # a retry of a dispatch that already sent this step: never send it twice
            return Wave(cursor, tuple(str(c) for c in command_ids), str(sent["deadline"]))
        now = self.clock()
        wave = Wave(
            cursor,
            tuple(
                self.commands.run(
                    chunk,
                    {
                        **task.parameters,
                        "phase": step.command.value,
                        "executionTimeout": str(step.timeout_seconds),
                    },
                    timeout_seconds=step.timeout_seconds,
                    comment=f"roadie {task.deploy_id} {step.label}",
                )
                for chunk in step.chunks
            ),
            iso(now + timedelta(seconds=step.timeout_seconds + DELIVERY_GRACE_SECONDS)),
        )
        self.host_results.put_many(
            HostResult(
                deploy_id=task.deploy_id,
                instance_id=host,
                step=cursor,
                batch=step.batch,
                command=step.command,
                status=HostStatus.PENDING,
                started_at=iso(now),
                command_id=command_id,
            )
            for chunk, command_id in zip(step.chunks, wave.command_ids, strict=True)
            for host in chunk
        )

        def started(d: Deploy) -> None:
            if lifecycle.is_active(d.status):  # not a diverged deploy's convergence attempt
                lifecycle.enter_phase(d, step.command.deploy_phase, iso(now))
                d.step = cursor
            d.updated_at = iso(now)
            d.phases[key] = {
                "command": step.command.value,
                "batch": step.batch,
                "hosts": len(step.hosts),
                "status": "running",
                "started_at": iso(now),
                "cursor": cursor,
                "command_ids": list(wave.command_ids),
                "deadline": wave.deadline,
            }

        self.deploys.mutate(task.deploy_id, started)
        return wave

    def poll_step(self, task: PollTask) -> Route:
        """Answer ``running`` until the step is done, then where the rollout goes next:
        ``next`` (after ``bake`` seconds), ``done``, ``rollback`` (a switched batch failed, or
        a cancel arrived after the first switch), ``cancelled``, ``failed`` or ``timed_out``.
        """
        wave, plan = task.wave, task.plan
        cursor, step = wave.cursor, plan.step_at(wave.cursor)
        deploy = self.deploys.get(task.deploy_id)
        self.lease.renew(deploy)
        now = self.clock()
        overdue = now > parse_iso(wave.deadline)
        finished = all(self.commands.is_finished(cid) for cid in wave.command_ids)
        command = step.command
        if not finished and not overdue:
            if deploy.cancel_requested_by and command is not HostCommand.ROLLBACK:
                # the cancel's own CancelCommand misses a step sent while it was recorded
                cancel_commands(self.commands, wave.command_ids)
            return Route(RouteState.RUNNING, cursor)

        expected_sha = task.parameters["sha"]
        results = self._collect(task.deploy_id, step, wave, expected_sha, overdue)
        self.host_results.put_many(results)
        self._report_fleet(deploy, results, task.plan, now)
        bad = [r for r in results if r.status is not HostStatus.SUCCEEDED]
        if not deploy.cancel_requested_by and any(r.status is HostStatus.CANCELLED for r in bad):
            deploy = self.deploys.get(task.deploy_id)  # cancelled since it was read above
        # hosts a cancel stopped did not fail; a rollback is never cancelled
        stopped = bool(deploy.cancel_requested_by) and command is not HostCommand.ROLLBACK
        failed = [r for r in bad if not (stopped and r.status is HostStatus.CANCELLED)]
        timed_out = any(r.status is HostStatus.TIMED_OUT for r in failed)
        outcome = "timed_out" if timed_out else "failed" if failed else "succeeded"
        if outcome == "succeeded" and bad:
            outcome = "cancelled"  # every host that did not succeed was stopped by the cancel
        switched = cursor >= plan.first_switch and command is not HostCommand.ROLLBACK

        key = phase_key(deploy, step)

        def record(d: Deploy) -> None:
            entry = d.phases.setdefault(key, {})
            entry["status"] = outcome
            entry["finished_at"] = iso(now)
            started = entry.get("started_at")
            if isinstance(started, str):
                entry["duration_s"] = round((now - parse_iso(started)).total_seconds(), 3)
            d.updated_at = iso(now)
            if outcome == "cancelled":
                entry["cancelled_by"] = d.cancel_requested_by
            if failed and not lifecycle.is_active(d.status):
                entry["error"] = host_failure(step, failed, outcome)  # a convergence attempt
            elif failed:
                evidence = host_failure(step, failed, outcome)
                if command is HostCommand.ROLLBACK and d.error is not None:
                    d.error = {**d.error, "rollback": evidence}
                else:
                    d.error = evidence

        self.deploys.mutate(task.deploy_id, record)
        rollback = Route(RouteState.ROLLBACK, plan.rollback_cursor)
        if failed:
            if switched and command in (HostCommand.SWITCH, HostCommand.VERIFY):
                return rollback
            return Route(HOST_OUTCOMES[outcome], cursor)
        if command is HostCommand.ROLLBACK:
            return Route(RouteState.DONE, cursor)
        if deploy.cancel_requested_by:
            if switched and command is not HostCommand.POST_MIGRATE:
                return rollback
            return Route(RouteState.CANCELLED, cursor)
        nxt = cursor + 1
        if nxt >= plan.rollback_cursor:
            return Route(RouteState.DONE, nxt)
        return Route(RouteState.NEXT, nxt, step.bake_seconds)

    def _report_fleet(
        self, deploy: Deploy, results: list[HostResult], plan: RolloutPlan, now: datetime
    ) -> None:
        """Record the release each host said it runs at the end of this step."""
        if self.fleet is None:
            return
        names = host_names(deploy)
        reports = []
        for result in results:
            sha = reported_release(result.stdout_tail)
            if sha is not None:
                at = result.finished_at or iso(now)
                name = names.get(result.instance_id, "")
                reports.append(HostRelease(result.instance_id, sha, name, deploy.deploy_id, at))
        if reports:
            keep = [h.instance_id for h in plan.hosts]
            self.fleet.report(deploy.app, deploy.environment, reports, keep)

    def _collect(
        self, deploy_id: str, step: Step, wave: Wave, expected_sha: str, overdue: bool
    ) -> list[HostResult]:
        results = []
        for chunk, command_id in zip(step.chunks, wave.command_ids, strict=True):
            for host in chunk:
                inv = self.commands.invocation(command_id, host)
                status, detail = inv.status, inv.detail
                if status is HostStatus.PENDING and overdue:
                    status, detail = HostStatus.TIMED_OUT, "no answer before the phase timeout"
                elif status is HostStatus.SUCCEEDED and step.command is HostCommand.VERIFY:
                    if f"REVISION={expected_sha}" not in inv.stdout.splitlines():
                        status = HostStatus.FAILED
                        detail = f"host did not report REVISION={expected_sha}"
                elif status is HostStatus.FAILED and not detail:
                    detail = f"exit code {inv.exit_code}"
                results.append(
                    HostResult(
                        deploy_id=deploy_id,
                        instance_id=host,
                        step=wave.cursor,
                        batch=step.batch,
                        command=step.command,
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

    def recover_step(self, task: RecoverTask) -> Route:
        """After an AWS or code error: roll back if hosts may run the new release (once: an
        error while already rolling back is final), otherwise end as ``errored``."""
        plan, cursor = task.plan, task.cursor
        deploy = self.deploys.get(task.deploy_id)
        rolling_back = deploy.phase is Phase.ROLLING_BACK or cursor >= plan.rollback_cursor
        rollback = Route(RouteState.ROLLBACK, plan.rollback_cursor)
        if deploy.cancel_requested_by and not rolling_back:
            # a cancel stops the rollout before its next step; switched hosts go back
            return rollback if cursor >= plan.first_switch else Route(RouteState.CANCELLED, cursor)
        if rolling_back or cursor < plan.first_switch:
            return Route(RouteState.ERRORED, cursor)
        now = iso(self.clock())

        def cause(d: Deploy) -> None:
            d.error = errored_evidence(d, task.error)
            d.updated_at = now

        self.deploys.mutate(task.deploy_id, cause)
        return rollback

    def finish_step(self, task: FinishTask) -> Finished:
        """End the deploy as the rollout's outcome says (a no-op on one already ended) and hand
        the environment on (always: a retry after a failed release must still free it)."""
        now = self.clock()
        changed = False
        first = self.deploys.get(task.deploy_id)
        env = self.deploys.environment(first.app, first.environment)
        targeted = set(plan_hosts(first))
        off = [r for r in off_release(env.fleet, env.current_sha) if r.instance_id in targeted]

        def close(d: Deploy) -> None:
            nonlocal changed
            changed = lifecycle.is_active(d.status)
            if not changed:
                if d.status is DeployStatus.DIVERGED:  # a convergence attempt ended
                    d.fleet = {**d.fleet, "off_release": [r.to_json() for r in off]}
                    d.fleet["last_outcome"] = task.outcome.value
                    d.updated_at = iso(now)
                return
            outcome = final_status(d, task.outcome, mixed=bool(off))
            error = None
            if task.outcome is DeployStatus.ERRORED:
                error = errored_evidence(d, task.error)
            if outcome is DeployStatus.DIVERGED:
                if error is not None:
                    d.error = error
                error = divergence(d, off, env.current_sha)
                d.fleet = divergence_note(off, env.current_sha)
            elif outcome is DeployStatus.FAILED and d.phase is Phase.POST_MIGRATING:
                error = contract_failure(d)
            lifecycle.end(d, outcome, iso(now), error=error)

        deploy = self.deploys.mutate(task.deploy_id, close)
        all_switched = deploy.status is DeployStatus.SUCCEEDED or (
            deploy.phase is Phase.POST_MIGRATING
        )
        self.handover.end(deploy, live_sha=deploy.sha if all_switched else None)
        if changed:
            started = deploy.started_at or deploy.created_at
            self.metrics.deploy_finished(deploy, (now - parse_iso(started)).total_seconds())
            if self.notifier is not None:
                self.notifier.finished(deploy)
        return Finished(task.deploy_id, deploy.status)
