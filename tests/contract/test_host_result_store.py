"""The HostResultStore contract: ``FakeHostResultStore`` and ``HostResultRepository`` (moto)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.domain.model import HostCommand, HostResult, HostStatus
from chalicelib.services.ports import HostResultStore
from tests.unit.services.fakes import FakeHostResultStore


@pytest.fixture
def store(impl: str) -> HostResultStore:
    if impl == "fake":
        return FakeHostResultStore()
    from chalicelib.adapters.dynamo import HostResultRepository

    return HostResultRepository()


def result(deploy_id: str, instance_id: str, step: int, **changes: object) -> HostResult:
    return replace(
        HostResult(deploy_id, instance_id, step, HostCommand.STAGE, HostStatus.SUCCEEDED),
        **changes,  # type: ignore[arg-type]
    )


def test_a_deploy_without_results_has_none(store: HostResultStore) -> None:
    assert list(store.for_deploy("d-1")) == []


def test_results_read_back_whole_by_host_then_step_for_their_deploy_only(
    store: HostResultStore,
) -> None:
    full = result(
        "d-1",
        "i-b",
        2,
        batch=1,
        command=HostCommand.SWITCH,
        status=HostStatus.FAILED,
        exit_code=3,
        stdout_tail="out",
        stderr_tail="err",
        started_at="2024-05-01T12:00:01.000Z",
        finished_at="2024-05-01T12:00:09.000Z",
        command_id="cmd-1",
        detail="Failed",
    )
    pending = result("d-1", "i-a", 10, status=HostStatus.PENDING)
    store.put_many([full, result("d-1", "i-b", 1), pending, result("d-2", "i-a", 1)])
    assert list(store.for_deploy("d-1")) == [pending, result("d-1", "i-b", 1), full]


def test_a_later_write_of_the_same_host_and_step_replaces_the_row(
    store: HostResultStore,
) -> None:
    store.put_many([result("d-1", "i-a", 1, status=HostStatus.PENDING, exit_code=None)])
    store.put_many([result("d-1", "i-a", 1, exit_code=0)])
    assert list(store.for_deploy("d-1")) == [result("d-1", "i-a", 1, exit_code=0)]


def test_more_results_than_one_batch_write_takes_are_all_kept(store: HostResultStore) -> None:
    many = [result("d-1", f"i-{n:03d}", 1) for n in range(60)]
    store.put_many(iter(many))
    assert list(store.for_deploy("d-1")) == many
