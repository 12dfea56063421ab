"""DeployStore.window (the DORA read): one environment's deploys from a time on, oldest first,
reading those records only: on moto, one Query of ``by_environment`` whose ScannedCount is the
window's size (no Scan, no filter), whatever else the table holds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client
import pytest

from chalicelib.services.ports import DeployStore
from tests.contract.conftest import IMPLEMENTATIONS, empty_tables
from tests.contract.test_deploy_store import create, deploy, make_store
from tests.unit.services.fakes import FakeDeployStore


def day(n: int) -> str:
    return f"2024-05-{n:02d}T12:00:00.000Z"


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def history(request: pytest.FixtureRequest) -> Iterator[DeployStore]:
    """Per day 1..20 of May: a shop/production deploy; every other day a staging one and a
    blog/production one."""
    if request.param == "dynamo":
        request.getfixturevalue("moto_tables")
        empty_tables()
    store = make_store(request.param)
    for n in range(1, 21):
        create(store, deploy(f"d-p{n:02d}", created_at=day(n)))
        if n % 2:
            create(store, deploy(f"d-s{n:02d}", environment="staging", created_at=day(n)))
            create(store, deploy(f"d-b{n:02d}", app="blog", created_at=day(n)))
    yield store


@contextmanager
def reads() -> Iterator[list[tuple[str, int]]]:
    """The DynamoDB operations made inside the block, each with its ScannedCount."""
    seen: list[tuple[str, int]] = []
    original = botocore.client.BaseClient._make_api_call

    def make_api_call(client: Any, operation: str, params: Any) -> Any:
        answer = original(client, operation, params)
        seen.append((operation, int(answer.get("ScannedCount", -1))))
        return answer

    botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


@pytest.mark.parametrize(("since", "expected"), [(day(15), 6), (day(1), 20), (day(21), 0)])
def test_the_window_is_that_environment_from_since_on_oldest_first_and_only_it_is_read(
    history: DeployStore, since: str, expected: int
) -> None:
    reads_before = history.window_reads if isinstance(history, FakeDeployStore) else 0
    with reads() as calls:
        found = history.window("shop", "production", since)
    assert [d.deploy_id for d in found] == [f"d-p{n:02d}" for n in range(21 - expected, 21)]
    assert all(d.created_at >= since for d in found)
    if isinstance(history, FakeDeployStore):
        assert history.window_reads - reads_before == expected
    else:
        assert [op for op, _ in calls] == ["Query"]  # one page: no Scan, no GetItem
        assert sum(n for _, n in calls) == expected  # ScannedCount: the window and nothing else


def test_a_deploy_created_at_the_instant_since_names_is_in_the_window(
    history: DeployStore,
) -> None:
    found = history.window("shop", "staging", day(19))
    assert [d.deploy_id for d in found] == ["d-s19"]


def test_the_window_reads_back_whole_records(history: DeployStore) -> None:
    (found,) = history.window("blog", "production", day(19))
    assert found == history.get("d-b19")
