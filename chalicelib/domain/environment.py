"""An environment's shared state and the pure decisions made on it.

One item per app+environment holds the lease-based lock (who is deploying, until when), the
one queued deploy (newest wins; older queued ones are superseded), the live release, the
freeze, and which release each host reports (``fleet``; a ``diverged`` deploy's environment is
mixed and stays locked to new deploys until the fleet converges, ``domain/fleet.py``).
Every change is computed here from a snapshot and written back only if the snapshot is still
current (optimistic concurrency on the item's version), so two concurrent requests can never
both think they hold the lock or both believe they are the queued one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from .fleet import FleetState, HostRelease, fleet_state, merged


@dataclass(frozen=True)
class EnvironmentState:
    app: str
    environment: str
    lock_deploy_id: str | None = None
    lock_sha: str | None = None
    lock_expires_at: int | None = None
    queued_deploy_id: str | None = None
    queued_sha: str | None = None
    current_sha: str | None = None
    current_deploy_id: str | None = None
    frozen_reason: str | None = None
    frozen_by: str | None = None
    frozen_at: str | None = None
    audit: tuple[dict[str, str], ...] = ()  # freeze/unfreeze/cancel/diverged/converged
    fleet: tuple[HostRelease, ...] = ()  # each host's last report, by name
    diverged_deploy_id: str | None = None  # set while a diverged deploy's fleet is mixed
    queued_force: bool = False  # the queued deploy was forced (it may converge a mixed fleet)
    version: int | None = None

    def holder(self, now: float) -> str | None:
        """The deploy holding a live lease, if any (an expired lease holds nothing)."""
        if self.lock_deploy_id and (self.lock_expires_at or 0) >= now:
            return self.lock_deploy_id
        return None

    @property
    def frozen(self) -> bool:
        return self.frozen_reason is not None

    @property
    def fleet_state(self) -> FleetState:
        return fleet_state(self.fleet, self.current_sha)

    @property
    def blocked(self) -> bool:
        """New deploys wait (unless forced): frozen, or a diverged fleet not converged yet."""
        return self.frozen or self.diverged_deploy_id is not None


class AdmissionKind(StrEnum):
    EXISTING = "existing"  # the same SHA is already deploying or queued: answer with that deploy
    RUN = "run"  # take the lock and start now
    QUEUE = "queue"  # wait behind the running deploy (or the freeze)


@dataclass(frozen=True)
class Admission:
    kind: AdmissionKind
    existing_deploy_id: str | None = None
    superseded_deploy_id: str | None = None  # the queued deploy this one replaces
    expired_holder: str | None = None  # a crashed deploy whose lease ran out


def admit(state: EnvironmentState, sha: str, now: float, *, force: bool = False) -> Admission:
    """Decide what a new deploy of ``sha`` does in this environment right now."""
    holder = state.holder(now)
    if holder and state.lock_sha == sha:
        return Admission(AdmissionKind.EXISTING, existing_deploy_id=holder)
    if state.queued_deploy_id and state.queued_sha == sha:
        return Admission(AdmissionKind.EXISTING, existing_deploy_id=state.queued_deploy_id)
    expired = state.lock_deploy_id if state.lock_deploy_id and not holder else None
    if holder is None and (force or not state.blocked):
        return Admission(
            AdmissionKind.RUN,
            superseded_deploy_id=state.queued_deploy_id,
            expired_holder=expired,
        )
    return Admission(
        AdmissionKind.QUEUE,
        superseded_deploy_id=state.queued_deploy_id,
        expired_holder=expired,
    )


def with_lock(
    state: EnvironmentState, deploy_id: str, sha: str, expires_at: int
) -> EnvironmentState:
    return replace(state, lock_deploy_id=deploy_id, lock_sha=sha, lock_expires_at=expires_at)


def admitted(
    state: EnvironmentState,
    admission: Admission,
    deploy_id: str,
    sha: str,
    expires_at: int,
    *,
    force: bool = False,
) -> EnvironmentState:
    """The environment after admitting ``deploy_id`` as ``admission`` decided: it takes the
    lock (and the queue empties: the queued deploy it replaces is superseded), or it becomes
    the one queued deploy."""
    if admission.kind is AdmissionKind.RUN:
        emptied = replace(state, queued_deploy_id=None, queued_sha=None, queued_force=False)
        return with_lock(emptied, deploy_id, sha, expires_at)
    if admission.kind is AdmissionKind.QUEUE:
        return replace(state, queued_deploy_id=deploy_id, queued_sha=sha, queued_force=force)
    raise ValueError("an existing deploy is the answer: nothing is admitted")


def renewed(state: EnvironmentState, deploy_id: str, expires_at: int) -> EnvironmentState | None:
    """``deploy_id``'s lease extended to ``expires_at``; None if it no longer holds the lock."""
    if state.lock_deploy_id != deploy_id:
        return None
    return replace(state, lock_expires_at=expires_at)


@dataclass(frozen=True)
class Release:
    """What ending a deploy does to its environment."""

    held: bool  # False: the lease was lost to someone else; change nothing
    promoted_deploy_id: str | None = None


def _may_start_queued(state: EnvironmentState) -> bool:
    """The queued deploy may take a free lock: not frozen, and the fleet not diverged (unless
    the queued deploy was forced: it may converge the fleet)."""
    if not state.queued_deploy_id or state.frozen:
        return False
    return state.diverged_deploy_id is None or state.queued_force


def release(state: EnvironmentState, deploy_id: str) -> Release:
    """End ``deploy_id``'s hold; the queued deploy (unless blocked) takes the lock next."""
    if state.lock_deploy_id != deploy_id:
        return Release(held=False)
    if _may_start_queued(state):
        return Release(held=True, promoted_deploy_id=state.queued_deploy_id)
    return Release(held=True)


def released(
    state: EnvironmentState,
    deploy_id: str,
    live_sha: str | None,
    expires_at: int,
    *,
    diverged: bool = False,
    at: str = "",
) -> tuple[EnvironmentState | None, str | None]:
    """The environment after ``deploy_id`` ended (None: it no longer held the lock, change
    nothing) and the queued deploy that now holds the lock (its lease to ``expires_at``).
    ``live_sha``: the release every host now runs, when the deploy changed it. ``diverged``:
    the deploy ended with its hosts on different releases; the environment stays blocked
    until the hosts' reports agree with its release (then it is converged again)."""
    if not release(state, deploy_id).held:
        return None, None
    new = replace(state, lock_deploy_id=None, lock_sha=None, lock_expires_at=None)
    if live_sha:
        new = replace(new, current_sha=live_sha, current_deploy_id=deploy_id)
    if diverged and new.diverged_deploy_id != deploy_id:
        new = replace(new, diverged_deploy_id=deploy_id)
        new = audited(new, at=at, by="roadie", action="diverged", deploy_id=deploy_id)
    new = settled(new, at)
    promoted = new.queued_deploy_id if _may_start_queued(new) else None
    if promoted:
        new = start_queued(new, expires_at)
    return new, promoted


def settled(state: EnvironmentState, at: str) -> EnvironmentState:
    """A diverged environment whose hosts now all report its release is converged again
    (audited); any other state is returned as is."""
    if state.diverged_deploy_id is None or state.fleet_state is FleetState.MIXED:
        return state
    new = replace(state, diverged_deploy_id=None)
    return audited(
        new,
        at=at,
        by="roadie",
        action="converged",
        deploy_id=state.diverged_deploy_id,
        sha=state.current_sha or "",
    )


def reported(
    state: EnvironmentState, reports: tuple[HostRelease, ...], keep: tuple[str, ...]
) -> EnvironmentState:
    """``state`` with the hosts' new reports (``keep``: the fleet's hosts now)."""
    return replace(state, fleet=merged(state.fleet, reports, keep))


def converging(
    state: EnvironmentState, deploy_id: str, now: float, expires_at: int
) -> EnvironmentState | None:
    """The diverged deploy takes the free lock for a convergence attempt (its rollback runs
    again); None if the environment is not diverged by it or someone holds the lock."""
    if state.diverged_deploy_id != deploy_id or state.holder(now) is not None:
        return None
    return with_lock(state, deploy_id, "", expires_at)


def start_queued(state: EnvironmentState, expires_at: int) -> EnvironmentState:
    """The queued deploy takes the lock (its lease running to ``expires_at``)."""
    assert state.queued_deploy_id is not None, "nothing is queued"
    new = with_lock(state, state.queued_deploy_id, state.queued_sha or "", expires_at)
    return replace(new, queued_deploy_id=None, queued_sha=None, queued_force=False)


AUDIT_KEEP = 50


def audited(state: EnvironmentState, **event: str) -> EnvironmentState:
    """``state`` with one more audit entry (the last ``AUDIT_KEEP`` are kept)."""
    return replace(state, audit=(*state.audit, dict(event))[-AUDIT_KEEP:])


def promotable(state: EnvironmentState, now: float) -> str | None:
    """The queued deploy that may start now (lock free or expired, not blocked)."""
    if state.holder(now) is None and _may_start_queued(state):
        return state.queued_deploy_id
    return None


def dequeued(state: EnvironmentState, deploy_id: str, by: str, at: str) -> EnvironmentState | None:
    """The queue emptied of ``deploy_id`` (cancelled by ``by``); None if it is not queued here."""
    if state.queued_deploy_id != deploy_id:
        return None
    new = replace(state, queued_deploy_id=None, queued_sha=None, queued_force=False)
    return audited(new, at=at, by=by, action="cancel", deploy_id=deploy_id)


def frozen(state: EnvironmentState, reason: str, by: str, at: str) -> EnvironmentState:
    new = replace(state, frozen_reason=reason, frozen_by=by, frozen_at=at)
    return audited(new, at=at, by=by, action="freeze", reason=reason)


def thawed(state: EnvironmentState, by: str, at: str) -> EnvironmentState:
    new = replace(state, frozen_reason=None, frozen_by=None, frozen_at=None)
    return audited(new, at=at, by=by, action="unfreeze")
