"""The audit trail and the status log lines, written where the records change.

``ObservedDeploys`` wraps the deploy store every service writes through: it sees each deploy
created, each status change (old -> new), and each entry the environment's own short history
gains (freeze, unfreeze, cancel, diverged, converged), and turns each into one log line and
one ``AuditEvent``. The services stay as they are; ``lifecycle`` stays pure.
An audit write that fails is logged and dropped: the trail never fails or stops a deploy.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..domain import correlation
from ..domain.audit import SYSTEM, AuditEvent, delivery_of, deploy_source
from ..domain.environment import EnvironmentState
from ..domain.errors import RoadieError, ValidationError
from ..domain.model import Deploy, DeployStatus
from ..domain.pipeline import PipelineConfig
from .clock import iso, utcnow
from .ports import AuditLog, DeployStore

log = logging.getLogger("roadie.audit")

_ENDED_AS = {
    DeployStatus.CANCELLED: "deploy.cancelled",
    DeployStatus.SUPERSEDED: "deploy.superseded",
}
_ENVIRONMENT_ACTIONS = {
    "freeze": "environment.lock",
    "unfreeze": "environment.unlock",
    "cancel": "deploy.cancel_requested",
    "diverged": "environment.diverged",
    "converged": "environment.converged",
}


class Observer:
    """Writes audit events (and their log lines) to an ``AuditLog``."""

    def __init__(self, trail: AuditLog, clock: Callable[[], datetime] = utcnow) -> None:
        self.trail = trail
        self.clock = clock

    def record(
        self,
        *,
        app: str,
        environment: str,
        action: str,
        principal: str,
        source: str,
        deploy_id: str | None = None,
        delivery_id: str | None = None,
        **detail: Any,
    ) -> AuditEvent:
        event = AuditEvent(
            app=app,
            environment=environment,
            at=iso(self.clock()),
            action=action,
            principal=principal,
            source=correlation.current().get(correlation.SOURCE, source),
            event_id=uuid.uuid4().hex[:16],
            deploy_id=deploy_id,
            delivery_id=delivery_id or correlation.current().get("delivery_id"),
            detail={k: v for k, v in detail.items() if v is not None},
        )
        try:
            self.trail.append(event)
        except RoadieError as exc:
            log.error("audit event not stored: %s", exc, extra={"action": action})
        return event

    def deploy(self, deploy: Deploy, action: str, principal: str, **detail: Any) -> None:
        self.record(
            app=deploy.app,
            environment=deploy.environment,
            action=action,
            principal=principal,
            source=deploy_source(deploy),
            deploy_id=deploy.deploy_id,
            delivery_id=delivery_of(deploy),
            sha=deploy.sha,
            **detail,
        )


class ObservedDeploys:
    """A ``DeployStore`` that logs and audits what passes through it to ``inner``."""

    def __init__(self, inner: DeployStore, observer: Observer) -> None:
        self.inner = inner
        self.observer = observer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, deploy_id: str) -> Deploy:
        return self.inner.get(deploy_id)

    def environment(self, app: str, environment: str) -> EnvironmentState:
        return self.inner.environment(app, environment)

    def locked_environments(self) -> list[EnvironmentState]:
        return self.inner.locked_environments()

    def list(self, **filters: Any) -> tuple[list[Deploy], str | None]:
        return self.inner.list(**filters)

    def mutate(self, deploy_id: str, change: Callable[[Deploy], None]) -> Deploy:
        before: list[Deploy] = []

        def observed(deploy: Deploy) -> None:
            before[:] = [_copy(deploy)]
            change(deploy)

        after = self.inner.mutate(deploy_id, observed)
        if before:
            self._changed(before[0], after)
        return after

    def write_environment(
        self, seen: EnvironmentState, new: EnvironmentState, *, new_deploy: Deploy | None = None
    ) -> None:
        self.inner.write_environment(seen, new, new_deploy=new_deploy)
        if new_deploy is not None:
            self._created(new_deploy)
        for entry in _added(seen.audit, new.audit):
            self._environment_entry(new, entry)

    def _created(self, deploy: Deploy) -> None:
        correlation.bind(deploy_id=deploy.deploy_id, app=deploy.app, environment=deploy.environment)
        log.info(
            "deploy %s requested: %s",
            deploy.deploy_id,
            deploy.status.value,
            extra={"status": deploy.status.value, "sha": deploy.sha, "force": deploy.force},
        )
        who = deploy.requested_by
        action = "deploy.rollback_requested" if deploy.rollback_of else "deploy.requested"
        self.observer.deploy(deploy, action, who, rollback_of=deploy.rollback_of)
        if deploy.force:
            self.observer.deploy(deploy, "deploy.forced", who, reason=deploy.reason)
        if deploy.status is DeployStatus.RUNNING:
            self.observer.deploy(deploy, "deploy.started", who)

    def _changed(self, old: Deploy, new: Deploy) -> None:
        correlation.bind(
            deploy_id=new.deploy_id,
            app=new.app,
            environment=new.environment,
            phase=new.phase.value,
            execution=new.execution_arn,
        )
        if old.status is new.status:
            if old.phase is not new.phase:
                log.info(
                    "deploy %s phase %s -> %s",
                    new.deploy_id,
                    old.phase.value,
                    new.phase.value,
                    extra={"status": new.status.value},
                )
            return
        log.info(
            "deploy %s status %s -> %s",
            new.deploy_id,
            old.status.value,
            new.status.value,
            extra={"status": new.status.value, "previous_status": old.status.value},
        )
        if new.status is DeployStatus.RUNNING:
            self.observer.deploy(new, "deploy.started", new.requested_by)
            return
        action = _ENDED_AS.get(new.status, "deploy.finished")
        principal = SYSTEM
        if new.status is DeployStatus.CANCELLED:
            principal = new.cancel_requested_by or SYSTEM
        self.observer.deploy(
            new,
            action,
            principal,
            outcome=new.status.value,
            previous_status=old.status.value,
            superseded_by=new.superseded_by,
            error=_short_error(new.error),
        )

    def _environment_entry(self, state: EnvironmentState, entry: dict[str, str]) -> None:
        what = entry.get("action", "")
        action = _ENVIRONMENT_ACTIONS.get(what, f"environment.{what}")
        by = entry.get("by", SYSTEM)
        log.info(
            "%s/%s %s by %s",
            state.app,
            state.environment,
            action,
            by,
            extra={"action": action},
        )
        self.observer.record(
            app=state.app,
            environment=state.environment,
            action=action,
            principal=by,
            source="schedule" if by == SYSTEM else "api",
            deploy_id=entry.get("deploy_id"),
            reason=entry.get("reason"),
        )


def _copy(deploy: Deploy) -> Deploy:
    return replace(deploy)


def _added(
    seen: tuple[dict[str, str], ...], new: tuple[dict[str, str], ...]
) -> list[dict[str, str]]:
    """The entries ``new`` gained over ``seen`` (the list keeps only its last entries)."""
    out: list[dict[str, str]] = []
    for entry in reversed(new):
        if entry in seen:
            break
        out.append(entry)
    return out[::-1]


def _short_error(error: Any) -> Any:
    if isinstance(error, dict):
        return {k: error[k] for k in ("kind", "message", "cause") if k in error} or None
    return error or None


# A day, or a time in the records' own format (any prefix of it from the minute on).
_SINCE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,3})?)?Z?)?")


class AuditQueries:
    """``GET /audit``: one environment's trail, newest first, paged."""

    def __init__(self, pipeline: PipelineConfig, trail: AuditLog) -> None:
        self.pipeline = pipeline
        self.trail = trail

    def page(
        self,
        app: str,
        environment: str,
        *,
        since: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[AuditEvent], str | None]:
        self.pipeline.environment(app, environment)  # NotFoundError for an unknown one
        if since is not None and not _SINCE.fullmatch(since):
            raise ValidationError(
                "since must be a UTC date or time like 2026-12-01 or 2026-12-01T08:00:00Z"
            )
        return self.trail.page(
            app,
            environment,
            since=since.rstrip("Z") if since else None,
            limit=limit,
            cursor=cursor,
        )
