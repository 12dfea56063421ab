"""Deploy records and the environment item, mapped both ways; conditional writes become
``StaleStateError``."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import BooleanAttribute, MapAttribute, NumberAttribute
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from ...domain.environment import EnvironmentState
from ...domain.errors import InvalidCursorError, NotFoundError, StaleStateError
from ...domain.fleet import HostRelease
from ...domain.model import (
    Deploy,
    DeployStatus,
    Phase,
    env_key,
)
from .models import (
    _ENV_FIELDS,
    LIST_PARTITION,
    DeployModel,
    EnvironmentModel,
    _is_condition_failure,
    _transactions,
    storage_rejection,
)

# The record's fields map one to one onto DeployModel's attributes of the same name (a unit
# test holds the model to that); only the enums and the attribute kinds need converting.
_ENUMS: dict[str, type[DeployStatus] | type[Phase]] = {"status": DeployStatus, "phase": Phase}
_FIELDS = tuple(f.name for f in fields(Deploy) if f.name != "version")


def _from_attribute(name: str, raw: Any) -> Any:
    attribute = DeployModel.get_attributes()[name]
    if name in _ENUMS:
        return _ENUMS[name](raw)
    if isinstance(attribute, MapAttribute):
        return _plain(raw)
    if isinstance(attribute, NumberAttribute):
        return int(raw)
    if isinstance(attribute, BooleanAttribute):
        return bool(raw)
    return raw


def _to_domain(item: DeployModel) -> Deploy:
    values = {name: _from_attribute(name, getattr(item, name)) for name in _FIELDS}
    return Deploy(**values, version=item.version)


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
    values = {name: getattr(deploy, name) for name in _FIELDS if name != "deploy_id"}
    for name in _ENUMS:
        values[name] = values[name].value
    item = DeployModel(
        deploy.deploy_id,
        env_key=deploy.env_key,
        created_sort=f"{deploy.created_at}#{deploy.deploy_id}",
        **values,
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
        values["fleet"] = tuple(HostRelease.from_json(_plain(e)) for e in (item.fleet or []))
        values["queued_force"] = bool(item.queued_force)
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
                elif name == "fleet":
                    after = [report.to_json() for report in after] or None
                elif name == "queued_force":
                    after = after or None
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
            rejected = storage_rejection(exc)
            if rejected is not None:
                raise rejected from exc
            raise

    def locked_environments(self) -> list[EnvironmentState]:
        """Every environment someone holds or waits for, or whose fleet diverged (a scan: one
        item per app+env)."""
        found = []
        condition = (
            EnvironmentModel.lock_deploy_id.exists()
            | EnvironmentModel.queued_deploy_id.exists()
            | EnvironmentModel.diverged_deploy_id.exists()
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
                rejected = storage_rejection(exc)
                if rejected is not None:
                    raise rejected from exc
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
        filters = _filters(app, environment, status)
        partition = (
            f"env_key={app}#{environment}"
            if app is not None and environment is not None
            else f"list_pk={LIST_PARTITION}"
        )
        start_key = _decode_cursor(cursor, filters, partition) if cursor is not None else None
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
        if next_key and len(deploys) == limit:
            return deploys, _encode_cursor(next_key, filters)
        return deploys, None

    def window(self, app: str, environment: str, since: str) -> Sequence[Deploy]:
        """The environment's deploys created at or after ``since``, oldest first: one query
        of ``by_environment`` with ``created_sort >= since`` as its key condition, so DynamoDB
        reads the window's items and no others (never a scan, never a filter)."""
        query = DeployModel.by_environment.query(
            f"{app}#{environment}",
            DeployModel.created_sort >= since,
            scan_index_forward=True,
        )
        return [_to_domain(item) for item in query]


# A cursor is the page's last key and the filters it was made for, so a cursor is only ever
# used with the query (index, partition, filters) that returned it: anything else is a 400.
_INDEX_KEYS = {
    "by_environment": frozenset({"deploy_id", "created_sort", "env_key"}),
    "by_time": frozenset({"deploy_id", "created_sort", "list_pk"}),
}


def _filters(app: str | None, environment: str | None, status: str | None) -> list[str | None]:
    return [app, environment, status]


def _encode_cursor(key: dict[str, Any], filters: list[str | None]) -> str:
    text = json.dumps({"f": filters, "k": key}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, filters: list[str | None], partition: str) -> dict[str, Any]:
    """The start key in ``cursor``, checked against the query it is used with."""
    invalid = InvalidCursorError("cursor is not one this API returned for this query")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.b64decode(padded.encode("ascii"), b"-_", validate=True))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise invalid from None
    if not isinstance(decoded, dict) or set(decoded) != {"f", "k"} or decoded["f"] != filters:
        raise invalid
    key = decoded["k"]
    index = "by_environment" if "env_key" in partition else "by_time"
    if (
        not isinstance(key, dict)
        or set(key) != _INDEX_KEYS[index]
        or not all(isinstance(v, dict) and set(v) == {"S"} for v in key.values())
        or not all(isinstance(v["S"], str) and v["S"] for v in key.values())
    ):
        raise invalid
    values = {name: v["S"] for name, v in key.items()}
    where, _, value = partition.partition("=")
    if values[where] != value or not values["created_sort"].endswith("#" + values["deploy_id"]):
        raise invalid
    return key
