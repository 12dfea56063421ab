"""Adapters over SSM Run Command, Step Functions and EC2, each speaking the domain's verbs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..domain.contract import EXECUTION_GONE
from ..domain.errors import ConflictError, UnavailableError
from ..domain.hostlog import host_log_group
from ..domain.model import Host, HostStatus

# SSM command statuses (ListCommands) and invocation statuses, folded to what Roadie acts on.
_TERMINAL_COMMAND = {"Success", "Failed", "Cancelled", "TimedOut"}
_INVOCATION_STATUS = {
    "Success": HostStatus.SUCCEEDED,
    "Failed": HostStatus.FAILED,
    "Cancelled": HostStatus.CANCELLED,
    "Cancelling": HostStatus.CANCELLED,
    "TimedOut": HostStatus.TIMED_OUT,
    "DeliveryTimedOut": HostStatus.TIMED_OUT,
    "ExecutionTimedOut": HostStatus.TIMED_OUT,
    "Undeliverable": HostStatus.FAILED,
    "Terminated": HostStatus.FAILED,
}


ClientFactory = Callable[[], Any]


class LazyClient:
    """A boto3 client built by ``factory`` on first use, once: building one costs tens of ms
    (its service model loads), so a function that never calls a service never builds its client.
    """

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return self._client


class AwsError(UnavailableError):
    """An AWS API call failed (our infrastructure, not the request). A domain
    ``UnavailableError``; its own name is what the state machine's Retry matches."""

    code = "aws_error"


@dataclass(frozen=True)
class Invocation:
    instance_id: str
    status: HostStatus
    exit_code: int | None
    stdout: str
    stderr: str
    started_at: str | None
    finished_at: str | None
    detail: str


class HostCommands:
    """Runs the Roadie SSM document on hosts and reads back what each host did.

    With ``output_log_group_prefix``, SSM also sends each host's full output to the app's
    log group (``domain/hostlog.py``): the invocation itself keeps only the first 24,000
    characters of stdout, 8,000 of stderr.
    """

    def __init__(
        self,
        ssm_client_factory: ClientFactory,
        document_name: str,
        *,
        output_log_group_prefix: str = "",
    ) -> None:
        self._ssm = LazyClient(ssm_client_factory)
        self._document = document_name
        self._log_prefix = output_log_group_prefix

    def run(
        self,
        instance_ids: Sequence[str],
        parameters: Mapping[str, str],
        *,
        timeout_seconds: int,
        comment: str,
    ) -> str:
        """Send one command to at most 50 hosts; returns the command id."""
        if not 1 <= len(instance_ids) <= 50:
            raise ValueError("SSM takes 1..50 instance ids per command")
        output: dict[str, Any] = {}
        if self._log_prefix and parameters.get("app"):
            output["CloudWatchOutputConfig"] = {
                "CloudWatchOutputEnabled": True,
                "CloudWatchLogGroupName": host_log_group(self._log_prefix, parameters["app"]),
            }
        try:
            response = self._ssm().send_command(
                InstanceIds=list(instance_ids),
                DocumentName=self._document,
                Parameters={key: [value] for key, value in parameters.items()},
                TimeoutSeconds=max(30, min(timeout_seconds, 2592000)),
                Comment=comment[:100],
                MaxErrors="100%",
                MaxConcurrency="100%",
                **output,
            )
        except ClientError as exc:
            raise AwsError(f"SSM SendCommand failed: {exc}") from exc
        return str(response["Command"]["CommandId"])

    def is_finished(self, command_id: str) -> bool:
        try:
            commands = self._ssm().list_commands(CommandId=command_id)["Commands"]
        except ClientError as exc:
            raise AwsError(f"SSM ListCommands failed: {exc}") from exc
        return bool(commands) and commands[0]["Status"] in _TERMINAL_COMMAND

    def cancel(self, command_id: str) -> None:
        """SSM CancelCommand on every host of the command: pending invocations end
        ``Cancelled``, running ones go ``Cancelling`` until the agent has stopped the script.
        Invocations that already finished keep their result."""
        try:
            self._ssm().cancel_command(CommandId=command_id)
        except ClientError as exc:
            raise AwsError(f"SSM CancelCommand failed: {exc}") from exc

    def invocation(self, command_id: str, instance_id: str) -> Invocation:
        try:
            inv = self._ssm().get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "InvocationDoesNotExist":
                return Invocation(instance_id, HostStatus.PENDING, None, "", "", None, None, "")
            raise AwsError(f"SSM GetCommandInvocation failed: {exc}") from exc
        status = _INVOCATION_STATUS.get(inv.get("Status", ""), HostStatus.PENDING)
        code = inv.get("ResponseCode")
        return Invocation(
            instance_id=instance_id,
            status=status,
            exit_code=int(code) if code is not None and code != -1 else None,
            stdout=inv.get("StandardOutputContent", ""),
            stderr=inv.get("StandardErrorContent", ""),
            started_at=inv.get("ExecutionStartDateTime") or None,
            finished_at=inv.get("ExecutionEndDateTime") or None,
            detail=inv.get("StatusDetails", ""),
        )


class Executions:
    """Starts and inspects rollout executions of the one generic state machine."""

    def __init__(self, sfn_client_factory: ClientFactory, state_machine_arn: str) -> None:
        self._sfn = LazyClient(sfn_client_factory)
        self._arn = state_machine_arn

    def start(self, name: str, payload: Mapping[str, Any]) -> str:
        try:
            response = self._sfn().start_execution(
                stateMachineArn=self._arn, name=name, input=json.dumps(payload)
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
                raise ConflictError(f"execution {name} already exists") from exc
            raise AwsError(f"StartExecution failed: {exc}") from exc
        return str(response["executionArn"])

    def status(self, execution_arn: str) -> str:
        try:
            return str(self._sfn().describe_execution(executionArn=execution_arn)["status"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return EXECUTION_GONE  # e.g. the local stack restarted: its executions are lost
            raise AwsError(f"DescribeExecution failed: {exc}") from exc

    def stop(self, execution_arn: str, cause: str) -> None:
        try:
            self._sfn().stop_execution(executionArn=execution_arn, cause=cause[:32768])
        except ClientError as exc:
            raise AwsError(f"StopExecution failed: {exc}") from exc


class Fleet:
    """Finds an environment's hosts by EC2 tags (running instances only)."""

    def __init__(self, ec2_client_factory: ClientFactory) -> None:
        self._ec2 = LazyClient(ec2_client_factory)

    def hosts(self, tags: Mapping[str, str]) -> list[Host]:
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]
        filters.append({"Name": "instance-state-name", "Values": ["running"]})
        hosts: list[Host] = []
        try:
            for page in self._ec2().get_paginator("describe_instances").paginate(Filters=filters):
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        name = next(
                            (t["Value"] for t in instance.get("Tags", []) if t["Key"] == "Name"),
                            "",
                        )
                        zone = instance.get("Placement", {}).get("AvailabilityZone", "")
                        hosts.append(Host(instance["InstanceId"], name, zone))
        except ClientError as exc:
            raise AwsError(f"EC2 DescribeInstances failed: {exc}") from exc
        return hosts
