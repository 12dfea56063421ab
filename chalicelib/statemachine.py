"""Builds the one generic rollout state machine (ASL JSON); the rollout plan is its input.

Shape: Dispatch (send one step's commands, <= 50 hosts each) -> Wait -> Poll (until every
command of the step is done) -> Route: bake then the next step, success, rollback, cancel,
failure or timeout -> Record*. The cursor one past the last step is the plan's rollback step
(every host back to the previous release), taken when a switched batch fails, when a cancel
arrives after the first switch, or when an AWS/code error happens after it (Recover decides,
once). Per-host detail goes to DynamoDB, never into the execution history, and each step costs
the same number of history events whatever its batch size. The execution input, each task's
payload and each answer are the dataclasses of ``domain/contract.py``, named field for field
(tests/unit/test_statemachine.py ties every JSONPath here to them).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

FUNCTIONS = ("rollout_dispatch", "rollout_poll", "rollout_finish", "rollout_recover")
_RETRY_LAMBDA = [
    {
        "ErrorEquals": [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 1,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
    },
    {  # an AWS API call of ours failed (throttling, a blip): try again before giving up
        "ErrorEquals": ["AwsError"],
        "IntervalSeconds": 2,
        "MaxAttempts": 2,
        "BackoffRate": 2.0,
    },
]
_CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recover"}]
_OUT = {"state.$": "$.Payload.state", "next.$": "$.Payload.next", "bake.$": "$.Payload.bake"}


def _invoke(
    function: str, payload: dict[str, Any], result: dict[str, str] | None
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload": payload},
        "Retry": copy.deepcopy(_RETRY_LAMBDA),
    }
    if result is not None:
        state["ResultSelector"] = result
    return state


def _finish(function: str, outcome: str, then: str, **extra: str) -> dict[str, Any]:
    payload = {"deploy_id.$": "$.deploy_id", "outcome": outcome, **extra}
    state = {**_invoke(function, payload, None), "ResultPath": None}
    return {**state, "End": True} if then == "End" else {**state, "Next": then}


def build_definition(function_arns: Mapping[str, str]) -> dict[str, Any]:
    """The ASL definition; ``function_arns`` maps each name in FUNCTIONS to its ARN/name."""
    dispatch, poll, finish, recover = (function_arns[name] for name in FUNCTIONS)
    common = {"deploy_id.$": "$.deploy_id", "plan.$": "$.plan", "parameters.$": "$.parameters"}

    def choice(state: str, target: str) -> dict[str, str]:
        return {"Variable": "$.poll.state", "StringEquals": state, "Next": target}

    return {
        "Comment": "Roadie rollout: stage -> migrate once -> switch+verify in batches -> finish",
        "StartAt": "Dispatch",
        "States": {
            "Dispatch": {
                **_invoke(
                    dispatch,
                    {**common, "cursor.$": "$.cursor"},
                    {
                        "cursor.$": "$.Payload.cursor",
                        "command_ids.$": "$.Payload.command_ids",
                        "deadline.$": "$.Payload.deadline",
                    },
                ),
                "ResultPath": "$.wave",
                "Catch": copy.deepcopy(_CATCH_ALL),
                "Next": "WaitForHosts",
            },
            "WaitForHosts": {"Type": "Wait", "SecondsPath": "$.poll_seconds", "Next": "Poll"},
            "Poll": {
                **_invoke(poll, {**common, "wave.$": "$.wave"}, dict(_OUT)),
                "ResultPath": "$.poll",
                "Catch": copy.deepcopy(_CATCH_ALL),
                "Next": "Route",
            },
            "Route": {
                "Type": "Choice",
                "Choices": [
                    choice("running", "WaitForHosts"),
                    choice("next", "Bake"),
                    choice("rollback", "Advance"),
                    choice("done", "RecordSucceeded"),
                    choice("failed", "RecordFailed"),
                    choice("timed_out", "RecordTimedOut"),
                    choice("cancelled", "RecordCancelled"),
                ],
                "Default": "UnexpectedPollState",
            },
            "UnexpectedPollState": {
                "Type": "Pass",
                "Parameters": {"Error": "UnexpectedPollState", "Cause.$": "$.poll.state"},
                "ResultPath": "$.error",
                "Next": "RecordErrored",
            },
            "Bake": {"Type": "Wait", "SecondsPath": "$.poll.bake", "Next": "Advance"},
            "Advance": {
                "Type": "Pass",
                "InputPath": "$.poll.next",
                "ResultPath": "$.cursor",
                "Next": "Dispatch",
            },
            "Recover": {
                **_invoke(
                    recover,
                    {**common, "cursor.$": "$.cursor", "error.$": "$.error"},
                    dict(_OUT),
                ),
                "ResultPath": "$.poll",
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "RecordErrored"}
                ],
                "Next": "RecoverRoute",
            },
            "RecoverRoute": {
                "Type": "Choice",
                "Choices": [
                    choice("rollback", "Advance"),
                    choice("cancelled", "RecordCancelled"),
                ],
                "Default": "RecordErrored",
            },
            "RecordSucceeded": _finish(finish, "succeeded", "End"),
            "RecordFailed": _finish(finish, "failed", "DeployFailed"),
            "RecordTimedOut": _finish(finish, "timed_out", "DeployFailed"),
            "RecordCancelled": _finish(finish, "cancelled", "DeployFailed"),
            "RecordErrored": _finish(finish, "errored", "DeployFailed", **{"error.$": "$.error"}),
            "DeployFailed": {
                "Type": "Fail",
                "Error": "DeployFailed",
                "Cause": "the rollout did not succeed; the deploy record says why",
            },
        },
    }


def definition_json(function_arns: Mapping[str, str]) -> str:
    return json.dumps(build_definition(function_arns), indent=2, sort_keys=True)
