"""Environment decisions: the lock and its lease, the one queued deploy, the freeze and the
live release, all on the environment's one item.

Every change is a pure decision (``domain/environment.py``) on a fresh snapshot, written only if
the snapshot is still current; a lost race reads and decides again. ``_change`` is the one
place that loop lives. Ending a deploy answers with the queued deploy it promoted: the caller
launches it (this module starts nothing).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from ..domain.environment import (
    Admission,
    AdmissionKind,
    EnvironmentState,
    admit,
    admitted,
    audited,
    converging,
    dequeued,
    frozen,
    promotable,
    released,
    renewed,
    reported,
    start_queued,
    thawed,
)
from ..domain.errors import ConflictError, StaleStateError
from ..domain.fleet import HostRelease, converged_note
from ..domain.model import Deploy, DeployStatus
from .clock import iso, utcnow
from .errors import LeaseLostError
from .ports import DeployStore

ATTEMPTS = 60  # optimistic retries on the environment item under contention


def backoff(attempt: int) -> None:
    """A short random sleep after losing a conditional write, growing with the attempts."""
    time.sleep(random.uniform(0.005, min(0.02 * (attempt + 1), 0.25)))


class Write(NamedTuple):
    """A decision to write: the environment's new state, and a deploy record to create in the
    same transaction (admission)."""

    state: EnvironmentState
    new_deploy: Deploy | None = None


@dataclass(frozen=True)
class Admitted:
    """What admission did: ``decision`` says how; ``deploy`` is the new record (None when the
    same SHA's deploy, ``decision.existing_deploy_id``, is the answer)."""

    decision: Admission
    deploy: Deploy | None


@dataclass
class EnvironmentService:
    store: DeployStore
    lease_seconds: int
    clock: Callable[[], datetime] = utcnow
    attempts: int = ATTEMPTS

    def state(self, app: str, environment: str) -> EnvironmentState:
        return self.store.environment(app, environment)

    def _expiry(self, now: datetime) -> int:
        return int(now.timestamp()) + self.lease_seconds

    def _change(
        self,
        app: str,
        environment: str,
        decide: Callable[[EnvironmentState, datetime], Write | None],
        what: str,
    ) -> EnvironmentState:
        """Read the environment, ``decide`` (None: write nothing) and write the decision only
        if nobody changed the item meanwhile; on a lost race, read and decide again. The clock
        is read after the item, so a decision never predates what it saw."""
        for attempt in range(self.attempts):
            seen = self.store.environment(app, environment)
            write = decide(seen, self.clock())
            if write is None:
                return seen
            try:
                self.store.write_environment(seen, write.state, new_deploy=write.new_deploy)
            except StaleStateError:
                backoff(attempt)
                continue
            return write.state
        raise ConflictError(f"could not {what} {app}/{environment} right now; retry")

    def admit(
        self,
        app: str,
        environment: str,
        sha: str,
        *,
        force: bool,
        record: Callable[[datetime, bool], Deploy],
    ) -> Admitted:
        """Admit a deploy of ``sha``: it takes the lock (run now), waits in the queue, or the
        same SHA's deploy there is the answer. ``record(now, run)`` makes the new deploy's
        record, created in the same write as the environment's change."""
        outcome: Admitted | None = None

        def decide(seen: EnvironmentState, now: datetime) -> Write | None:
            nonlocal outcome
            decision = admit(seen, sha, now.timestamp(), force=force)
            if decision.kind is AdmissionKind.EXISTING:
                outcome = Admitted(decision, None)
                return None
            deploy = record(now, decision.kind is AdmissionKind.RUN)
            outcome = Admitted(decision, deploy)
            new = admitted(seen, decision, deploy.deploy_id, sha, self._expiry(now), force=force)
            return Write(new, deploy)

        self._change(app, environment, decide, "admit a deploy to")
        assert outcome is not None, "decide runs at least once"
        return outcome

    def renew(self, deploy: Deploy) -> None:
        """Extend the lease of a running rollout; ``LeaseLostError`` if it is no longer held."""

        def decide(seen: EnvironmentState, now: datetime) -> Write:
            new = renewed(seen, deploy.deploy_id, self._expiry(now))
            if new is None:
                raise LeaseLostError(f"deploy {deploy.deploy_id} lost its environment lock")
            return Write(new)

        self._change(deploy.app, deploy.environment, decide, "renew the lease of")

    def release(self, deploy: Deploy, *, live_sha: str | None = None) -> str | None:
        """Release the lock ``deploy`` held (nothing, if it lost it); the queued deploy, unless
        frozen or the fleet diverged, takes it. Returns that deploy's id: the caller launches
        it. A ``diverged`` deploy leaves the environment diverged; once the hosts' reports
        agree with its release, the diverged deploy's record notes the convergence."""
        promoted: str | None = None
        converged: str | None = None

        def decide(seen: EnvironmentState, now: datetime) -> Write | None:
            nonlocal promoted, converged
            new, promoted = released(
                seen,
                deploy.deploy_id,
                live_sha,
                self._expiry(now),
                diverged=deploy.status is DeployStatus.DIVERGED,
                at=iso(now),
            )
            if new is None:
                return None
            gone = seen.diverged_deploy_id and new.diverged_deploy_id is None
            converged = seen.diverged_deploy_id if gone else None
            return Write(new)

        state = self._change(deploy.app, deploy.environment, decide, "release")
        if converged:
            at, sha = iso(self.clock()), state.current_sha or ""

            def note(d: Deploy) -> None:
                d.fleet = converged_note(d.fleet, at, sha, by=deploy.deploy_id)
                d.updated_at = at

            self.store.mutate(converged, note)
        return promoted

    def report(
        self, app: str, environment: str, reports: Sequence[HostRelease], keep: Sequence[str]
    ) -> None:
        """Record which release each host said it runs (FleetLedger)."""

        def decide(seen: EnvironmentState, now: datetime) -> Write | None:
            new = reported(seen, tuple(reports), tuple(keep))
            return Write(new) if new.fleet != seen.fleet else None

        self._change(app, environment, decide, "record the fleet of")

    def hold_for_convergence(self, deploy: Deploy) -> bool:
        """The diverged ``deploy`` takes the free lock while its rollback is retried."""
        held = False

        def decide(seen: EnvironmentState, now: datetime) -> Write | None:
            nonlocal held
            new = converging(seen, deploy.deploy_id, now.timestamp(), self._expiry(now))
            held = new is not None
            return Write(new) if new is not None else None

        self._change(deploy.app, deploy.environment, decide, "converge")
        return held

    def promote_queued(self, app: str, environment: str) -> str | None:
        """The queued deploy takes the lock if it is free (or expired) and nothing is frozen.
        Returns its id: the caller launches it."""
        promoted: str | None = None

        def decide(seen: EnvironmentState, now: datetime) -> Write | None:
            nonlocal promoted
            promoted = promotable(seen, now.timestamp())
            return Write(start_queued(seen, self._expiry(now))) if promoted else None

        self._change(app, environment, decide, "start the queued deploy of")
        return promoted

    def dequeue(self, deploy: Deploy, by: str) -> bool:
        """Take ``deploy`` out of the queue (audited); False if it is not the queued one."""
        done = False

        def decide(seen: EnvironmentState, now: datetime) -> Write | None:
            nonlocal done
            new = dequeued(seen, deploy.deploy_id, by, iso(now))
            done = new is not None
            return Write(new) if new is not None else None

        self._change(deploy.app, deploy.environment, decide, "cancel a deploy of")
        return done

    def audit_cancel(self, deploy: Deploy, by: str) -> None:
        """Audit ``by``'s cancel of the running ``deploy`` (a queued one: ``dequeue``)."""
        self._change(
            deploy.app,
            deploy.environment,
            lambda seen, now: Write(
                audited(seen, at=iso(now), by=by, action="cancel", deploy_id=deploy.deploy_id)
            ),
            "audit a cancel in",
        )

    def freeze(self, app: str, environment: str, reason: str, by: str) -> EnvironmentState:
        """Stop deploys (requests are recorded and queued) until unfrozen."""
        return self._change(
            app,
            environment,
            lambda seen, now: Write(frozen(seen, reason, by, iso(now))),
            "freeze",
        )

    def unfreeze(self, app: str, environment: str, by: str) -> EnvironmentState:
        """Lift the freeze (the caller then starts what was queued meanwhile)."""
        return self._change(
            app, environment, lambda seen, now: Write(thawed(seen, by, iso(now))), "unfreeze"
        )
