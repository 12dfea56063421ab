"""Requesting deploys and reading their records."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import AppConfig, EnvironmentConfig, PipelineConfig
from ..domain.errors import ConflictError, PlanningError, RoadieError, ValidationError
from ..domain.model import (
    Deploy,
    DeployStatus,
    HostResult,
    Phase,
    Requester,
    is_sha,
)
from ..domain.rollout import RolloutPlan, plan_rollout
from .clock import iso, utcnow
from .ports import DeployStore, HostFinder, HostResultStore, Orchestrator, RefResolver

MAX_REASON = 500


def new_deploy_id(now: datetime) -> str:
    """Sortable by time, unique, and a valid Step Functions execution name."""
    return f"d-{now.strftime('%Y%m%dt%H%M%S')}-{secrets.token_hex(4)}"


def document_parameters(app: AppConfig, sha: str, previous_sha: str | None) -> dict[str, str]:
    """The SSM document parameters shared by every step (phase and timeout are added later)."""
    return {
        "app": app.name,
        "sha": sha,
        "previousSha": previous_sha or "",
        "sourceKind": app.source.kind,
        "sourceUrl": app.source.url,
        "deployRoot": app.deploy_root,
        "buildCommand": app.commands["build"],
        "migrateCommand": app.commands["migrate"],
        "postMigrateCommand": app.commands["post_migrate"],
        "healthCommand": app.commands["health"],
        "restartCommand": app.commands["restart"],
        "keepReleases": str(app.keep_releases),
    }


def plan_summary(plan: RolloutPlan) -> dict[str, Any]:
    return {
        "hosts": [h.instance_id for h in plan.hosts],
        "host_names": {h.instance_id: h.name for h in plan.hosts if h.name},
        "migration_host": plan.migration_host.instance_id if plan.migration_host else None,
        "batch_size": plan.batch_size,
        "batches": [list(b) for b in plan.switch_batches],
        "steps": [
            {"command": s.command.value, "batch": s.batch, "hosts": len(s.hosts)}
            for s in plan.steps
        ],
    }


@dataclass
class DeployService:
    pipeline: PipelineConfig
    deploys: DeployStore
    host_results: HostResultStore
    fleet: HostFinder
    executions: Orchestrator
    refs: RefResolver
    poll_seconds: int
    lease_seconds: int
    clock: Callable[[], datetime] = utcnow

    def request(
        self,
        *,
        app: str,
        environment: str,
        requester: Requester,
        sha: str | None = None,
        ref: str | None = None,
        reason: str = "",
        trigger: dict[str, Any] | None = None,
    ) -> Deploy:
        """Record a deploy, take the environment's lock and start its rollout."""
        app_config, env_config = self.pipeline.environment(app, environment)
        if len(reason) > MAX_REASON:
            raise ValidationError(f"reason is longer than {MAX_REASON} characters")
        sha = self._resolve(app_config, sha, ref)
        plan = self._plan(env_config)
        now = self.clock()
        deploy_id = new_deploy_id(now)
        previous = self.deploys.current_release(app, environment)
        deploy = Deploy(
            deploy_id=deploy_id,
            app=app,
            environment=environment,
            sha=sha,
            ref=ref or "",
            reason=reason,
            requested_by=requester.name,
            requested_via=requester.via,
            created_at=iso(now),
            updated_at=iso(now),
            status=DeployStatus.RUNNING,
            phase=Phase.PENDING,
            previous_sha=previous,
            step_count=len(plan.steps),
            host_count=len(plan.hosts),
            batch_size=plan.batch_size,
            migration_host=plan.migration_host.instance_id if plan.migration_host else None,
            plan=plan_summary(plan),
            trigger=trigger or {},
        )
        self.deploys.create_locked(deploy, self.lease_seconds)
        execution_input = {
            "deploy_id": deploy_id,
            "cursor": 0,
            "poll_seconds": self.poll_seconds,
            "plan": plan.to_dict(),
            "parameters": document_parameters(app_config, sha, previous),
        }
        try:
            arn = self.executions.start(deploy_id, execution_input)
        except RoadieError as exc:
            self._fail_to_start(deploy_id, exc)
            raise

        def started(d: Deploy) -> None:
            d.execution_arn = arn
            d.started_at = iso(self.clock())

        return self.deploys.mutate(deploy_id, started)

    def _resolve(self, app: AppConfig, sha: str | None, ref: str | None) -> str:
        if sha:
            if not is_sha(sha):
                raise ValidationError("sha must be 40 lower-case hex characters")
            return sha
        if not ref:
            raise ValidationError("give either sha or ref")
        if app.source.kind != "git":
            raise ValidationError(f"app {app.name} deploys artifacts by sha; give sha, not ref")
        return self.refs.resolve(app.source.url, ref)

    def _plan(self, env: EnvironmentConfig) -> RolloutPlan:
        hosts = self.fleet.hosts(env.host_tags)
        try:
            return plan_rollout(hosts, env.policy)
        except PlanningError as exc:
            raise ConflictError(f"cannot plan a rollout: {exc}") from exc

    def _fail_to_start(self, deploy_id: str, exc: Exception) -> None:
        now = iso(self.clock())

        def errored(d: Deploy) -> None:
            d.status = DeployStatus.ERRORED
            d.finished_at = now
            d.error = {"phase": "starting", "message": f"could not start the rollout: {exc}"}

        deploy = self.deploys.mutate(deploy_id, errored)
        self.deploys.release_lock(deploy, now)

    def get(self, deploy_id: str) -> tuple[Deploy, list[HostResult]]:
        deploy = self.deploys.get(deploy_id)
        return deploy, list(self.host_results.for_deploy(deploy_id))

    def list(
        self,
        *,
        app: str | None,
        environment: str | None,
        status: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Deploy], str | None]:
        if status is not None and status not in {s.value for s in DeployStatus}:
            raise ValidationError(
                f"status must be one of {', '.join(s.value for s in DeployStatus)}"
            )
        if not 1 <= limit <= 100:
            raise ValidationError("limit must be 1..100")
        if app is not None:
            self.pipeline.app(app)
        return self.deploys.list(
            app=app, environment=environment, status=status, limit=limit, cursor=cursor
        )
