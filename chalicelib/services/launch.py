"""Starting rollouts and handing an environment on.

``launch`` plans a lock-holding deploy against the fleet as it is now, records the plan and
starts its execution; a deploy that cannot start ends ``errored``. ``end`` releases the
environment after a deploy and launches the queued deploy that takes the lock; ``start_queued``
does the same for a free environment. The rollout and the reconciler reach these through the
``Handover`` port.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..domain import lifecycle
from ..domain.contract import ExecutionInput
from ..domain.errors import ConflictError, PlanningError, RoadieError
from ..domain.model import Deploy, DeployStatus
from ..domain.pipeline import AppConfig, EnvironmentConfig, PipelineConfig
from ..domain.rollout import RolloutPlan, plan_rollout
from .clock import iso, utcnow
from .environments import EnvironmentService
from .ports import DeployNotifier, DeployStore, HostFinder, Orchestrator


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


@dataclass
class Launcher:
    pipeline: PipelineConfig
    deploys: DeployStore
    fleet: HostFinder
    executions: Orchestrator
    environments: EnvironmentService
    poll_seconds: int
    clock: Callable[[], datetime] = utcnow
    notifier: DeployNotifier | None = None  # tells the commit and chat (None: nobody)

    def plan(self, env: EnvironmentConfig) -> RolloutPlan:
        """The rollout of ``env``'s fleet as it is now; ``ConflictError`` if it has none."""
        hosts = self.fleet.hosts(env.host_tags)
        try:
            return plan_rollout(hosts, env.policy)
        except PlanningError as exc:
            raise ConflictError(f"cannot plan a rollout: {exc}") from exc

    def launch(self, deploy_id: str, plan: RolloutPlan | None = None) -> Deploy:
        """Start the rollout of a lock-holding deploy (``plan``: one the caller made moments
        ago, so the fleet is not listed twice). A queued deploy starts running here."""
        deploy = self.deploys.get(deploy_id)
        app_config, env_config = self.pipeline.environment(deploy.app, deploy.environment)
        if plan is None:
            try:
                plan = self.plan(env_config)
            except ConflictError as exc:
                return self._fail_to_start(deploy_id, exc)
        previous = self.environments.state(deploy.app, deploy.environment).current_sha
        execution = ExecutionInput(
            deploy_id=deploy_id,
            plan=plan,
            parameters=document_parameters(app_config, deploy.sha, previous),
            poll_seconds=self.poll_seconds,
        )
        now = iso(self.clock())

        def planned(d: Deploy) -> None:
            if d.status is DeployStatus.QUEUED:
                lifecycle.start(d, now)
            d.previous_sha = previous
            d.step_count = len(plan.steps)
            d.host_count = len(plan.hosts)
            d.batch_size = plan.batch_size
            d.migration_host = plan.migration_host.instance_id if plan.migration_host else None
            d.plan = plan.to_json()
            d.updated_at = now

        self.deploys.mutate(deploy_id, planned)
        try:
            arn = self.executions.start(deploy_id, execution.to_json())
        except RoadieError as exc:
            return self._fail_to_start(deploy_id, exc)

        def started(d: Deploy) -> None:
            d.execution_arn = arn

        deploy = self.deploys.mutate(deploy_id, started)
        if self.notifier is not None:
            self.notifier.started(deploy)
        return deploy

    def _fail_to_start(self, deploy_id: str, exc: Exception) -> Deploy:
        now = iso(self.clock())
        cause = lifecycle.failure("errored", "starting", f"could not start the rollout: {exc}")
        changed = False

        def errored(d: Deploy) -> None:
            nonlocal changed
            changed = lifecycle.is_active(d.status)
            if changed:
                lifecycle.end(d, DeployStatus.ERRORED, now, error=cause)

        ended = self.deploys.mutate(deploy_id, errored)
        self.end(ended)
        if changed:
            self.notify_end(ended)
        return self.deploys.get(deploy_id)

    def notify_end(self, deploy: Deploy) -> None:
        """Tell the commit and chat how ``deploy`` ended (once: callers call it on the change)."""
        if self.notifier is not None:
            self.notifier.finished(deploy)

    def end(self, deploy: Deploy, *, live_sha: str | None = None) -> None:
        """Release the environment after ``deploy`` ended; launch the queued deploy, if any.
        ``live_sha``: the release every host now runs, when the deploy changed it."""
        promoted = self.environments.release(deploy, live_sha=live_sha)
        if promoted:
            self.launch(promoted)

    def hold_for_convergence(self, deploy: Deploy) -> bool:
        """The diverged ``deploy`` takes the free lock for a convergence attempt."""
        return self.environments.hold_for_convergence(deploy)

    def start_queued(self, app: str, environment: str) -> str | None:
        """Launch the queued deploy if the lock is free (or expired) and nothing is frozen."""
        promoted = self.environments.promote_queued(app, environment)
        if promoted:
            self.launch(promoted)
        return promoted

    def expire(self, deploy_id: str) -> None:
        """A deploy whose lease ran out without renewal: stop what is left of it."""
        deploy = self.deploys.get(deploy_id)
        if not lifecycle.is_active(deploy.status):
            return
        if deploy.execution_arn and self.executions.status(deploy.execution_arn) == "RUNNING":
            self.executions.stop(deploy.execution_arn, "lease expired")
        now = iso(self.clock())
        changed = False

        def expired(d: Deploy) -> None:
            nonlocal changed
            changed = lifecycle.is_active(d.status)
            if changed:
                cause = lifecycle.failure(
                    "errored", d.phase.value, "its lease expired (no progress)"
                )
                lifecycle.end(d, DeployStatus.ERRORED, now, error=cause)

        ended = self.deploys.mutate(deploy_id, expired)
        if changed:
            self.notify_end(ended)
