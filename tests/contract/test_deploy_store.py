"""The DeployStore contract: ``FakeDeployStore`` and ``DeployRepository`` (on moto) alike.

Deploys come into being only with an environment write (``write_environment(new_deploy=)``),
as ``EnvironmentService`` creates them; after that they change through ``mutate``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib.domain.environment import EnvironmentState
from chalicelib.domain.errors import (
    ConflictError,
    NotFoundError,
    StaleStateError,
    StorageRejectedError,
)
from chalicelib.domain.fleet import HostRelease
from chalicelib.domain.model import Deploy, DeployStatus, Phase
from chalicelib.services.ports import DeployStore
from tests.unit.services.fakes import FakeDeployStore

SHA = "a" * 40


def make_store(impl: str, max_retries: int = 8) -> DeployStore:
    if impl == "fake":
        return FakeDeployStore(max_retries=max_retries)
    from chalicelib.adapters.dynamo import DeployRepository

    return DeployRepository(max_retries=max_retries)


@pytest.fixture
def store(impl: str) -> DeployStore:
    return make_store(impl)


def deploy(
    deploy_id: str,
    *,
    app: str = "shop",
    environment: str = "production",
    created_at: str = "2024-05-01T12:00:00+00:00",
    **changes: Any,
) -> Deploy:
    return Deploy(
        deploy_id=deploy_id,
        app=app,
        environment=environment,
        sha=SHA,
        requested_by="alice",
        requested_via="api",
        created_at=created_at,
        **changes,
    )


def create(store: DeployStore, new: Deploy) -> Deploy:
    """Create ``new`` the way the services do: with a write of its environment's item."""
    seen = store.environment(new.app, new.environment)
    store.write_environment(seen, replace(seen, queued_deploy_id=new.deploy_id), new_deploy=new)
    return store.get(new.deploy_id)


# -- get, create, mutate ----------------------------------------------------------------------


def test_get_of_an_unknown_deploy_is_not_found(store: DeployStore) -> None:
    with pytest.raises(NotFoundError):
        store.get("nope")


def test_a_created_deploy_reads_back_whole_at_version_1(store: DeployStore) -> None:
    new = deploy(
        "d-1",
        ref="main",
        reason="release 7",
        status=DeployStatus.RUNNING,
        phase=Phase.SWITCHING,
        previous_sha="b" * 40,
        started_at="2024-05-01T12:00:01+00:00",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:roadie:d-1",
        step=2,
        step_count=5,
        host_count=4,
        batch_size=2,
        migration_host="i-1",
        plan={"batches": [["i-1", "i-2"], ["i-3"]], "canary": True, "ratio": 0.5},
        phases={"stage": {"status": "succeeded", "hosts": 3}},
        error={"code": "host_failed", "hosts": ["i-2"]},
        trigger={"kind": "push", "delivery": "x-1"},
        force=True,
        rollback_of="d-0",
    )
    assert create(store, new) == replace(new, version=1) == store.get("d-1")


def test_mutate_applies_the_change_and_bumps_the_version(store: DeployStore) -> None:
    create(store, deploy("d-1"))

    def start(d: Deploy) -> None:
        d.step = 1
        d.phases = {"stage": {"status": "running"}}

    changed = store.mutate("d-1", start)
    assert (changed.step, changed.version) == (1, 2)
    assert store.get("d-1") == changed


def test_mutate_of_an_unknown_deploy_is_not_found(store: DeployStore) -> None:
    with pytest.raises(NotFoundError):
        store.mutate("nope", lambda d: None)


def test_mutate_rereads_and_reapplies_its_change_after_a_concurrent_write(
    store: DeployStore,
) -> None:
    create(store, deploy("d-1"))
    calls: list[int | None] = []

    def bump_step(d: Deploy) -> None:
        calls.append(d.version)
        d.step += 1
        if len(calls) == 1:  # another writer gets in between our read and our write
            store.mutate("d-1", lambda other: setattr(other, "reason", "theirs"))

    result = store.mutate("d-1", bump_step)
    assert calls == [1, 2]
    assert (result.step, result.reason, result.version) == (1, "theirs", 3)
    assert store.get("d-1") == result


def test_mutate_gives_up_with_a_busy_conflict_when_every_write_loses(impl: str) -> None:
    store = make_store(impl, max_retries=3)
    create(store, deploy("d-1"))
    rival = make_store(impl)
    if isinstance(store, FakeDeployStore):  # two fakes share nothing: one store, two callers
        rival = store

    def always_raced(d: Deploy) -> None:
        d.step += 1
        rival.mutate("d-1", lambda other: setattr(other, "reason", f"rival {other.version}"))

    with pytest.raises(ConflictError) as raised:
        store.mutate("d-1", always_raced)
    assert raised.value.code == "busy"
    stored = store.get("d-1")
    assert (stored.step, stored.version) == (0, 4)  # only the rival's three writes landed


def test_the_returned_and_read_deploys_are_copies(store: DeployStore) -> None:
    create(store, deploy("d-1", plan={"batches": [["i-1"]]}))
    read = store.get("d-1")
    read.plan["batches"] = []
    changed = store.mutate("d-1", lambda d: None)
    changed.plan["batches"] = []
    assert store.get("d-1").plan == {"batches": [["i-1"]]}


# -- the environment item ---------------------------------------------------------------------


def test_an_environment_never_written_is_empty_at_no_version(store: DeployStore) -> None:
    assert store.environment("shop", "production") == EnvironmentState("shop", "production")


LOCKED = {
    "lock_deploy_id": "d-1",
    "lock_sha": SHA,
    "lock_expires_at": 1_714_566_000,
    "current_sha": "b" * 40,
    "current_deploy_id": "d-0",
    "frozen_reason": "incident 42",
    "frozen_by": "bob",
    "frozen_at": "2024-05-01T11:00:00+00:00",
    "audit": ({"action": "freeze", "by": "bob", "at": "2024-05-01T11:00:00+00:00"},),
}


def test_the_first_write_makes_version_1_and_reads_back_whole(store: DeployStore) -> None:
    seen = store.environment("shop", "production")
    new = replace(seen, **LOCKED)  # type: ignore[arg-type]
    store.write_environment(seen, new)
    assert store.environment("shop", "production") == replace(new, version=1)
    assert store.environment("shop", "staging") == EnvironmentState("shop", "staging")


def test_each_write_bumps_the_version_and_none_clears_a_field(store: DeployStore) -> None:
    seen = store.environment("shop", "production")
    store.write_environment(seen, replace(seen, **LOCKED))  # type: ignore[arg-type]
    seen = store.environment("shop", "production")
    released = replace(
        seen,
        lock_deploy_id=None,
        lock_sha=None,
        lock_expires_at=None,
        frozen_reason=None,
        frozen_by=None,
        frozen_at=None,
        audit=(*seen.audit, {"action": "unfreeze", "by": "carol", "at": "now"}),
    )
    store.write_environment(seen, released)
    assert store.environment("shop", "production") == replace(released, version=2)


@pytest.mark.parametrize("stale", ["older version", "never read"])
def test_a_write_from_a_stale_snapshot_is_refused_and_changes_nothing(
    store: DeployStore, stale: str
) -> None:
    first = store.environment("shop", "production")
    store.write_environment(first, replace(first, lock_deploy_id="d-1", lock_sha=SHA))
    seen = store.environment("shop", "production")
    store.write_environment(seen, replace(seen, queued_deploy_id="d-2", queued_sha=SHA))
    current = store.environment("shop", "production")
    old = seen if stale == "older version" else first
    with pytest.raises(ConflictError) as raised:
        store.write_environment(old, replace(old, lock_deploy_id="d-9"), new_deploy=deploy("d-9"))
    assert raised.value.code == "busy"
    assert store.environment("shop", "production") == current
    with pytest.raises(NotFoundError):
        store.get("d-9")


def test_two_writers_from_one_snapshot_only_the_first_wins(store: DeployStore) -> None:
    seen = store.environment("shop", "production")
    store.write_environment(seen, replace(seen, lock_deploy_id="d-1"), new_deploy=deploy("d-1"))
    with pytest.raises(ConflictError):
        store.write_environment(seen, replace(seen, lock_deploy_id="d-2"), new_deploy=deploy("d-2"))
    assert store.environment("shop", "production").lock_deploy_id == "d-1"
    with pytest.raises(NotFoundError):
        store.get("d-2")


def test_a_new_deploy_that_exists_already_refuses_the_whole_write(store: DeployStore) -> None:
    create(store, deploy("d-1", reason="first"))
    seen = store.environment("shop", "production")
    with pytest.raises(ConflictError):
        store.write_environment(
            seen, replace(seen, lock_deploy_id="d-1"), new_deploy=deploy("d-1", reason="second")
        )
    assert store.environment("shop", "production") == seen
    assert store.get("d-1").reason == "first"


def test_a_deploy_the_datastore_cannot_hold_is_refused_at_once_not_taken_for_a_race(
    store: DeployStore,
) -> None:
    # A lone surrogate is not Unicode: DynamoDB cancels the transaction with a
    # ValidationException reason, which must not read as contention (no retries, no 409).
    seen = store.environment("shop", "production")
    with pytest.raises(StorageRejectedError) as raised:
        store.write_environment(
            seen, replace(seen, lock_deploy_id="d-1"), new_deploy=deploy("d-1", reason="\ud800")
        )
    assert not isinstance(raised.value, StaleStateError)
    assert store.environment("shop", "production") == seen


def test_locked_environments_are_those_held_or_waited_for(store: DeployStore) -> None:
    writes: dict[tuple[str, str], dict[str, Any]] = {
        ("shop", "production"): {"lock_deploy_id": "d-1", "lock_sha": SHA},
        ("shop", "staging"): {"queued_deploy_id": "d-2", "queued_sha": SHA},
        ("blog", "production"): {"current_sha": SHA, "frozen_reason": "x"},
        ("blog", "staging"): {"lock_deploy_id": "d-3"},
    }
    for (app, environment), fields in writes.items():
        seen = store.environment(app, environment)
        store.write_environment(seen, replace(seen, **fields))
    seen = store.environment("blog", "staging")
    store.write_environment(seen, replace(seen, lock_deploy_id=None))  # released
    found = sorted(store.locked_environments(), key=lambda s: (s.app, s.environment))
    assert found == [
        store.environment("shop", "production"),
        store.environment("shop", "staging"),
    ]


def test_locked_environments_of_an_empty_store_is_empty(store: DeployStore) -> None:
    assert store.locked_environments() == []


def test_the_fleet_and_a_divergence_read_back_whole_and_count_as_locked(
    store: DeployStore,
) -> None:
    seen = store.environment("shop", "production")
    fleet = (
        HostRelease("i-1", "b" * 40, "web-1", "d-1", "2024-05-01T12:00:00+00:00"),
        HostRelease("i-2", "", "web-2", "d-1", "2024-05-01T12:00:01+00:00"),
    )
    new = replace(
        seen,
        current_sha=SHA,
        fleet=fleet,
        diverged_deploy_id="d-1",
        queued_deploy_id="d-2",
        queued_force=True,
    )
    store.write_environment(seen, new)
    assert store.environment("shop", "production") == replace(new, version=1)
    seen = store.environment("shop", "production")
    store.write_environment(seen, replace(seen, queued_deploy_id=None, queued_force=False))
    assert [s.diverged_deploy_id for s in store.locked_environments()] == ["d-1"]
    seen = store.environment("shop", "production")
    converged = replace(seen, diverged_deploy_id=None, fleet=())
    store.write_environment(seen, converged)
    assert store.environment("shop", "production") == replace(converged, version=3)
    assert store.locked_environments() == []


def test_a_deploys_fleet_note_reads_back(store: DeployStore) -> None:
    create(store, deploy("d-1"))
    note = {"state": "mixed", "attempts": 2, "next_try_at": None, "off_release": [{"sha": ""}]}

    def diverged(d: Deploy) -> None:
        d.fleet = dict(note)

    store.mutate("d-1", diverged)
    assert store.get("d-1").fleet == note


def test_a_deploys_notifications_read_back_and_start_empty(store: DeployStore) -> None:
    create(store, deploy("d-1"))
    assert store.get("d-1").notifications == {}

    def kept(d: Deploy) -> None:  # a GitHub deployment's id (services/notify.py)
        d.notifications = {**d.notifications, "github_deployment_id": 1234567890123}

    store.mutate("d-1", kept)
    assert store.get("d-1").notifications == {"github_deployment_id": 1234567890123}
