"""Environment decisions: admission, release, promotion of the queued deploy."""

from __future__ import annotations

from chalicelib.domain.environment import (
    AdmissionKind,
    EnvironmentState,
    admit,
    promotable,
    release,
    start_queued,
)

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
