"""EnvironmentService: every change reads, decides, writes conditionally and retries a lost
race; ending a deploy answers with the deploy it promoted (the caller launches it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import pytest

from chalicelib.domain import lifecycle
from chalicelib.domain.environment import AdmissionKind, EnvironmentState
from chalicelib.domain.errors import ConflictError
from chalicelib.domain.model import Deploy, DeployStatus, Requester
from chalicelib.services.clock import iso
from chalicelib.services.environments import Admitted, EnvironmentService
from chalicelib.services.errors import LeaseLostError

from .fakes import FakeDeployStore, FakeStaleStateError, FixedClock

A, B = "a" * 40, "b" * 40
LEASE = 600


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store() -> FakeDeployStore:
    return FakeDeployStore()


@pytest.fixture
def service(store: FakeDeployStore, clock: FixedClock) -> EnvironmentService:
    return EnvironmentService(store, LEASE, clock, attempts=3)


def env(store: FakeDeployStore) -> EnvironmentState:
    return store.environment("shop", "production")


def record(deploy_id: str) -> Callable[[datetime, bool], Deploy]:
    def make(now: datetime, run: bool) -> Deploy:
        deploy = lifecycle.queue(
            deploy_id=deploy_id,
            app="shop",
            environment="production",
            sha=A,
            requester=Requester("ann", "api"),
            now=iso(now),
        )
        if run:
            lifecycle.start(deploy, iso(now))
        return deploy

    return make


def admit(service: EnvironmentService, deploy_id: str, sha: str = A) -> Admitted:
    return service.admit("shop", "production", sha, force=False, record=record(deploy_id))


def hold(store: FakeDeployStore, deploy_id: str, expires_at: int) -> None:
    seen = env(store)
    store.write_environment(
        seen,
        replace(seen, lock_deploy_id=deploy_id, lock_sha=B, lock_expires_at=expires_at),
    )


def test_admission_creates_the_record_in_the_same_write_as_the_lock(
    service: EnvironmentService, store: FakeDeployStore, clock: FixedClock
) -> None:
    admitted = service.admit("shop", "production", A, force=False, record=record("d-1"))
    assert admitted.decision.kind is AdmissionKind.RUN
    assert admitted.deploy is not None and admitted.deploy.status is DeployStatus.RUNNING
    assert store.get("d-1").status is DeployStatus.RUNNING
    assert (env(store).lock_deploy_id, env(store).lock_expires_at) == (
        "d-1",
        int(clock.epoch()) + LEASE,
    )
    assert store.environment_writes == 1


def test_admission_of_the_same_sha_writes_nothing_and_names_the_deploy(
    service: EnvironmentService, store: FakeDeployStore
) -> None:
    admit(service, "d-1")
    again = service.admit("shop", "production", A, force=False, record=record("d-2"))
    assert (again.deploy, again.decision.existing_deploy_id) == (None, "d-1")
    assert store.environment_writes == 1 and "d-2" not in store.deploys


def test_a_lost_race_is_decided_again_on_a_fresh_read(
    service: EnvironmentService, store: FakeDeployStore
) -> None:
    store.write_errors.append(FakeStaleStateError("changed"))
    admitted = service.admit("shop", "production", A, force=False, record=record("d-1"))
    assert admitted.deploy is not None
    assert env(store).lock_deploy_id == "d-1" and store.environment_writes == 1


def test_it_gives_up_after_its_attempts_with_a_conflict(
    service: EnvironmentService, store: FakeDeployStore
) -> None:
    store.write_errors.extend(FakeStaleStateError("changed") for _ in range(3))
    with pytest.raises(ConflictError, match="could not freeze shop/production right now"):
        service.freeze("shop", "production", "Black Friday", "ann")
    assert store.environment_writes == 0


def test_an_error_other_than_a_lost_race_is_not_retried(
    service: EnvironmentService, store: FakeDeployStore
) -> None:
    store.write_errors.extend([RuntimeError("throttled"), FakeStaleStateError("x")])
    with pytest.raises(RuntimeError):
        service.freeze("shop", "production", "Black Friday", "ann")
    assert len(store.write_errors) == 1


def test_renew_extends_the_holders_lease_from_now(
    service: EnvironmentService, store: FakeDeployStore, clock: FixedClock
) -> None:
    admit(service, "d-1")
    clock.advance(500)
    service.renew(store.get("d-1"))
    assert env(store).lock_expires_at == int(clock.epoch()) + LEASE


def test_renew_by_a_deploy_that_lost_the_lock_raises_and_writes_nothing(
    service: EnvironmentService, store: FakeDeployStore, clock: FixedClock
) -> None:
    admit(service, "d-1")
    hold(store, "d-9", int(clock.epoch()) + 5)
    writes = store.environment_writes
    with pytest.raises(LeaseLostError):
        service.renew(store.get("d-1"))
    assert store.environment_writes == writes


def test_release_answers_with_the_promoted_deploy_and_records_the_live_release(
    service: EnvironmentService, store: FakeDeployStore, clock: FixedClock
) -> None:
    admit(service, "d-1")
    admit(service, "d-2", B)
    promoted = service.release(store.get("d-1"), live_sha=A)
    assert promoted == "d-2"
    state = env(store)
    assert (state.lock_deploy_id, state.lock_sha, state.queued_deploy_id) == ("d-2", B, None)
    assert (state.current_sha, state.current_deploy_id) == (A, "d-1")
    assert store.get("d-2").status is DeployStatus.QUEUED  # the caller launches it


def test_release_by_a_deploy_that_lost_the_lock_writes_nothing(
    service: EnvironmentService, store: FakeDeployStore, clock: FixedClock
) -> None:
    admit(service, "d-1")
    hold(store, "d-9", int(clock.epoch()) + 5)
    writes = store.environment_writes
    assert service.release(store.get("d-1"), live_sha=A) is None
    assert store.environment_writes == writes and env(store).current_sha is None


def test_the_queued_deploy_is_promoted_only_when_the_lock_is_free_and_not_frozen(
    service: EnvironmentService, store: FakeDeployStore, clock: FixedClock
) -> None:
    admit(service, "d-1")
    admit(service, "d-2", B)
    assert service.promote_queued("shop", "production") is None  # d-1 holds a live lease
    clock.advance(LEASE + 1)
    service.freeze("shop", "production", "incident", "ann")
    assert service.promote_queued("shop", "production") is None
    service.unfreeze("shop", "production", "ann")
    assert service.promote_queued("shop", "production") == "d-2"
    assert env(store).lock_deploy_id == "d-2"


def test_dequeue_takes_only_the_queued_deploy_out(
    service: EnvironmentService, store: FakeDeployStore
) -> None:
    admit(service, "d-1")
    admit(service, "d-2", B)
    assert service.dequeue(store.get("d-1"), "ann") is False
    assert service.dequeue(store.get("d-2"), "ann") is True
    assert env(store).queued_deploy_id is None
    assert env(store).audit[-1]["action"] == "cancel"
