"""Exactly-once handling of webhook deliveries: Powertools idempotency on DynamoDB.

A delivery's key is ``<provider>:<delivery id>``; its answer is stored and replayed for a
redelivery. The body's SHA-256 is the validation key: the same delivery id with another body
is refused rather than answered with the first body's result.

A record holds a ``WebhookOutcome.to_json()``: ``{"kind": ..., "body": ...}``. Records written
before outcomes had kinds hold ``{"status": 200 | 202, "body": ...}`` instead; they are read as
the kind that answers with that status (``LEGACY_STATUS_KINDS``), so their redeliveries still
replay the first answer, status and body alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from ..domain.errors import ConflictError
from ..domain.webhook_outcome import OutcomeKind
from .aws import ClientFactory

# The table's key schema; the AWS template and the local stack both create it from these.
KEY_ATTRIBUTE = "id"
EXPIRY_ATTRIBUTE = "expiration"
DEFAULT_EXPIRY_SECONDS = 7 * 24 * 3600  # a redelivery can be asked for days later
# The only statuses the service ever stored; a 202 that found an existing deploy also answers
# 202 as ACCEPTED, so the replay is the same.
LEGACY_STATUS_KINDS = {200: OutcomeKind.IGNORED, 202: OutcomeKind.ACCEPTED}


class DeliveryInProgressError(ConflictError):
    code = "delivery_in_progress"


class DeliveryReusedError(ConflictError):
    code = "delivery_reused"


class Deliveries:
    """Runs a delivery's handler once per key and replays its stored answer after that."""

    def __init__(
        self,
        table_name: str,
        client_factory: ClientFactory,
        *,
        expires_after_seconds: int = DEFAULT_EXPIRY_SECONDS,
        in_progress_wait_seconds: float = 5.0,
    ) -> None:
        self._table = table_name
        self._client_factory = client_factory
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="body_sha256",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
            use_local_cache=False,
        )
        self._wait = in_progress_wait_seconds

    @cached_property
    def _store(self) -> DynamoDBPersistenceLayer:
        # built on the first delivery: a request refused before it (bad signature) builds no client
        return DynamoDBPersistenceLayer(
            table_name=self._table,
            key_attr=KEY_ATTRIBUTE,
            expiry_attr=EXPIRY_ATTRIBUTE,
            boto3_client=self._client_factory(),
        )

    def once(
        self,
        key: str,
        body_sha256: str,
        handler: Callable[[], dict[str, Any]],
        lambda_context: Any = None,
    ) -> Any:
        """Run ``handler`` once for ``key``. With the Lambda context, a delivery whose Lambda
        died mid-way counts as in progress only until that invocation's timeout."""
        if lambda_context is not None:
            self._config.register_lambda_context(lambda_context)

        @idempotent_function(
            data_keyword_argument="delivery",
            persistence_store=self._store,
            config=self._config,
            key_prefix="roadie-delivery",
        )
        def handle(delivery: dict[str, str]) -> dict[str, Any]:
            return handler()

        deadline = time.monotonic() + self._wait
        while True:
            try:
                return upgraded(handle(delivery={"key": key, "body_sha256": body_sha256}))
            except IdempotencyValidationError as exc:
                raise DeliveryReusedError(
                    "this delivery id was already used with a different body"
                ) from exc
            except IdempotencyAlreadyInProgressError as exc:
                # a concurrent copy of this delivery is being handled: wait for its answer
                if time.monotonic() > deadline:
                    raise DeliveryInProgressError(
                        "this delivery is being handled; retry shortly"
                    ) from exc
                time.sleep(0.05)


def upgraded(record: Any) -> Any:
    """A stored answer in today's shape: one written with a ``status`` gets its ``kind``."""
    if isinstance(record, dict) and "kind" not in record and "status" in record:
        kind = LEGACY_STATUS_KINDS[int(record["status"])]
        return {"kind": kind.value, "body": record["body"]}
    return record
