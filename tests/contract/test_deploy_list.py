"""The DeployStore's listing contract: filters, newest first, cursor paging (fake and moto);
and ``window``, the DORA read: one environment's deploys from a time on, oldest first, reading
those records only (on moto: one Query of ``by_environment`` whose ScannedCount is the
window's size, no Scan, no filter, whatever else the table holds).

The deploys are written once per implementation (module scope); every test only reads.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client
import pytest

from chalicelib.domain.errors import InvalidCursorError, ValidationError
from chalicelib.domain.model import Deploy, DeployStatus
from chalicelib.services.ports import DeployStore
from tests.contract.conftest import IMPLEMENTATIONS, empty_tables
from tests.contract.test_deploy_store import create, deploy, make_store
from tests.unit.services.fakes import FakeDeployStore

# --------------------------------------------------------------------------------------


def at(minute: int) -> str:
    return f"2024-05-01T12:{minute:02d}:00+00:00"


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def listed(request: pytest.FixtureRequest) -> Iterator[DeployStore]:
    """Seven deploys of two apps and two environments, created a minute apart."""
    if request.param == "dynamo":
        request.getfixturevalue("moto_tables")
        empty_tables()
    store = make_store(request.param)
    rows: list[tuple[str, str, str, int, DeployStatus]] = [
        ("d-1", "shop", "production", 1, DeployStatus.SUCCEEDED),
        ("d-2", "shop", "staging", 2, DeployStatus.SUCCEEDED),
        ("d-3", "blog", "production", 3, DeployStatus.FAILED),
        ("d-4", "shop", "production", 4, DeployStatus.FAILED),
        ("d-5", "blog", "staging", 5, DeployStatus.SUCCEEDED),
        ("d-6", "shop", "production", 6, DeployStatus.SUCCEEDED),
        ("d-7", "shop", "production", 6, DeployStatus.QUEUED),  # same second: by id
    ]
    for deploy_id, app, environment, minute, status in rows:
        create(store, deploy(deploy_id, app=app, environment=environment, created_at=at(minute)))
        if status is not DeployStatus.QUEUED:
            store.mutate(deploy_id, lambda d, s=status: setattr(d, "status", s))  # type: ignore[misc]
    yield store


def ids(deploys: list[Deploy]) -> list[str]:
    return [d.deploy_id for d in deploys]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["d-7", "d-6", "d-5", "d-4", "d-3", "d-2", "d-1"]),
        ({"app": "shop"}, ["d-7", "d-6", "d-4", "d-2", "d-1"]),
        ({"app": "shop", "environment": "production"}, ["d-7", "d-6", "d-4", "d-1"]),
        ({"environment": "staging"}, ["d-5", "d-2"]),
        ({"status": "failed"}, ["d-4", "d-3"]),
        ({"app": "shop", "status": "succeeded"}, ["d-6", "d-2", "d-1"]),
        ({"app": "shop", "environment": "production", "status": "failed"}, ["d-4"]),
        ({"environment": "production", "status": "succeeded"}, ["d-6", "d-1"]),
        ({"app": "nope"}, []),
    ],
    ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else "",
)
def test_list_filters_newest_first(
    listed: DeployStore, filters: dict[str, str], expected: list[str]
) -> None:
    found, cursor = listed.list(**filters)  # type: ignore[arg-type]
    assert (ids(found), cursor) == (expected, None)
    assert found[0] == listed.get(found[0].deploy_id) if found else True


def all_pages(store: DeployStore, limit: int, **filters: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        found, cursor = store.list(limit=limit, cursor=cursor, **filters)
        assert len(found) <= limit
        pages.append(ids(found))
        if cursor is None:
            return pages


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
@pytest.mark.parametrize(
    "filters", [{}, {"app": "shop", "environment": "production"}, {"status": "succeeded"}]
)
def test_the_cursor_pages_through_every_match_once(
    listed: DeployStore, limit: int, filters: dict[str, str]
) -> None:
    everything, _ = listed.list(limit=100, **filters)  # type: ignore[arg-type]
    pages = all_pages(listed, limit, **filters)
    assert [i for page in pages for i in page] == ids(everything)
    # every page but the last is full; the last may be empty (a full page still had a cursor)
    assert all(len(page) == limit for page in pages[:-1])


def test_a_cursor_this_store_did_not_make_is_a_validation_error(listed: DeployStore) -> None:
    with pytest.raises(ValidationError):
        listed.list(cursor="not a cursor")


def _b64(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        "eyJhIjogMX0",  # {"a": 1}
        _b64("[1, 2]"),
        _b64("null"),
        _b64('"text"'),
        _b64("[" * 5000 + "]" * 5000),
        _b64({"f": [None, None, None], "k": {"deploy_id": {"S": "d-7"}}}),  # partial key
        _b64({"f": [None, None, None], "k": {"deploy_id": {"N": "7"}, "created_sort": {"S": "x"}}}),
        _b64(
            {
                "f": [None, None, None],
                "k": {
                    "deploy_id": {"S": "d-7"},
                    "created_sort": {"S": "2024#d-7"},
                    "list_pk": {"S": "someone-else"},
                },
            }
        ),
        _b64(
            {
                "f": [None, None, None],
                "k": {
                    "deploy_id": {"S": "d-7"},
                    "created_sort": {"S": "2024#d-6"},
                    "list_pk": {"S": "deploys"},
                },
            }
        ),
        "9" * 5000,
        "\u00b2",
    ],
)
def test_a_tampered_or_foreign_cursor_is_an_invalid_cursor_error(
    listed: DeployStore, cursor: str
) -> None:
    with pytest.raises(InvalidCursorError):
        listed.list(cursor=cursor)


@pytest.mark.parametrize(
    "other",
    [
        {"app": "shop"},
        {"status": "succeeded"},
        {"app": "shop", "environment": "staging"},
        {"app": "blog", "environment": "production"},
    ],
)
def test_a_cursor_made_for_one_query_is_refused_by_another(
    listed: DeployStore, other: dict[str, str]
) -> None:
    for filters in ({}, {"app": "shop", "environment": "production"}):
        _, cursor = listed.list(limit=1, **filters)  # type: ignore[arg-type]
        assert cursor is not None
        with pytest.raises(InvalidCursorError):
            listed.list(limit=1, cursor=cursor, **other)  # type: ignore[arg-type]


# -- window: the DORA read --------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("since", "expected"),
    [(at(4), ["d-4", "d-6", "d-7"]), (at(0), ["d-1", "d-4", "d-6", "d-7"]), (at(7), [])],
)
def test_the_window_is_that_environment_from_since_on_oldest_first_and_only_it_is_read(
    listed: DeployStore, since: str, expected: list[str]
) -> None:
    reads_before = listed.window_reads if isinstance(listed, FakeDeployStore) else 0
    with reads() as calls:
        found = listed.window("shop", "production", since)
    assert ids(list(found)) == expected
    if isinstance(listed, FakeDeployStore):
        assert listed.window_reads - reads_before == len(expected)
    else:
        assert [op for op, _ in calls] == ["Query"]  # one page: no Scan, no GetItem
        assert sum(n for _, n in calls) == len(expected)  # items read: the window only


def test_a_deploy_created_at_the_instant_since_names_is_in_the_window(
    listed: DeployStore,
) -> None:
    assert ids(list(listed.window("shop", "staging", at(2)))) == ["d-2"]
    assert ids(list(listed.window("shop", "staging", at(3)))) == []


def test_the_window_reads_back_whole_records(listed: DeployStore) -> None:
    (found,) = listed.window("blog", "production", at(1))
    assert found == listed.get("d-3")
