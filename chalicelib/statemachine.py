"""Builds the one generic rollout state machine (ASL JSON); the rollout plan is its input.

Shape: Dispatch (send one step's commands, <= 50 hosts each) -> Wait -> Poll (until every
command of the step is done) -> Route: next step, success, failure or timeout -> Finish.
Per-host detail goes to DynamoDB, never into the execution history, and each step costs the
same number of history events whatever its batch size, so one execution stays far below the
25,000-event cap. Any error in our Lambdas or AWS calls is caught and recorded as ``errored``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

FUNCTIONS = ("rollout_dispatch", "rollout_poll", "rollout_finish")
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
    }
]
_CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordErrored"}]


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


def build_definition(function_arns: Mapping[str, str]) -> dict[str, Any]:
    """The ASL definition; ``function_arns`` maps each name in FUNCTIONS to its ARN/name."""
    dispatch, poll, finish = (function_arns[name] for name in FUNCTIONS)
    common = {"deploy_id.$": "$.deploy_id", "plan.$": "$.plan", "parameters.$": "$.parameters"}
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
                **_invoke(
                    poll,
                    {**common, "wave.$": "$.wave"},
                    {"state.$": "$.Payload.state", "next.$": "$.Payload.next"},
                ),
                "ResultPath": "$.poll",
                "Catch": copy.deepcopy(_CATCH_ALL),
                "Next": "Route",
            },
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.poll.state", "StringEquals": "running", "Next": "WaitForHosts"},
                    {"Variable": "$.poll.state", "StringEquals": "next", "Next": "Advance"},
                    {"Variable": "$.poll.state", "StringEquals": "done", "Next": "RecordSucceeded"},
                    {"Variable": "$.poll.state", "StringEquals": "failed", "Next": "RecordFailed"},
                    {
                        "Variable": "$.poll.state",
                        "StringEquals": "timed_out",
                        "Next": "RecordTimedOut",
                    },
                ],
                "Default": "UnexpectedPollState",
            },
            "UnexpectedPollState": {
                "Type": "Pass",
                "Parameters": {
                    "Error": "UnexpectedPollState",
                    "Cause.$": "$.poll.state",
                },
                "ResultPath": "$.error",
                "Next": "RecordErrored",
            },
            "Advance": {
                "Type": "Pass",
                "InputPath": "$.poll.next",
                "ResultPath": "$.cursor",
                "Next": "Dispatch",
            },
            "RecordSucceeded": {
                **_invoke(finish, {"deploy_id.$": "$.deploy_id", "outcome": "succeeded"}, None),
                "ResultPath": None,
                "End": True,
            },
            "RecordFailed": {
                **_invoke(finish, {"deploy_id.$": "$.deploy_id", "outcome": "failed"}, None),
                "ResultPath": None,
                "Next": "DeployFailed",
            },
            "RecordTimedOut": {
                **_invoke(finish, {"deploy_id.$": "$.deploy_id", "outcome": "timed_out"}, None),
                "ResultPath": None,
                "Next": "DeployFailed",
            },
            "RecordErrored": {
                **_invoke(
                    finish,
                    {"deploy_id.$": "$.deploy_id", "outcome": "errored", "error.$": "$.error"},
                    None,
                ),
                "ResultPath": None,
                "Next": "DeployFailed",
            },
            "DeployFailed": {
                "Type": "Fail",
                "Error": "DeployFailed",
                "Cause": "the rollout did not succeed; the deploy record says why",
            },
        },
    }


def definition_json(function_arns: Mapping[str, str]) -> str:
    return json.dumps(build_definition(function_arns), indent=2, sort_keys=True)
