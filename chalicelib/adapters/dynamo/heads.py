"""The last pushed head per repository and branch (for CI-gated deploys)."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.attributes import (
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from .models import (
    EnvironmentModel,
    _is_condition_failure,
)

BRANCH_HEAD_PREFIX = "branch-head#"


class BranchHeadModel(Model):
    """The last pushed head of one repository branch (``services.webhooks`` explains why).

    It lives in the environments table, under keys of its own (``branch-head#<provider>#
    <repository>#<branch>``) that no ``<app>#<env>`` key can be: the table, its key schema and
    the API function's grants on it (GetItem, UpdateItem) already come from the template, and
    its one scan (``locked_environments``) filters on attributes these items never have. It
    is not in ``MODELS``: it adds no table, and its key must stay the environments table's
    (a unit test checks that).
    """

    class Meta:
        table_name = EnvironmentModel.Meta.table_name
        billing_mode = "PAY_PER_REQUEST"

    key = UnicodeAttribute(hash_key=True, attr_name="env_key")
    head_sha = UnicodeAttribute()
    head_before = UnicodeAttribute(null=True)  # absent when the push created the branch
    head_pushed_at = NumberAttribute(null=True)  # the provider's push time, epoch seconds
    head_delivery_id = UnicodeAttribute()
    head_recorded_at = UnicodeAttribute()


class BranchHeadRepository:
    """``BranchHeads`` in DynamoDB: one conditional UpdateItem per push, a GetItem per CI result.

    The condition is ``services.webhooks.supersedes`` written as a DynamoDB condition, so the
    comparison and the write are one atomic step: of two racing deliveries, the older loses.
    """

    def record(
        self, key: str, *, sha: str, before: str, pushed_at: int | None, delivery_id: str
    ) -> bool:
        m = BranchHeadModel
        # "before" is "" for a new branch: then nothing continues from the recorded head.
        continues = (m.head_sha == before) if before else None
        repeats = (m.head_sha == sha) | (m.head_before.exists() & (m.head_before == sha))
        chain = ~repeats if continues is None else continues | ~repeats
        condition = m.head_sha.does_not_exist()
        if pushed_at is None:
            condition = condition | chain
        else:
            timed = m.head_pushed_at.exists()
            later = m.head_pushed_at < pushed_at
            if continues is not None:
                later = later | ((m.head_pushed_at == pushed_at) & continues)
            condition = condition | (timed & later) | (m.head_pushed_at.does_not_exist() & chain)
        actions: list[Action] = [
            m.head_sha.set(sha),
            m.head_before.set(before) if before else m.head_before.remove(),
            m.head_pushed_at.set(pushed_at) if pushed_at is not None else m.head_pushed_at.remove(),
            m.head_delivery_id.set(delivery_id),
            m.head_recorded_at.set(datetime.now(UTC).isoformat()),
        ]
        try:
            m(BRANCH_HEAD_PREFIX + key).update(actions=actions, condition=condition)
        except UpdateError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def head(self, key: str) -> str | None:
        try:
            item = BranchHeadModel.get(BRANCH_HEAD_PREFIX + key, consistent_read=True)
        except DoesNotExist:
            return None
        return item.head_sha
