"""Reconciliation: no deploy can hang an environment forever.

Run on a schedule (and safe to run any time). For each environment someone holds or waits for:
- the holder already ended (a finish that never released): release, start the queued one;
- the holder's execution is no longer running (stopped, failed, timed out) while the record
  says running: if hosts may have switched, start a recovery execution that rolls every host
  back (ends ``rolled_back``, cause recorded); otherwise end it ``errored``;
- the holder's lease expired with no execution at all: end it ``errored``;
- nobody holds the lock but a deploy is queued (and not frozen): start it.
It also reports how long each active holder has held its lock (``LockAgeSeconds``), so an
alarm can catch a lock that outlives every phase timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..domain import lifecycle
from ..domain.contract import EXECUTION_GONE, ExecutionInput
from ..domain.model import Deploy, DeployStatus, Host, HostCommand, Phase
from ..domain.pipeline import EnvironmentConfig, PipelineConfig
from ..domain.rollout import RolloutPlan, Step
from .clock import iso, parse_iso, utcnow
from .launch import document_parameters
from .ports import DeployStore, Handover, Orchestrator

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
                continue
            deploy = self.deploys.get(holder)
            if not lifecycle.is_active(deploy.status):
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

    def _recover(self, deploy: Deploy, execution_status: str | None) -> str:
        what = f"its execution is {execution_status}" if execution_status else "its lease expired"
        if execution_status == EXECUTION_GONE:
            what = "its execution no longer exists (the orchestrator lost it: a restart)"
        now = iso(self.clock())
        if deploy.phase in NOTHING_SWITCHED or deploy.execution_arn is None:

            def errored(d: Deploy) -> None:
                if lifecycle.is_active(d.status):
                    cause = lifecycle.failure("errored", d.phase.value, what)
                    lifecycle.end(d, DeployStatus.ERRORED, now, error=cause)

            self.handover.end(self.deploys.mutate(deploy.deploy_id, errored))
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
