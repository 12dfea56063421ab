"""DynamoDB persistence (PynamoDB): deploy records, per-host results and environment locks.

Persistence models are not domain models: each repository maps explicitly both ways, and
conditional-write failures become domain errors (``StaleStateError``, ...).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
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
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from ..domain.environment import EnvironmentState
from ..domain.errors import NotFoundError, StaleStateError, ValidationError
from ..domain.model import (
    Deploy,
    DeployStatus,
    HostCommand,
    HostResult,
    HostStatus,
    Phase,
    env_key,
)

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
    superseded_by = UnicodeAttribute(null=True)
    cancel_requested_by = UnicodeAttribute(null=True)
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
)


def _is_condition_failure(exc: Exception) -> bool:
    code = getattr(exc, "cause_response_code", None)
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


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


def _to_domain(item: DeployModel) -> Deploy:
    return Deploy(
        deploy_id=item.deploy_id,
        app=item.app,
        environment=item.environment,
        sha=item.sha,
        ref=item.ref,
        reason=item.reason,
        requested_by=item.requested_by,
        requested_via=item.requested_via,
        status=DeployStatus(item.status),
        phase=Phase(item.phase),
        created_at=item.created_at,
        updated_at=item.updated_at,
        started_at=item.started_at,
        finished_at=item.finished_at,
        previous_sha=item.previous_sha,
        execution_arn=item.execution_arn,
        step=int(item.step),
        step_count=int(item.step_count),
        host_count=int(item.host_count),
        batch_size=int(item.batch_size),
        migration_host=item.migration_host,
        plan=_plain(item.plan),
        phases=_plain(item.phases),
        error=_plain(item.error) if item.error is not None else None,
        trigger=_plain(item.trigger),
        force=bool(item.force),
        rollback_of=item.rollback_of,
        superseded_by=item.superseded_by,
        cancel_requested_by=item.cancel_requested_by,
        version=item.version,
    )


def _plain(value: Any) -> Any:
    """A raw MapAttribute (or nested values) as plain JSON-ready Python data."""
    if isinstance(value, MapAttribute):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _to_item(deploy: Deploy) -> DeployModel:
    item = DeployModel(
        deploy.deploy_id,
        app=deploy.app,
        environment=deploy.environment,
        env_key=deploy.env_key,
        created_sort=f"{deploy.created_at}#{deploy.deploy_id}",
        sha=deploy.sha,
        ref=deploy.ref,
        reason=deploy.reason,
        requested_by=deploy.requested_by,
        requested_via=deploy.requested_via,
        status=deploy.status.value,
        phase=deploy.phase.value,
        created_at=deploy.created_at,
        updated_at=deploy.updated_at,
        started_at=deploy.started_at,
        finished_at=deploy.finished_at,
        previous_sha=deploy.previous_sha,
        execution_arn=deploy.execution_arn,
        step=deploy.step,
        step_count=deploy.step_count,
        host_count=deploy.host_count,
        batch_size=deploy.batch_size,
        migration_host=deploy.migration_host,
        plan=deploy.plan,
        phases=deploy.phases,
        error=deploy.error,
        trigger=deploy.trigger,
        force=deploy.force,
        rollback_of=deploy.rollback_of,
        superseded_by=deploy.superseded_by,
        cancel_requested_by=deploy.cancel_requested_by,
    )
    if deploy.version is not None:
        item.version = deploy.version
    return item


class DeployRepository:
    """Deploy records and environment locks in DynamoDB."""

    def __init__(self, clock: Callable[[], float] = time.time, max_retries: int = 8) -> None:
        self._clock = clock
        self._max_retries = max_retries

    def get(self, deploy_id: str) -> Deploy:
        try:
            return _to_domain(DeployModel.get(deploy_id, consistent_read=True))
        except DoesNotExist:
            raise NotFoundError(f"no deploy {deploy_id!r}") from None

    def environment(self, app: str, environment: str) -> EnvironmentState:
        """A consistent snapshot of the environment's lock, queue, live release and freeze."""
        try:
            item = EnvironmentModel.get(env_key(app, environment), consistent_read=True)
        except DoesNotExist:
            return EnvironmentState(app, environment)
        values = {name: getattr(item, name) for name in _ENV_FIELDS}
        values["audit"] = tuple(_plain(entry) for entry in (item.audit or []))
        return EnvironmentState(app=app, environment=environment, **values, version=item.version)

    def write_environment(
        self, seen: EnvironmentState, new: EnvironmentState, *, new_deploy: Deploy | None = None
    ) -> None:
        """Write ``new`` if the item is still at ``seen``'s version (and create ``new_deploy``
        in the same transaction); ``StaleStateError`` if anyone changed it meanwhile."""
        actions: list[Action] = []
        for name in _ENV_FIELDS:
            before, after = getattr(seen, name), getattr(new, name)
            if before != after:
                attr = getattr(EnvironmentModel, name)
                if name == "audit":
                    after = [dict(entry) for entry in after] or None
                actions.append(attr.remove() if after is None else attr.set(after))
        actions.append(EnvironmentModel.updated_at.set(datetime.now(UTC).isoformat()))
        item = EnvironmentModel(env_key(seen.app, seen.environment))
        if seen.version is not None:
            item.version = seen.version  # type: ignore[assignment]
        try:
            if new_deploy is None:
                item.update(actions=actions)
                return
            with TransactWrite(connection=_transactions()) as tx:
                tx.save(_to_item(new_deploy), condition=DeployModel.deploy_id.does_not_exist())
                tx.update(item, actions=actions)
        except (UpdateError, TransactWriteError) as exc:
            if _is_condition_failure(exc):
                raise StaleStateError(f"{seen.app}/{seen.environment} changed; retry") from exc
            raise

    def locked_environments(self) -> list[EnvironmentState]:
        """Every environment someone holds or waits for (a scan: one item per app+env)."""
        found = []
        condition = EnvironmentModel.lock_deploy_id.exists() | (
            EnvironmentModel.queued_deploy_id.exists()
        )
        for item in EnvironmentModel.scan(condition, consistent_read=True):
            app, _, environment = item.env_key.partition("#")
            found.append(self.environment(app, environment))
        return found

    def mutate(self, deploy_id: str, change: Callable[[Deploy], None]) -> Deploy:
        """Read-modify-write with optimistic locking, retried on a version conflict."""
        for _attempt in range(self._max_retries):
            deploy = self.get(deploy_id)
            change(deploy)
            item = _to_item(deploy)
            try:
                item.save()
            except PutError as exc:
                if _is_condition_failure(exc):
                    continue
                raise
            deploy.version = item.version
            return deploy
        raise StaleStateError(f"deploy {deploy_id} is being changed concurrently")

    def list(
        self,
        *,
        app: str | None = None,
        environment: str | None = None,
        status: str | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> tuple[list[Deploy], str | None]:
        """Newest first; ``cursor`` is the opaque token a previous page returned."""
        start_key = _decode_cursor(cursor) if cursor else None
        conditions = None
        if app is not None and environment is None:
            conditions = DeployModel.app == app
        if status is not None:
            status_cond = DeployModel.status == status
            conditions = status_cond if conditions is None else conditions & status_cond
        if app is not None and environment is not None:
            query = DeployModel.by_environment.query(
                f"{app}#{environment}",
                scan_index_forward=False,
                filter_condition=conditions,
                limit=limit,
                last_evaluated_key=start_key,
                page_size=limit if conditions is None else None,
            )
        else:
            if environment is not None:
                env_cond = DeployModel.environment == environment
                conditions = env_cond if conditions is None else conditions & env_cond
            query = DeployModel.by_time.query(
                LIST_PARTITION,
                scan_index_forward=False,
                filter_condition=conditions,
                limit=limit,
                last_evaluated_key=start_key,
                page_size=limit if conditions is None else None,
            )
        deploys = [_to_domain(item) for item in query]
        next_key = query.last_evaluated_key
        return deploys, _encode_cursor(next_key) if next_key and len(deploys) == limit else None


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ValidationError("cursor is not one this API returned") from exc
    allowed = {"deploy_id", "created_sort", "env_key", "list_pk"}
    if (
        not isinstance(key, dict)
        or not key
        or set(key) - allowed
        or not all(isinstance(v, dict) and set(v) == {"S"} for v in key.values())
    ):
        raise ValidationError("cursor is not one this API returned")
    return key


class HostResultRepository:
    """Per-host, per-step results of a rollout (one item each, batch-written)."""

    def put_many(self, results: Iterable[HostResult]) -> None:
        with HostResultModel.batch_write() as batch:
            for result in results:
                batch.save(
                    HostResultModel(
                        result.deploy_id,
                        f"{result.instance_id}#{result.step:03d}",
                        instance_id=result.instance_id,
                        step=result.step,
                        batch=result.batch,
                        command=result.command.value,
                        status=result.status.value,
                        exit_code=result.exit_code,
                        stdout_tail=result.stdout_tail,
                        stderr_tail=result.stderr_tail,
                        started_at=result.started_at,
                        finished_at=result.finished_at,
                        command_id=result.command_id,
                        detail=result.detail,
                    )
                )

    def for_deploy(self, deploy_id: str) -> Iterator[HostResult]:
        for item in HostResultModel.query(deploy_id, consistent_read=True):
            yield HostResult(
                deploy_id=item.deploy_id,
                instance_id=item.instance_id,
                step=int(item.step),
                batch=int(item.batch),
                command=HostCommand(item.command),
                status=HostStatus(item.status),
                exit_code=int(item.exit_code) if item.exit_code is not None else None,
                stdout_tail=item.stdout_tail,
                stderr_tail=item.stderr_tail,
                started_at=item.started_at,
                finished_at=item.finished_at,
                command_id=item.command_id,
                detail=item.detail,
            )


# --- Branch heads (webhooks) ----------------------------------------------------------------

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
