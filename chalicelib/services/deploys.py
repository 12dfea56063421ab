"""Requesting deploys and reading their records."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..config import AppConfig, EnvironmentConfig, PipelineConfig
from ..domain.environment import (
    AdmissionKind,
    EnvironmentState,
    admit,
    audited,
    promotable,
    release,
    start_queued,
    with_lock,
)
from ..domain.errors import ConflictError, PlanningError, RoadieError, ValidationError
from ..domain.lifecycle import check_transition
from ..domain.model import (
    Deploy,
    DeployStatus,
    HostResult,
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


def _backoff(attempt: int) -> None:
    """A short random sleep after losing a conditional write, growing with the attempts."""
    time.sleep(random.uniform(0.005, min(0.02 * (attempt + 1), 0.25)))


class LeaseLostError(RoadieError):
    """This rollout no longer holds its environment's lock (its lease ran out)."""

    code = "lease_lost"


ADMISSION_ATTEMPTS = 60  # optimistic retries on the environment item under contention


@dataclass
class DeployService:
    """Admission (run now, queue, or answer with the same SHA's deploy), launch and release.

    Exactly one deploy holds an environment's lock at a time; at most one waits in its queue
    (a newer request supersedes it); ending a deploy hands the lock to the queued one.
    """

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
        force: bool = False,
        rollback_of: str | None = None,
    ) -> tuple[Deploy, bool]:
        """Record a deploy and start or queue it. Returns (deploy, created): ``created`` is
        False when the same SHA is already deploying or queued there (that deploy is returned).
        """
        app_config, env_config = self.pipeline.environment(app, environment)
        if len(reason) > MAX_REASON:
            raise ValidationError(f"reason is longer than {MAX_REASON} characters")
        sha = self._resolve(app_config, sha, ref)
        plan = self._plan(env_config)  # fail fast (409) when the fleet cannot be planned
        for attempt in range(ADMISSION_ATTEMPTS):
            now = self.clock()
            seen = self.deploys.environment(app, environment)
            decision = admit(seen, sha, now.timestamp(), force=force)
            if decision.kind is AdmissionKind.EXISTING:
                assert decision.existing_deploy_id is not None
                return self.deploys.get(decision.existing_deploy_id), False
            deploy_id = new_deploy_id(now)
            run = decision.kind is AdmissionKind.RUN
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
                status=DeployStatus.RUNNING if run else DeployStatus.QUEUED,
                trigger=trigger or {},
                force=force,
                rollback_of=rollback_of,
            )
            if run:
                new_state = with_lock(
                    replace(seen, queued_deploy_id=None, queued_sha=None),
                    deploy_id,
                    sha,
                    int(now.timestamp()) + self.lease_seconds,
                )
            else:
                new_state = replace(seen, queued_deploy_id=deploy_id, queued_sha=sha)
            try:
                self.deploys.write_environment(seen, new_state, new_deploy=deploy)
            except ConflictError:
                _backoff(attempt)
                continue
            if decision.superseded_deploy_id:
                self._supersede(decision.superseded_deploy_id, deploy_id)
            if decision.expired_holder:
                self._expire(decision.expired_holder)
            if run:
                return self.launch(deploy_id, plan), True
            return deploy, True
        raise ConflictError(f"{app}/{environment} is too busy right now; retry")

    def launch(self, deploy_id: str, plan: RolloutPlan | None = None) -> Deploy:
        """Start the rollout of a lock-holding deploy, planned against the fleet as it is now
        (``plan``: one the caller made moments ago, so the fleet is not listed twice)."""
        deploy = self.deploys.get(deploy_id)
        app_config, env_config = self.pipeline.environment(deploy.app, deploy.environment)
        if plan is None:
            try:
                plan = self._plan(env_config)
            except ConflictError as exc:
                return self._fail_to_start(deploy_id, exc)
        previous = self.deploys.environment(deploy.app, deploy.environment).current_sha
        execution_input = {
            "deploy_id": deploy_id,
            "cursor": 0,
            "poll_seconds": self.poll_seconds,
            "plan": plan.to_dict(),
            "parameters": document_parameters(app_config, deploy.sha, previous),
        }
        now = iso(self.clock())

        def planned(d: Deploy) -> None:
            if d.status is DeployStatus.QUEUED:
                check_transition(d.status, DeployStatus.RUNNING)
                d.status = DeployStatus.RUNNING
            d.previous_sha = previous
            d.step_count = len(plan.steps)
            d.host_count = len(plan.hosts)
            d.batch_size = plan.batch_size
            d.migration_host = plan.migration_host.instance_id if plan.migration_host else None
            d.plan = plan_summary(plan)
            d.started_at = now
            d.updated_at = now

        self.deploys.mutate(deploy_id, planned)
        try:
            arn = self.executions.start(deploy_id, execution_input)
        except RoadieError as exc:
            return self._fail_to_start(deploy_id, exc)

        def started(d: Deploy) -> None:
            d.execution_arn = arn

        return self.deploys.mutate(deploy_id, started)

    def _fail_to_start(self, deploy_id: str, exc: Exception) -> Deploy:
        now = iso(self.clock())

        def errored(d: Deploy) -> None:
            d.status = DeployStatus.ERRORED
            d.finished_at = now
            d.updated_at = now
            d.error = {"phase": "starting", "message": f"could not start the rollout: {exc}"}

        deploy = self.deploys.mutate(deploy_id, errored)
        self.end(deploy)
        return self.deploys.get(deploy_id)

    def end(self, deploy: Deploy, *, live_sha: str | None = None) -> None:
        """Release the environment after ``deploy`` finished; start the queued deploy, if any.

        ``live_sha`` is the release every host now runs, when the deploy changed it.
        """
        promoted: str | None = None

        def released(seen: EnvironmentState) -> EnvironmentState | None:
            nonlocal promoted
            decision = release(seen, deploy.deploy_id)
            promoted = decision.promoted_deploy_id
            if not decision.held:
                return None  # the lease went to someone else: change nothing
            new = replace(seen, lock_deploy_id=None, lock_sha=None, lock_expires_at=None)
            if live_sha:
                new = replace(new, current_sha=live_sha, current_deploy_id=deploy.deploy_id)
            if promoted:
                new = start_queued(new, int(self.clock().timestamp()) + self.lease_seconds)
            return new

        self._change_environment(deploy.app, deploy.environment, released, "release")
        if promoted:
            self.launch(promoted)

    def renew(self, deploy: Deploy) -> None:
        """Extend the lease of a running rollout; ``LeaseLostError`` if it is no longer held."""

        def renewed(seen: EnvironmentState) -> EnvironmentState:
            if seen.lock_deploy_id != deploy.deploy_id:
                raise LeaseLostError(f"deploy {deploy.deploy_id} lost its environment lock")
            expires = int(self.clock().timestamp()) + self.lease_seconds
            return replace(seen, lock_expires_at=expires)

        self._change_environment(deploy.app, deploy.environment, renewed, "renew the lease of")

    def _change_environment(
        self,
        app: str,
        environment: str,
        change: Callable[[EnvironmentState], EnvironmentState | None],
        what: str,
    ) -> EnvironmentState:
        """Read the environment, apply ``change`` (None: write nothing) and write the result
        only if nobody changed the item meanwhile; on a lost race, read and decide again."""
        for attempt in range(ADMISSION_ATTEMPTS):
            seen = self.deploys.environment(app, environment)
            new = change(seen)
            if new is None:
                return seen
            try:
                self.deploys.write_environment(seen, new)
            except ConflictError:
                _backoff(attempt)
                continue
            return new
        raise ConflictError(f"could not {what} {app}/{environment} right now; retry")

    def cancel(self, deploy_id: str, by: Requester) -> Deploy:
        """Cancel a queued deploy at once; ask a running one to stop at its next step boundary
        (it rolls switched hosts back and ends ``cancelled``)."""
        for attempt in range(ADMISSION_ATTEMPTS):
            deploy = self.deploys.get(deploy_id)
            now = self.clock()
            if deploy.status is DeployStatus.RUNNING:

                def ask(d: Deploy, stamp: str = iso(now)) -> None:
                    if d.status is DeployStatus.RUNNING and not d.cancel_requested_by:
                        d.cancel_requested_by = by.name
                        d.updated_at = stamp

                return self.deploys.mutate(deploy_id, ask)
            if deploy.status is not DeployStatus.QUEUED:
                raise ConflictError(f"deploy {deploy_id} already ended as {deploy.status.value}")
            seen = self.deploys.environment(deploy.app, deploy.environment)
            if seen.queued_deploy_id != deploy_id:
                continue  # promoted or superseded meanwhile: look again
            new = audited(
                replace(seen, queued_deploy_id=None, queued_sha=None),
                at=iso(now),
                by=by.name,
                action="cancel",
                deploy_id=deploy_id,
            )
            try:
                self.deploys.write_environment(seen, new)
            except ConflictError:
                _backoff(attempt)
                continue

            def cancelled(d: Deploy, stamp: str = iso(now)) -> None:
                d.status = DeployStatus.CANCELLED
                d.cancel_requested_by = by.name
                d.finished_at = d.updated_at = stamp

            return self.deploys.mutate(deploy_id, cancelled)
        raise ConflictError(f"could not cancel {deploy_id} right now; retry")

    def rollback(
        self, deploy_id: str, by: Requester, *, reason: str = "", force: bool = False
    ) -> tuple[Deploy, bool]:
        """Deploy the release that was live before ``deploy_id``: the newest earlier successful
        deploy of that environment with another SHA, through the normal path."""
        target = self.deploys.get(deploy_id)
        good = self._previous_good(target)
        if good is None:
            raise ConflictError(
                f"no successful release of {target.app}/{target.environment} before {deploy_id}"
            )
        note = f"rollback of {deploy_id} to {good.sha[:12]} (deploy {good.deploy_id})"
        return self.request(
            app=target.app,
            environment=target.environment,
            requester=by,
            sha=good.sha,
            reason=f"{note}: {reason}" if reason else note,
            force=force,
            rollback_of=deploy_id,
        )

    def _previous_good(self, target: Deploy) -> Deploy | None:
        cursor = None
        while True:
            page, cursor = self.deploys.list(
                app=target.app,
                environment=target.environment,
                status=DeployStatus.SUCCEEDED.value,
                limit=100,
                cursor=cursor,
            )
            for deploy in page:
                if deploy.created_at < target.created_at and deploy.sha != target.sha:
                    return deploy
            if cursor is None:
                return None

    def environment_state(self, app: str, environment: str) -> EnvironmentState:
        self.pipeline.environment(app, environment)
        return self.deploys.environment(app, environment)

    def freeze(self, app: str, environment: str, reason: str, by: Requester) -> EnvironmentState:
        """Stop deploys (pushes are recorded and queued) until unfrozen; ``force`` overrides."""
        self.pipeline.environment(app, environment)
        if not reason.strip() or len(reason) > MAX_REASON:
            raise ValidationError(f"a freeze needs a reason of 1..{MAX_REASON} characters")

        def frozen(seen: EnvironmentState) -> EnvironmentState:
            now = iso(self.clock())
            new = replace(seen, frozen_reason=reason, frozen_by=by.name, frozen_at=now)
            return audited(new, at=now, by=by.name, action="freeze", reason=reason)

        return self._change_environment(app, environment, frozen, "freeze")

    def unfreeze(self, app: str, environment: str, by: Requester) -> EnvironmentState:
        """Lift the freeze; the newest deploy queued meanwhile starts."""
        self.pipeline.environment(app, environment)

        def thawed(seen: EnvironmentState) -> EnvironmentState:
            new = replace(seen, frozen_reason=None, frozen_by=None, frozen_at=None)
            return audited(new, at=iso(self.clock()), by=by.name, action="unfreeze")

        self._change_environment(app, environment, thawed, "unfreeze")
        self.start_queued(app, environment)
        return self.deploys.environment(app, environment)

    def start_queued(self, app: str, environment: str) -> str | None:
        """Start the queued deploy if the lock is free (or expired) and nothing is frozen."""
        promoted: str | None = None

        def promote(seen: EnvironmentState) -> EnvironmentState | None:
            nonlocal promoted
            now = self.clock().timestamp()
            promoted = promotable(seen, now)
            return start_queued(seen, int(now) + self.lease_seconds) if promoted else None

        self._change_environment(app, environment, promote, "start the queued deploy of")
        if promoted:
            self.launch(promoted)
        return promoted

    def _supersede(self, deploy_id: str, by: str) -> None:
        now = iso(self.clock())

        def superseded(d: Deploy) -> None:
            if d.status is DeployStatus.QUEUED:
                d.status = DeployStatus.SUPERSEDED
                d.superseded_by = by
                d.finished_at = now
                d.updated_at = now

        self.deploys.mutate(deploy_id, superseded)

    def _expire(self, deploy_id: str) -> None:
        """A deploy whose lease ran out without renewal: stop what is left of it."""
        deploy = self.deploys.get(deploy_id)
        if deploy.status not in (DeployStatus.RUNNING, DeployStatus.QUEUED):
            return
        if deploy.execution_arn and self.executions.status(deploy.execution_arn) == "RUNNING":
            self.executions.stop(deploy.execution_arn, "lease expired")
        now = iso(self.clock())

        def expired(d: Deploy) -> None:
            if d.status in (DeployStatus.RUNNING, DeployStatus.QUEUED):
                d.status = DeployStatus.ERRORED
                d.finished_at = now
                d.updated_at = now
                d.error = {"phase": d.phase.value, "message": "its lease expired (no progress)"}

        self.deploys.mutate(deploy_id, expired)

    def _resolve(self, app: AppConfig, sha: str | None, ref: str | None) -> str:
        if sha:
            if not is_sha(sha):
                raise ValidationError("sha must be 40 lower-case hex characters")
            return sha
        if not ref:
            raise ValidationError("give either sha or ref")
        return self.refs.resolve(app, ref)

    def _plan(self, env: EnvironmentConfig) -> RolloutPlan:
        hosts = self.fleet.hosts(env.host_tags)
        try:
            return plan_rollout(hosts, env.policy)
        except PlanningError as exc:
            raise ConflictError(f"cannot plan a rollout: {exc}") from exc

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
