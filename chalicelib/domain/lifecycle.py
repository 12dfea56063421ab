"""The deploy lifecycle: the transition table, the named status groups, and the only functions
that change a deploy's status or phase.

Each function checks the table (``InvalidTransitionError`` otherwise) and stamps the times, so
no caller writes ``status``, ``phase``, ``started_at`` or ``finished_at`` itself
(tests/unit/domain/test_lifecycle.py scans chalicelib/ to keep it so). Side effects (the
environment's lock, executions) belong to the services that call them.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidTransitionError
from .model import Deploy, Phase, Requester
from .model import DeployStatus as S

ACTIVE_STATUSES: frozenset[S] = frozenset({S.QUEUED, S.RUNNING})
COMPLETED_STATUSES: frozenset[S] = frozenset(set(S) - ACTIVE_STATUSES)
# Outcomes where the fleet did not end on the requested release.
UNSUCCESSFUL_STATUSES: frozenset[S] = frozenset(
    {S.FAILED, S.ERRORED, S.TIMED_OUT, S.CANCELLED, S.ROLLED_BACK, S.DIVERGED}
)

TRANSITIONS: dict[S, frozenset[S]] = {
    S.QUEUED: frozenset({S.RUNNING, S.SUPERSEDED, S.CANCELLED, S.ERRORED}),
    S.RUNNING: frozenset(
        {S.SUCCEEDED, S.FAILED, S.ERRORED, S.TIMED_OUT, S.CANCELLED, S.ROLLED_BACK, S.DIVERGED}
    ),
    **{status: frozenset() for status in COMPLETED_STATUSES},
}
# Phases a running deploy moves through as its steps are sent; ``pending`` is where it starts
# and ``done`` is set only by ending ``succeeded``.
STEP_PHASES: frozenset[Phase] = frozenset(set(Phase) - {Phase.PENDING, Phase.DONE})


def can_transition(current: S, new: S) -> bool:
    return new in TRANSITIONS[current]


def check_transition(current: S, new: S) -> None:
    """Raise ``InvalidTransitionError`` unless ``current -> new`` is in the table."""
    if not can_transition(current, new):
        raise InvalidTransitionError(f"a deploy cannot go from {current.value} to {new.value}")


def is_active(status: S) -> bool:
    return status in ACTIVE_STATUSES


def queue(
    *,
    deploy_id: str,
    app: str,
    environment: str,
    sha: str,
    requester: Requester,
    now: str,
    ref: str = "",
    reason: str = "",
    trigger: dict[str, Any] | None = None,
    force: bool = False,
    rollback_of: str | None = None,
    commit_at: str | None = None,
) -> Deploy:
    """A new deploy record: ``queued`` until ``start`` (at once when the lock is free)."""
    return Deploy(
        deploy_id=deploy_id,
        app=app,
        environment=environment,
        sha=sha,
        ref=ref,
        reason=reason,
        requested_by=requester.name,
        requested_via=requester.via,
        created_at=now,
        updated_at=now,
        trigger=dict(trigger or {}),
        force=force,
        rollback_of=rollback_of,
        commit_at=commit_at,
    )


def _move(deploy: Deploy, status: S, now: str) -> None:
    check_transition(deploy.status, status)
    deploy.status = status
    deploy.updated_at = now


def start(deploy: Deploy, now: str) -> None:
    """``queued -> running``: the deploy holds its environment's lock."""
    _move(deploy, S.RUNNING, now)
    deploy.started_at = now


def supersede(deploy: Deploy, by: str, now: str) -> None:
    """``queued -> superseded``: a newer deploy (``by``) took its place in the queue."""
    end(deploy, S.SUPERSEDED, now)
    deploy.superseded_by = by


def end(deploy: Deploy, status: S, now: str, error: dict[str, object] | None = None) -> None:
    """Move to the completed ``status``, stamping ``finished_at``; ``error`` (see ``failure``)
    replaces the record's error when given. A deploy that succeeded is in phase ``done``."""
    if status not in COMPLETED_STATUSES:
        raise InvalidTransitionError(f"{status.value} is not an end of a deploy")
    _move(deploy, status, now)
    deploy.finished_at = now
    if status is S.SUCCEEDED:
        deploy.phase = Phase.DONE
    if error is not None:
        deploy.error = error


def enter_phase(deploy: Deploy, phase: Phase, now: str) -> None:
    """A running deploy begins a step of ``phase`` (staging, switching, rolling back, ...)."""
    if deploy.status is not S.RUNNING:
        raise InvalidTransitionError(
            f"a {deploy.status.value} deploy cannot enter phase {phase.value}"
        )
    if phase not in STEP_PHASES:
        raise InvalidTransitionError(f"a deploy cannot enter phase {phase.value} by a step")
    deploy.phase = phase
    deploy.updated_at = now


def failure(kind: str, phase: str, message: str, **detail: object) -> dict[str, object]:
    """The record's ``error``: what kind of failure (``failed``, ``timed_out``, ``errored``),
    in which phase, why, and any evidence (host, exit code, output tails, an earlier error)."""
    return {"kind": kind, "phase": phase, "message": message, **detail}
