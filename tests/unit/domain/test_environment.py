"""Environment decisions: admission, lease, release, promotion, cancel and freeze."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.domain.environment import (
    AdmissionKind,
    EnvironmentState,
    admit,
    admitted,
    converging,
    dequeued,
    frozen,
    promotable,
    release,
    released,
    renewed,
    settled,
    start_queued,
    thawed,
)
from chalicelib.domain.fleet import FleetState, HostRelease

A, B = "a" * 40, "b" * 40
NOW = 1_000_000.0


def busy(**extra: object) -> EnvironmentState:
    return EnvironmentState(
        "shop",
        "production",
        lock_deploy_id="d-1",
        lock_sha=A,
        lock_expires_at=int(NOW) + 60,
        **extra,  # type: ignore[arg-type]
    )


def test_a_free_environment_runs_and_a_busy_one_queues() -> None:
    assert admit(EnvironmentState("shop", "production"), A, NOW).kind is AdmissionKind.RUN
    assert admit(busy(), B, NOW).kind is AdmissionKind.QUEUE


def test_the_same_sha_running_or_queued_is_answered_with_that_deploy() -> None:
    assert admit(busy(), A, NOW).existing_deploy_id == "d-1"
    queued = busy(queued_deploy_id="d-2", queued_sha=B)
    assert admit(queued, B, NOW).existing_deploy_id == "d-2"


def test_a_newer_request_supersedes_the_queued_one() -> None:
    decision = admit(busy(queued_deploy_id="d-2", queued_sha=B), "c" * 40, NOW)
    assert (decision.kind, decision.superseded_deploy_id) == (AdmissionKind.QUEUE, "d-2")


def test_an_expired_lease_holds_nothing() -> None:
    decision = admit(busy(), B, NOW + 61)
    assert (decision.kind, decision.expired_holder) == (AdmissionKind.RUN, "d-1")


def test_a_freeze_queues_unless_forced() -> None:
    frozen = EnvironmentState("shop", "production", frozen_reason="Black Friday")
    assert admit(frozen, A, NOW).kind is AdmissionKind.QUEUE
    assert admit(frozen, A, NOW, force=True).kind is AdmissionKind.RUN


def test_release_hands_the_lock_to_the_queued_deploy_unless_frozen() -> None:
    queued = busy(queued_deploy_id="d-2", queued_sha=B)
    assert release(queued, "d-1").promoted_deploy_id == "d-2"
    assert (
        release(busy(queued_deploy_id="d-2", frozen_reason="x"), "d-1").promoted_deploy_id is None
    )
    assert release(queued, "d-9").held is False


def test_starting_the_queued_deploy_moves_it_into_the_lock() -> None:
    state = EnvironmentState("shop", "production", queued_deploy_id="d-2", queued_sha=B)
    assert promotable(state, NOW) == "d-2"
    started = start_queued(state, 123)
    assert (started.lock_deploy_id, started.lock_sha, started.lock_expires_at) == ("d-2", B, 123)
    assert started.queued_deploy_id is None and started.queued_sha is None
    assert promotable(busy(queued_deploy_id="d-2", queued_sha=B), NOW) is None


def test_admitted_to_run_takes_the_lock_and_empties_the_queue() -> None:
    seen = EnvironmentState("shop", "production", queued_deploy_id="d-2", queued_sha=B)
    decision = admit(seen, A, NOW)
    new = admitted(seen, decision, "d-3", A, 500)
    assert (new.lock_deploy_id, new.lock_sha, new.lock_expires_at) == ("d-3", A, 500)
    assert (new.queued_deploy_id, new.queued_sha) == (None, None)


def test_admitted_to_queue_becomes_the_one_queued_deploy() -> None:
    seen = busy(queued_deploy_id="d-2", queued_sha=B)
    new = admitted(seen, admit(seen, "c" * 40, NOW), "d-3", "c" * 40, 500)
    assert (new.queued_deploy_id, new.queued_sha) == ("d-3", "c" * 40)
    assert (new.lock_deploy_id, new.lock_expires_at) == ("d-1", int(NOW) + 60)


def test_an_existing_answer_admits_nothing() -> None:
    with pytest.raises(ValueError):
        admitted(busy(), admit(busy(), A, NOW), "d-3", A, 500)


def test_only_the_holder_renews_its_lease() -> None:
    renewed_state = renewed(busy(), "d-1", 999)
    assert renewed_state is not None and renewed_state.lock_expires_at == 999
    assert renewed(busy(), "d-9", 999) is None


def test_released_frees_the_lock_records_the_live_release_and_promotes() -> None:
    new, promoted = released(busy(queued_deploy_id="d-2", queued_sha=B), "d-1", A, 700)
    assert promoted == "d-2"
    assert new is not None
    assert (new.lock_deploy_id, new.lock_sha, new.lock_expires_at) == ("d-2", B, 700)
    assert (new.current_sha, new.current_deploy_id) == (A, "d-1")
    alone, nobody = released(busy(), "d-1", None, 700)
    assert nobody is None and alone is not None
    assert (alone.lock_deploy_id, alone.current_sha) == (None, None)


def test_released_by_a_deploy_that_lost_the_lock_changes_nothing() -> None:
    assert released(busy(queued_deploy_id="d-2", queued_sha=B), "d-9", A, 700) == (None, None)


def test_dequeued_removes_only_the_queued_deploy_and_audits_it() -> None:
    seen = busy(queued_deploy_id="d-2", queued_sha=B)
    new = dequeued(seen, "d-2", "ann", "t")
    assert new is not None and new.queued_deploy_id is None and new.queued_sha is None
    assert new.audit[-1] == {"at": "t", "by": "ann", "action": "cancel", "deploy_id": "d-2"}
    assert dequeued(seen, "d-1", "ann", "t") is None


def test_freeze_and_thaw_are_audited() -> None:
    cold = frozen(busy(), "Black Friday", "ann", "t1")
    assert (cold.frozen, cold.frozen_reason, cold.frozen_by, cold.frozen_at) == (
        True,
        "Black Friday",
        "ann",
        "t1",
    )
    warm = thawed(cold, "bob", "t2")
    assert not warm.frozen and warm.frozen_by is None
    assert [e["action"] for e in warm.audit] == ["freeze", "unfreeze"]


# --- a diverged fleet -------------------------------------------------------------------------


def mixed(**extra: object) -> EnvironmentState:
    """Host 1 stayed on B after d-1's rollback failed; the environment's release is A."""
    fleet = (HostRelease("i-1", B, "web-1"), HostRelease("i-2", A, "web-2"))
    return busy(current_sha=A, fleet=fleet, **extra)


def test_a_deploy_ending_diverged_leaves_the_environment_blocked_and_audited() -> None:
    new, promoted = released(
        mixed(queued_deploy_id="d-2", queued_sha=B), "d-1", None, 700, diverged=True, at="t1"
    )
    assert new is not None and promoted is None  # the queued deploy waits
    assert new.diverged_deploy_id == "d-1" and new.fleet_state is FleetState.MIXED
    assert new.lock_deploy_id is None and new.queued_deploy_id == "d-2"
    assert new.audit[-1] == {"at": "t1", "by": "roadie", "action": "diverged", "deploy_id": "d-1"}
    assert promotable(new, NOW) is None
    assert admit(new, "c" * 40, NOW).kind is AdmissionKind.QUEUE
    assert admit(new, "c" * 40, NOW, force=True).kind is AdmissionKind.RUN


def test_a_forced_deploy_queued_behind_a_convergence_attempt_may_start() -> None:
    state = mixed(diverged_deploy_id="d-1")
    decision = admit(state, "c" * 40, NOW, force=True)
    queued = admitted(state, decision, "d-3", "c" * 40, 700, force=True)
    assert queued.queued_force  # d-1's convergence attempt holds the lock: d-3 waits for it
    new, promoted = released(queued, "d-1", None, 700, diverged=True, at="t2")
    assert promoted == "d-3" and new is not None and new.lock_deploy_id == "d-3"
    assert not new.queued_force


def test_when_every_host_reports_the_release_the_environment_is_converged() -> None:
    state = mixed(diverged_deploy_id="d-1", queued_deploy_id="d-2", queued_sha=B)
    fixed = replace(state, fleet=(HostRelease("i-1", A), HostRelease("i-2", A)))
    new, promoted = released(fixed, "d-1", None, 700, diverged=True, at="t3")
    assert new is not None and new.diverged_deploy_id is None
    assert new.fleet_state is FleetState.CONVERGED
    assert new.audit[-1] == {
        "at": "t3",
        "by": "roadie",
        "action": "converged",
        "deploy_id": "d-1",
        "sha": A,
    }
    assert promoted == "d-2" and new.lock_deploy_id == "d-2"
    assert settled(mixed(), "t") == mixed()  # not diverged: nothing to settle


def test_a_convergence_attempt_takes_only_a_free_lock_of_its_own_diverged_environment() -> None:
    free = replace(mixed(diverged_deploy_id="d-1"), lock_deploy_id=None, lock_expires_at=None)
    held = converging(free, "d-1", NOW, 900)
    assert held is not None and (held.lock_deploy_id, held.lock_sha) == ("d-1", "")
    assert converging(free, "d-9", NOW, 900) is None  # not the diverged deploy
    assert converging(mixed(diverged_deploy_id="d-1"), "d-1", NOW, 900) is None  # held


def test_a_forced_deploy_that_puts_every_host_on_its_release_converges_the_fleet() -> None:
    c = "c" * 40
    state = replace(
        mixed(diverged_deploy_id="d-1"),
        lock_deploy_id="d-3",
        lock_sha=c,
        fleet=(HostRelease("i-1", c), HostRelease("i-2", c)),  # d-3's own reports
    )
    new, _ = released(state, "d-3", c, 700, at="t4")
    assert new is not None and new.current_sha == c and new.diverged_deploy_id is None
    assert new.audit[-1]["action"] == "converged" and new.audit[-1]["deploy_id"] == "d-1"
