"""Reconciliation: no deploy can hang an environment forever.

Run on a schedule (and safe to run any time). For each environment someone holds or waits for:
- the holder already ended (a finish that never released): release, start the queued one;
- the holder's execution is no longer running (stopped, failed, timed out) while the record
  says running: if hosts may have switched, start a recovery execution that rolls every host
  back (ends ``rolled_back``, cause recorded); otherwise end it ``errored``;
- the holder's lease expired with no execution at all: end it ``errored``;
- nobody holds the lock but a deploy is queued (and not frozen): start it;
- the fleet diverged (a ``diverged`` deploy left hosts on different releases) and nobody
  holds the lock: once its backoff has passed, the diverged deploy takes the lock and a
  recovery execution retries its rollback on every host (a convergence attempt; exponential
  backoff from the poll interval, capped at an hour). The attempt's reports decide: when every
  host runs the environment's release, the environment is converged again (audited, noted on
  the deploy's ``fleet``) and the queued deploy starts.
It also reports how long each active holder has held its lock (``LockAgeSeconds``), so an
alarm can catch a lock that outlives every phase timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ..domain import lifecycle
from ..domain.contract import EXECUTION_GONE, ExecutionInput
from ..domain.environment import EnvironmentState
from ..domain.errors import RoadieError
from ..domain.fleet import retry_delay
from ..domain.model import Deploy, DeployStatus, Host, HostCommand, Phase
from ..domain.pipeline import EnvironmentConfig, PipelineConfig
from ..domain.rollout import RolloutPlan, Step
from .clock import iso, parse_iso, utcnow
from .launch import document_parameters
from .ports import DeployNotifier, DeployStore, Handover, Orchestrator

NOTHING_SWITCHED = (Phase.PENDING, Phase.STAGING)


class LockAgeGauge(Protocol):
    def lock_age(self, app: str, environment: str, seconds: float) -> None: ...


def recovery_plan(deploy: Deploy, env: EnvironmentConfig) -> RolloutPlan:
    """Only the rollback step of ``deploy``'s recorded plan. A record written before plans were
    stored whole has only the host ids: its rollback is planned from them and the config."""
    if "rollback" in deploy.plan:
        return RolloutPlan.from_json(deploy.plan).rollback_only()
    listed = deploy.plan.get("hosts")
    hosts = tuple(str(h) for h in listed) if isinstance(listed, list) else ()
    rollback = Step(HostCommand.ROLLBACK, hosts, env.policy.timeouts.rollback)
    return RolloutPlan(tuple(Host(h) for h in hosts), None, (), 0, rollback)


@dataclass
class Reconciler:
    pipeline: PipelineConfig
    deploys: DeployStore
    handover: Handover
    executions: Orchestrator
    poll_seconds: int
    clock: Callable[[], datetime] = utcnow
    metrics: LockAgeGauge | None = None
    notifier: DeployNotifier | None = None  # tells the commit and chat how a deploy ended

    def run(self) -> list[dict[str, str]]:
        """Fix what needs fixing; returns what was done (for logs and tests)."""
        actions: list[dict[str, str]] = []
        for env in self.deploys.locked_environments():
            now = self.clock()
            holder = env.lock_deploy_id
            if holder is None:
                started = self.handover.start_queued(env.app, env.environment)
                if started:
                    actions.append({"deploy_id": started, "action": "started queued deploy"})
                elif env.diverged_deploy_id:
                    converging = self._converge(env.diverged_deploy_id, now)
                    if converging:
                        actions.append({"deploy_id": env.diverged_deploy_id, "action": converging})
                continue
            deploy = self.deploys.get(holder)
            if not lifecycle.is_active(deploy.status):
                if self._attempt_running(env, deploy, now):
                    continue
                self.handover.end(deploy)
                actions.append({"deploy_id": holder, "action": "released a finished deploy"})
                continue
            if self.metrics is not None:
                held_since = parse_iso(deploy.started_at or deploy.created_at)
                age = max(0.0, (now - held_since).total_seconds())
                self.metrics.lock_age(env.app, env.environment, age)
            status = self.executions.status(deploy.execution_arn) if deploy.execution_arn else None
            expired = env.holder(now.timestamp()) is None
            if status == "RUNNING" or (status is None and not expired):
                continue
            actions.append({"deploy_id": holder, "action": self._recover(deploy, status)})
        return actions

    def _attempt_running(self, env: EnvironmentState, deploy: Deploy, now: datetime) -> bool:
        """A diverged deploy holds its environment while its convergence attempt runs."""
        if deploy.deploy_id != env.diverged_deploy_id or deploy.execution_arn is None:
            return False
        if env.holder(now.timestamp()) is None:
            return False
        return self.executions.status(deploy.execution_arn) == "RUNNING"

    def _converge(self, deploy_id: str, now: datetime) -> str | None:
        """Start the next convergence attempt of a diverged deploy, if its backoff passed."""
        deploy = self.deploys.get(deploy_id)
        due = deploy.fleet.get("next_try_at")
        if isinstance(due, str) and parse_iso(due) > now:
            return None
        if not self.handover.hold_for_convergence(deploy):
            return None
        attempt = int(str(deploy.fleet.get("attempts") or 0)) + 1
        wait = retry_delay(attempt, self.poll_seconds)
        at = iso(now)

        def attempting(d: Deploy) -> None:
            d.fleet = {
                **d.fleet,
                "attempts": attempt,
                "last_attempt_at": at,
                "next_try_at": iso(now + timedelta(seconds=wait)),
            }
            d.updated_at = at

        deploy = self.deploys.mutate(deploy_id, attempting)
        app, env = self.pipeline.environment(deploy.app, deploy.environment)
        execution = ExecutionInput(
            deploy_id=deploy_id,
            plan=recovery_plan(deploy, env),
            parameters=document_parameters(app, deploy.sha, deploy.previous_sha),
            poll_seconds=self.poll_seconds,
        )
        try:
            arn = self.executions.start(f"{deploy_id}-converge-{attempt}", execution.to_json())
        except RoadieError as exc:
            self.handover.end(deploy)  # free the lock; the next run tries again
            return f"could not start convergence attempt {attempt}: {exc}"

        def started(d: Deploy) -> None:
            d.execution_arn = arn
            d.phases[f"converge-{attempt}"] = {"execution": arn, "started_at": at}

        self.deploys.mutate(deploy_id, started)
        target = (deploy.previous_sha or "no release")[:12]
        return f"converging (attempt {attempt}): rolling every host back to {target}"

    def _recover(self, deploy: Deploy, execution_status: str | None) -> str:
        what = f"its execution is {execution_status}" if execution_status else "its lease expired"
        if execution_status == EXECUTION_GONE:
            what = "its execution no longer exists (the orchestrator lost it: a restart)"
        now = iso(self.clock())
        if deploy.phase in NOTHING_SWITCHED or deploy.execution_arn is None:
            changed = False

            def errored(d: Deploy) -> None:
                nonlocal changed
                changed = lifecycle.is_active(d.status)
                if changed:
                    cause = lifecycle.failure("errored", d.phase.value, what)
                    lifecycle.end(d, DeployStatus.ERRORED, now, error=cause)

            ended = self.deploys.mutate(deploy.deploy_id, errored)
            self.handover.end(ended)
            if changed and self.notifier is not None:
                self.notifier.finished(ended)
            return f"ended errored: {what}"
        app, env = self.pipeline.environment(deploy.app, deploy.environment)
        execution = ExecutionInput(
            deploy_id=deploy.deploy_id,
            plan=recovery_plan(deploy, env),
            parameters=document_parameters(app, deploy.sha, deploy.previous_sha),
            poll_seconds=self.poll_seconds,
        )
        attempt = sum(1 for key in deploy.phases if key.startswith("recovery")) + 1
        arn = self.executions.start(f"{deploy.deploy_id}-recovery-{attempt}", execution.to_json())

        def recovering(d: Deploy) -> None:
            earlier = {"earlier": d.error} if d.error else {}
            d.error = lifecycle.failure(
                "errored", d.phase.value, f"{what}; rolling every host back", **earlier
            )
            d.phases[f"recovery-{attempt}"] = {"execution": arn, "started_at": now}
            d.execution_arn = arn
            d.updated_at = now

        self.deploys.mutate(deploy.deploy_id, recovering)
        return f"rolling back: {what}"
