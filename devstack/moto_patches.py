"""Patches to moto that make it behave like AWS where Roadie depends on it.

Each patch changes the simulated world, never Roadie's code:
- Lambda invocations of our functions run the Chalice handlers in-process;
- ``SendCommand`` with only instance ids targets only those instances (moto fans out to all);
- ``CancelCommand`` (moto has none) does what SSM does: pending invocations end ``Cancelled``,
  running ones go ``Cancelling`` (the host agent stops their script), a finished command stays;
- Step Functions Wait states and Retry intervals are scaled down so a local rollout polls fast;
- the Step Functions interpreter reuses its Lambda client instead of building one per Task;
- DynamoDB calls are serialised: moto's backend is not thread-safe (a transaction deep-copies
  whole tables while other request threads write to them: "dictionary changed size during
  iteration"), whereas the real service is;
- DynamoDB's item operations answer with their result written as JSON directly: moto 5.2's
  shape-driven serializer walks every attribute of every item against the service model, which
  was the largest single cost of a local rollout (about 15% of the CPU of the functional tests),
  and gives the same bytes on the wire for results that are already DynamoDB JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.responses import ActionResult
from moto.dynamodb.models import DynamoDBBackend
from moto.ssm.models import Command, SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.stepfunctions.models import StateMachine, cfn_to_api_tags
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)
from moto.stepfunctions.responses import get_backend as get_sfn_backend

from chalicelib import bootstrap

Handler = Callable[[Any, Any], Any]
# deployed function name -> (handler, the environment the function runs with)
_registry: dict[str, tuple[Handler, dict[str, str]]] = {}
_wait_scale = {"value": 1.0}
_installed = False
log = logging.getLogger("devstack")


class FakeLambdaContext:
    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def register_function(deployed_name: str, handler: Handler, environ: dict[str, str]) -> None:
    """Run ``handler`` in-process, as the function ``environ`` configures, when invoked."""
    _registry[deployed_name] = (handler, dict(environ))


# (function name, the environment it ran with), newest last: what tests check functions against
invocations: deque[tuple[str, dict[str, str]]] = deque(maxlen=10_000)


def clear_functions() -> None:
    _registry.clear()
    invocations.clear()


def set_wait_scale(scale: float) -> None:
    _wait_scale["value"] = scale


def _normalise(function_name: str) -> str:
    name = function_name.rsplit(":function:", maxsplit=1)[-1]
    return name.split(":")[0]


def _invoke(
    self: LambdaSimpleBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes:
    name = _normalise(function_name)
    registered = _registry.get(name)
    if registered is None:
        fallback = _original_invoke(self, function_name, qualifier, body, headers, response_headers)
        return fallback.encode() if isinstance(fallback, str) else fallback or b""
    handler, environ = registered
    try:
        event = json.loads(body) if body else {}
        invocations.append((name, environ))
        with bootstrap.running(environ):
            result = handler(event, FakeLambdaContext(name))
        return json.dumps(result).encode()
    except Exception as exc:
        log.debug("lambda %s raised", name, exc_info=True)
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
        ).encode()


def _targets_only(self: Command) -> list[str]:
    if not self.targets:
        return []
    return _original_targets(self)


FINISHED_COMMAND = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})


def cancel_command(
    self: SimpleSystemManagerBackend, command_id: str, instance_ids: list[str] | None = None
) -> Command:
    """SSM's CancelCommand on moto's command (``InvalidCommandId`` if there is none)."""
    command = self.get_command_by_id(command_id)
    if command.status in FINISHED_COMMAND:
        return command
    for invocation in command.invocations:
        if instance_ids and invocation["InstanceId"] not in instance_ids:
            continue
        if invocation["Status"] in ("Pending", "Delayed"):
            invocation.update(Status="Cancelled", StatusDetails="Cancelled")
        elif invocation["Status"] == "InProgress":
            invocation.update(Status="Cancelling", StatusDetails="Cancelling")
    busy = any(i["Status"] in ("Pending", "InProgress", "Cancelling") for i in command.invocations)
    command.status = command.status_details = "Cancelling" if busy else "Cancelled"
    return command


def _cancel_command_response(self: SimpleSystemManagerResponse) -> ActionResult:
    backend: Any = self.ssm_backend  # cancel_command is ours (install)
    backend.cancel_command(self._get_param("CommandId"), self._get_param("InstanceIds") or None)
    return ActionResult({})


class _ScaledTime:
    """Stands in for the ``time`` module inside moto's retrier: sleeps are scaled."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds * _wait_scale["value"])


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def _cached_client(region: str, service: str, state_credentials: Any = None) -> Any:
    with _clients_lock:
        key = (region, service)
        if key not in _clients:
            _clients[key] = _original_client_for(region, service, state_credentials)
        return _clients[key]


_dynamodb_lock = threading.RLock()
dynamodb_lock = _dynamodb_lock  # the persistence journal writes under it (devstack/persist.py)


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        with _dynamodb_lock:
            return method(*args, **kwargs)

    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call


# Item operations whose results moto already holds as DynamoDB JSON (strings, numbers as
# strings, lists and maps; binary values as bytes; no timestamps).
FAST_DYNAMODB_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
_original_execute_result = ActionResult.execute_result


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not DynamoDB JSON: {type(value).__name__}")


def _without_none(value: Any) -> Any:
    """What the serializer leaves out: members whose value is None."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _execute_result(self: ActionResult, context: Any) -> Any:
    if (
        context.service_model.service_name == "dynamodb"
        and context.operation_model.name in FAST_DYNAMODB_OPERATIONS
        and isinstance(self.result, dict)
    ):
        members = context.operation_model.output_shape.members  # moto adds a few others
        answer = {k: v for k, v in self.result.items() if k in members}
        body = json.dumps(_without_none(answer), default=_json_default)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
    return _original_execute_result(self, context)


def _serialise_dynamodb() -> None:
    for name, member in list(vars(DynamoDBBackend).items()):
        if callable(member) and not name.startswith("_"):
            setattr(DynamoDBBackend, name, _serialised(member))


def _state_machine_from_cloudformation(
    cls: type[StateMachine],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    props = cloudformation_json["Properties"]
    definition = props.get("DefinitionString") or json.dumps(props.get("Definition", {}))
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    return get_sfn_backend(account_id, region_name).create_state_machine(
        props.get("StateMachineName", resource_name),
        definition,
        props.get("RoleArn", ""),
        tags=cfn_to_api_tags(props.get("Tags", [])),
    )


def _scaled_wait(self: WaitFunction, env: Any, wait_seconds: int) -> None:
    if wait_seconds > 0:
        env.program_state_event.wait(wait_seconds * _wait_scale["value"])


_original_invoke = LambdaSimpleBackend.invoke
_original_client_for = lambda_eval_utils.boto_client_for
_original_targets = Command._get_instance_ids_from_targets


def install() -> None:
    global _installed
    if _installed:
        return
    LambdaSimpleBackend.invoke = _invoke  # type: ignore[method-assign]
    Command._get_instance_ids_from_targets = _targets_only  # type: ignore[method-assign]
    SimpleSystemManagerBackend.cancel_command = cancel_command  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.cancel_command = _cancel_command_response  # type: ignore[attr-defined]
    WaitFunction._wait_interval = _scaled_wait  # type: ignore[method-assign]
    retrier_decl.time = _ScaledTime()  # type: ignore[assignment]
    lambda_eval_utils.boto_client_for = _cached_client
    StateMachine.create_from_cloudformation_json = classmethod(  # type: ignore[assignment,method-assign]
        _state_machine_from_cloudformation
    )
    _serialise_dynamodb()
    ActionResult.execute_result = _execute_result  # type: ignore[method-assign]
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _installed = True
