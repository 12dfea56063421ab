"""Deploy requests and their records: ask for a deploy (or a rollback), cancel one, read them;
and the HTTP-facing checks of an environment's freeze.

Exactly one deploy holds an environment's lock at a time; at most one waits in its queue (a
newer request supersedes it). Those decisions are ``EnvironmentService``'s; starting a rollout
is ``Launcher``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain import dora, lifecycle
from ..domain.environment import AdmissionKind, EnvironmentState
from ..domain.errors import ConflictError, RoadieError, UnknownShaError, ValidationError
from ..domain.model import Deploy, DeployStatus, HostCommand, HostResult, Requester, is_sha
from ..domain.pipeline import AppConfig, PipelineConfig
from .clock import iso, utcnow
from .environments import EnvironmentService, backoff
from .launch import Launcher, new_deploy_id
from .ports import (
    DeployStore,
    HostCommandRunner,
    HostFinder,
    HostResultStore,
    Orchestrator,
    RefResolver,
)
from .rollout import cancel_commands

MAX_REASON = 500
CANCEL_ATTEMPTS = 60


def in_flight(deploy: Deploy) -> list[dict[str, object]]:
    """The record's entries of steps sent and not yet done, rollbacks excepted (a cancel
    never stops a rollback)."""
    return [
        entry
        for entry in deploy.phases.values()
        if entry.get("status") == "running" and entry.get("command") != HostCommand.ROLLBACK.value
    ]


def _command_ids(entry: dict[str, object]) -> list[str]:
    ids = entry.get("command_ids")
    return [str(c) for c in ids] if isinstance(ids, list) else []


@dataclass
class DeployService:
    pipeline: PipelineConfig
    deploys: DeployStore
    host_results: HostResultStore
    refs: RefResolver
    environments: EnvironmentService
    launcher: Launcher
    clock: Callable[[], datetime] = utcnow
    commands: HostCommandRunner | None = None  # None: a cancel waits for the step to end

    @classmethod
    def from_ports(
        cls,
        *,
        pipeline: PipelineConfig,
        deploys: DeployStore,
        host_results: HostResultStore,
        fleet: HostFinder,
        executions: Orchestrator,
        refs: RefResolver,
        poll_seconds: int,
        lease_seconds: int,
        clock: Callable[[], datetime] = utcnow,
        commands: HostCommandRunner | None = None,
    ) -> DeployService:
        """The service with its own environment service and launcher (the keywords the first
        version's constructor took)."""
        environments = EnvironmentService(deploys, lease_seconds, clock)
        launcher = Launcher(pipeline, deploys, fleet, executions, environments, poll_seconds, clock)
        return cls(pipeline, deploys, host_results, refs, environments, launcher, clock, commands)

    @property
    def fleet(self) -> HostFinder:
        return self.launcher.fleet

    @property
    def executions(self) -> Orchestrator:
        return self.launcher.executions

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
        sha_known: bool = False,
        commit_at: str | None = None,
    ) -> tuple[Deploy, bool]:
        """Record a deploy and start or queue it. Returns (deploy, created): ``created`` is
        False when the same SHA is already deploying or queued there (that deploy is returned).
        A ``sha`` is looked up in the app's repository first (``UnknownShaError`` if it is not
        a commit there) unless ``sha_known``: a signed push reported it, or it deployed before.
        ``commit_at`` is the head commit's time as the trigger reported it (any ISO 8601 text;
        recorded in UTC, or left out when it is not a time).
        """
        app_config, env_config = self.pipeline.environment(app, environment)
        if len(reason) > MAX_REASON:
            raise ValidationError(f"reason is longer than {MAX_REASON} characters")
        sha = self._resolve(app_config, sha, ref, sha_known=sha_known)
        plan = self.launcher.plan(env_config)  # fail fast (409) when the fleet cannot be planned
        if commit_at is None:
            commit_at = self._commit_time(app_config, sha)
        committed = dora.parse_time(commit_at)
        commit_time = iso(committed) if committed is not None else None

        def record(now: datetime, run: bool) -> Deploy:
            deploy = lifecycle.queue(
                deploy_id=new_deploy_id(now),
                app=app,
                environment=environment,
                sha=sha,
                requester=requester,
                now=iso(now),
                ref=ref or "",
                reason=reason,
                trigger=trigger,
                force=force,
                rollback_of=rollback_of,
                commit_at=commit_time,
            )
            if run:
                lifecycle.start(deploy, iso(now))
            return deploy

        admitted = self.environments.admit(app, environment, sha, force=force, record=record)
        decision, deploy = admitted.decision, admitted.deploy
        if deploy is None:
            assert decision.existing_deploy_id is not None
            return self.deploys.get(decision.existing_deploy_id), False
        if decision.superseded_deploy_id:
            self._supersede(decision.superseded_deploy_id, deploy.deploy_id)
        if decision.expired_holder:
            self.launcher.expire(decision.expired_holder)
        if decision.kind is AdmissionKind.RUN:
            return self.launcher.launch(deploy.deploy_id, plan), True
        return deploy, True

    def _supersede(self, deploy_id: str, by: str) -> None:
        now = iso(self.clock())

        def superseded(d: Deploy) -> None:
            if d.status is DeployStatus.QUEUED:
                lifecycle.supersede(d, by, now)

        self.deploys.mutate(deploy_id, superseded)

    def cancel(self, deploy_id: str, by: Requester) -> Deploy:
        """Cancel a queued deploy at once. A running one is stopped: the record says who asked
        (once, audited once), the step in flight is cancelled on its hosts (SSM CancelCommand;
        never a rollback's), and the rollout then rolls switched hosts back and ends
        ``cancelled``. A cancel between steps stops the rollout before its next step."""
        for attempt in range(CANCEL_ATTEMPTS):
            deploy = self.deploys.get(deploy_id)
            now = iso(self.clock())
            if deploy.status is DeployStatus.RUNNING:
                first = False

                def ask(d: Deploy, now: str = now) -> None:
                    nonlocal first
                    first = d.status is DeployStatus.RUNNING and not d.cancel_requested_by
                    if first:
                        d.cancel_requested_by = by.name
                        d.updated_at = now
                        for entry in in_flight(d):
                            entry["cancel_requested_at"] = now

                asked = self.deploys.mutate(deploy_id, ask)
                if first:
                    self.environments.audit_cancel(asked, by.name)
                if self.commands is not None and asked.status is DeployStatus.RUNNING:
                    for entry in in_flight(asked):
                        cancel_commands(self.commands, _command_ids(entry))
                return asked
            if deploy.status is not DeployStatus.QUEUED:
                raise ConflictError(f"deploy {deploy_id} already ended as {deploy.status.value}")
            if not self.environments.dequeue(deploy, by.name):
                # promoted or superseded meanwhile: look again once the record says which
                backoff(attempt)
                continue

            def cancelled(d: Deploy, now: str = now) -> None:
                if d.status is DeployStatus.QUEUED:
                    lifecycle.end(d, DeployStatus.CANCELLED, now)
                    d.cancel_requested_by = by.name

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
            sha_known=True,
            commit_at=good.commit_at,
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

    def dora(self, app: str, environment: str, days: int = 30) -> dora.DoraReport:
        """DORA's four keys for ``app``/``environment`` over the last ``days`` (1..365), from
        the records created in that window only (``DeployStore.window``: an index query)."""
        self.pipeline.environment(app, environment)
        if not 1 <= days <= dora.MAX_DAYS:
            raise ValidationError(f"days must be 1..{dora.MAX_DAYS}")
        now = self.clock()
        since = iso(dora.window_start(now, days))
        records = self.deploys.window(app, environment, since)
        return dora.compute(app, environment, records, now=now, days=days)

    def environment_state(self, app: str, environment: str) -> EnvironmentState:
        self.pipeline.environment(app, environment)
        return self.environments.state(app, environment)

    def freeze(self, app: str, environment: str, reason: str, by: Requester) -> EnvironmentState:
        """Stop deploys (pushes are recorded and queued) until unfrozen; ``force`` overrides."""
        self.pipeline.environment(app, environment)
        if not reason.strip() or len(reason) > MAX_REASON:
            raise ValidationError(f"a freeze needs a reason of 1..{MAX_REASON} characters")
        return self.environments.freeze(app, environment, reason, by.name)

    def unfreeze(self, app: str, environment: str, by: Requester) -> EnvironmentState:
        """Lift the freeze; the newest deploy queued meanwhile starts."""
        self.pipeline.environment(app, environment)
        self.environments.unfreeze(app, environment, by.name)
        self.launcher.start_queued(app, environment)
        return self.environments.state(app, environment)

    def _resolve(self, app: AppConfig, sha: str | None, ref: str | None, *, sha_known: bool) -> str:
        if sha:
            if not is_sha(sha):
                raise ValidationError("sha must be 40 lower-case hex characters")
            if not sha_known and self.refs.commit_exists(app, sha) is False:
                raise UnknownShaError(f"sha {sha} is not a commit of {app.repository}")
            return sha
        if not ref:
            raise ValidationError("give either sha or ref")
        return self.refs.resolve(app, ref)

    def _commit_time(self, app: AppConfig, sha: str) -> str | None:
        """The source's time of ``sha`` for DORA's lead time; never a reason to refuse."""
        try:
            return self.refs.commit_time(app, sha)
        except RoadieError:
            return None

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
