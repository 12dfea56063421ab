"""The BranchHeads contract: ``FakeBranchHeads`` (tests/unit/services/test_webhooks_ci.py)
and ``BranchHeadRepository`` (moto), over the unit tests' table of push orderings."""

from __future__ import annotations

import pytest

from chalicelib.services.ports import BranchHeads
from chalicelib.services.webhooks import PushedHead
from tests.unit.services.test_webhooks_ci import ORDER_CASES, FakeBranchHeads

KEY = "github#acme/shop#main"


@pytest.fixture
def heads(impl: str) -> BranchHeads:
    if impl == "fake":
        return FakeBranchHeads()
    from chalicelib.adapters.dynamo import BranchHeadRepository

    return BranchHeadRepository()


def record(heads: BranchHeads, push: PushedHead, delivery_id: str, key: str = KEY) -> bool:
    return heads.record(
        key, sha=push.sha, before=push.before, pushed_at=push.pushed_at, delivery_id=delivery_id
    )


def test_a_branch_never_pushed_has_no_head(heads: BranchHeads) -> None:
    assert heads.head(KEY) is None


def test_a_push_orders_against_the_recorded_one_as_supersedes_does(heads: BranchHeads) -> None:
    for number, (recorded, push, expected) in enumerate(ORDER_CASES):
        key = f"{KEY}-{number}"
        if recorded is not None:
            assert record(heads, recorded, "first", key)
        assert record(heads, push, "second", key) is expected, (number, recorded, push)
        kept = push if expected or recorded is None else recorded
        assert heads.head(key) == kept.sha, number


def test_heads_are_per_key(heads: BranchHeads) -> None:
    record(heads, PushedHead("1" * 40, "", 10), "a", KEY)
    record(heads, PushedHead("2" * 40, "", 5), "b", KEY + "-other")
    assert (heads.head(KEY), heads.head(KEY + "-other")) == ("1" * 40, "2" * 40)


def test_heads_are_not_locked_environments(impl: str, heads: BranchHeads) -> None:
    """They share the environments table; its scan must not take them for environments."""
    record(heads, PushedHead("1" * 40, "", 10), "a")
    if impl == "dynamo":
        from chalicelib.adapters.dynamo import DeployRepository

        assert DeployRepository().locked_environments() == []
