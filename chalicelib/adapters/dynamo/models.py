"""The PynamoDB models of Roadie's tables (persistence shapes, not domain objects) and
where they point: ``configure`` binds them to a stage's tables."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from ...domain.errors import StorageRejectedError

LIST_PARTITION = "deploys"


class ByEnvironmentIndex(GlobalSecondaryIndex["DeployModel"]):
    class Meta:
        index_name = "by_environment"
        projection = AllProjection()

    env_key = UnicodeAttribute(hash_key=True)
    created_sort = UnicodeAttribute(range_key=True)


class ByTimeIndex(GlobalSecondaryIndex["DeployModel"]):
    class Meta:
        index_name = "by_time"
        projection = AllProjection()

    list_pk = UnicodeAttribute(hash_key=True)
    created_sort = UnicodeAttribute(range_key=True)


class DeployModel(Model):
    class Meta:
        table_name = "roadie-deploys"
        billing_mode = "PAY_PER_REQUEST"

    deploy_id = UnicodeAttribute(hash_key=True)
    app = UnicodeAttribute()
    environment = UnicodeAttribute()
    env_key = UnicodeAttribute()
    list_pk = UnicodeAttribute(default=LIST_PARTITION)
    created_sort = UnicodeAttribute()
    sha = UnicodeAttribute()
    ref = UnicodeAttribute(default="")
    reason = UnicodeAttribute(default="")
    requested_by = UnicodeAttribute()
    requested_via = UnicodeAttribute()
    status = UnicodeAttribute()
    phase = UnicodeAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute(null=True)
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    previous_sha = UnicodeAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    step = NumberAttribute(default=0)
    step_count = NumberAttribute(default=0)
    host_count = NumberAttribute(default=0)
    batch_size = NumberAttribute(default=0)
    migration_host = UnicodeAttribute(null=True)
    plan = MapAttribute[str, Any](default=dict)
    phases = MapAttribute[str, Any](default=dict)
    error = MapAttribute[str, Any](null=True)
    trigger = MapAttribute[str, Any](default=dict)
    force = BooleanAttribute(default=False)
    rollback_of = UnicodeAttribute(null=True)
    commit_at = UnicodeAttribute(null=True)
    superseded_by = UnicodeAttribute(null=True)
    cancel_requested_by = UnicodeAttribute(null=True)
    fleet = MapAttribute[str, Any](default=dict)
    notifications = MapAttribute[str, Any](default=dict)
    version = VersionAttribute()

    by_environment = ByEnvironmentIndex()
    by_time = ByTimeIndex()


class HostResultModel(Model):
    class Meta:
        table_name = "roadie-deploy-hosts"
        billing_mode = "PAY_PER_REQUEST"

    deploy_id = UnicodeAttribute(hash_key=True)
    result_key = UnicodeAttribute(range_key=True)  # "<instance id>#<step, 3 digits>"
    instance_id = UnicodeAttribute()
    step = NumberAttribute()
    batch = NumberAttribute(default=0)
    command = UnicodeAttribute()
    status = UnicodeAttribute()
    exit_code = NumberAttribute(null=True)
    stdout_tail = UnicodeAttribute(default="")
    stderr_tail = UnicodeAttribute(default="")
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    command_id = UnicodeAttribute(default="")
    detail = UnicodeAttribute(default="")


class EnvironmentModel(Model):
    class Meta:
        table_name = "roadie-environments"
        billing_mode = "PAY_PER_REQUEST"

    env_key = UnicodeAttribute(hash_key=True)
    lock_deploy_id = UnicodeAttribute(null=True)
    lock_sha = UnicodeAttribute(null=True)
    lock_expires_at = NumberAttribute(null=True)
    queued_deploy_id = UnicodeAttribute(null=True)
    queued_sha = UnicodeAttribute(null=True)
    current_sha = UnicodeAttribute(null=True)
    current_deploy_id = UnicodeAttribute(null=True)
    frozen_reason = UnicodeAttribute(null=True)
    frozen_by = UnicodeAttribute(null=True)
    frozen_at = UnicodeAttribute(null=True)
    audit = ListAttribute(null=True)  # type: ignore[var-annotated]
    fleet = ListAttribute(null=True)  # type: ignore[var-annotated]
    diverged_deploy_id = UnicodeAttribute(null=True)
    queued_force = BooleanAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    version = VersionAttribute()


_ENV_FIELDS = (
    "lock_deploy_id",
    "lock_sha",
    "lock_expires_at",
    "queued_deploy_id",
    "queued_sha",
    "current_sha",
    "current_deploy_id",
    "frozen_reason",
    "frozen_by",
    "frozen_at",
    "audit",
    "fleet",
    "diverged_deploy_id",
    "queued_force",
)


# A cancelled transaction's per-item reasons that mean "someone else got there first". Any
# other reason (ValidationException, ItemCollectionSizeLimitExceeded, ...) is no race: a
# retry would fail the same way, so it must not read as contention.
_RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


def _transaction_reasons(exc: Exception) -> list[str]:
    reasons = getattr(exc, "cancellation_reasons", None) or []
    return [r.code for r in reasons if r is not None and r.code and r.code != "None"]


def _is_condition_failure(exc: Exception) -> bool:
    """True if a write lost a race: its condition failed, or its transaction was cancelled
    only for conditions and conflicts (not for a malformed item)."""
    code = getattr(exc, "cause_response_code", None)
    if code == "ConditionalCheckFailedException":
        return True
    if code != "TransactionCanceledException":
        return False
    return set(_transaction_reasons(exc)) <= _RACE_REASONS


def storage_rejection(exc: Exception) -> StorageRejectedError | None:
    """The domain error for a write DynamoDB refused as malformed, or None if it was not."""
    code = getattr(exc, "cause_response_code", None)
    if code == "TransactionCanceledException":
        refused = sorted(set(_transaction_reasons(exc)) - _RACE_REASONS)
        if refused:
            return StorageRejectedError(f"the datastore refused the write ({', '.join(refused)})")
    elif code == "ValidationException":
        return StorageRejectedError("the datastore refused the write (ValidationException)")
    return None


MODELS: tuple[type[Model], ...] = (DeployModel, HostResultModel, EnvironmentModel)


_connection: Connection | None = None


def _transactions() -> Connection:
    """One PynamoDB connection for transactions (building one costs a botocore session)."""
    global _connection
    region = getattr(DeployModel.Meta, "region", None)
    if _connection is None or _connection.region != region:
        _connection = Connection(region=region)
    return _connection


def configure(table_names: dict[type[Model], str], region: str) -> None:
    """Point the models at this stage's tables (called once by the composition root)."""
    for model, name in table_names.items():
        if model.Meta.table_name == name and getattr(model.Meta, "region", None) == region:
            continue  # keep the cached connection
        model.Meta.table_name = name
        model.Meta.region = region
        model._connection = None  # a connection caches the old table name
