"""CloudWatch alarms of a stage: what someone must look at, from day one.

- the rollout state machine: executions failed, timed out, aborted (``AWS/States``);
- every function's ``Errors``, and the reconciler not running at all (``AWS/Lambda``);
- per configured app and environment: deploys that failed or rolled back, and a lock held
  longer than the sum of the environment's phase timeouts (namespace ``Roadie``, published as
  EMF by ``chalicelib/adapters/metrics.py``);
- the REST API answering 5XX (``AWS/ApiGateway``; the contract never answers 5XX for bad input).

Alarms notify the ``AlarmTopicArn`` parameter's topic when one is given (both ALARM and OK).
Missing data is "not breaching" everywhere but the reconciler's heartbeat: no deploys, no
lock and no requests are the quiet normal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.metrics import CANCELLED, DIVERGED, FAILED, LOCK_AGE, NAMESPACE
from chalicelib.config import PipelineConfig
from chalicelib.domain.rollout import PhaseTimeouts

if TYPE_CHECKING:  # infra.template imports this module
    from infra.template import Names

SERVICE = "roadie"  # the service dimension Powertools adds to every Roadie metric
FIVE_MINUTES = 300
RECONCILE = "Reconcile"


def _logical_part(text: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", text))


def lock_age_threshold(timeouts: PhaseTimeouts) -> int:
    """Seconds a deploy may hold its environment's lock before it is surely stuck: the sum of
    its phase timeouts. (One switch batch's timeouts; a fleet switched in many batches, or a
    long bake, can legitimately take longer: raise the phase timeouts, or expect the alarm.)"""
    return sum(int(getattr(timeouts, name)) for name in PhaseTimeouts.__dataclass_fields__)


def _roadie_dimensions(app: str, env: str) -> list[dict[str, str]]:
    return [
        {"Name": "service", "Value": SERVICE},
        {"Name": "app", "Value": app},
        {"Name": "environment", "Value": env},
    ]


def _pairs(pipeline: PipelineConfig) -> Iterator[tuple[str, str, str, PhaseTimeouts]]:
    """(logical-id part, app, environment, timeouts) per configured environment."""
    seen: set[str] = set()
    for app_name, app in pipeline.apps.items():
        for env_name, env in app.environments.items():
            part = base = _logical_part(app_name) + _logical_part(env_name)
            number = 2
            while part in seen:  # "a-b"/"c" and "a"/"b-c" would both be "ABC"
                part, number = f"{base}{number}", number + 1
            seen.add(part)
            yield part, app_name, env_name, env.policy.timeouts


def alarms(
    n: Names,
    pipeline: PipelineConfig,
    *,
    functions: Sequence[str],
    state_machine: str,
    api_stage: str,
    topic: str,
    has_topic: str,
) -> dict[str, Any]:
    """Alarm resources by logical id (``functions``: the Lambda functions' logical ids)."""
    notify = {"Fn::If": [has_topic, [{"Ref": topic}], {"Ref": "AWS::NoValue"}]}

    def alarm(name: str, description: str, **props: Any) -> dict[str, Any]:
        props.setdefault("TreatMissingData", "notBreaching")
        props.setdefault("EvaluationPeriods", 1)
        return {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": n.alarm_name(name),
                "AlarmDescription": description,
                "ActionsEnabled": True,
                "AlarmActions": notify,
                "OKActions": notify,
                **props,
            },
        }

    def at_least_one(
        namespace: str, metric: str, dimensions: list[dict[str, Any]], period: int = FIVE_MINUTES
    ) -> dict[str, Any]:
        return {
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "Statistic": "Sum",
            "Period": period,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 1,
        }

    found: dict[str, Any] = {}
    machine = [{"Name": "StateMachineArn", "Value": {"Ref": state_machine}}]
    for metric, what, why in (
        (
            "ExecutionsFailed",
            "rollout-executions-failed",
            "A rollout execution failed. The definition ends in Fail for every deploy that "
            "did not succeed (cancelled included), so this also counts those; the per-"
            "environment deploys-failed alarms separate faults. Open the deploy record.",
        ),
        (
            "ExecutionsTimedOut",
            "rollout-executions-timed-out",
            "A rollout execution hit the state machine's timeout. The reconciler rolls its "
            "hosts back or ends it errored; check the deploy record and the hosts.",
        ),
        (
            "ExecutionsAborted",
            "rollout-executions-aborted",
            "A rollout execution was stopped (Roadie stops one only when its lease expired: "
            "the rollout made no progress). The reconciler recovers the environment.",
        ),
    ):
        found[f"Rollout{metric}Alarm"] = alarm(
            what, why, **at_least_one("AWS/States", metric, machine)
        )

    for logical_id in functions:
        dims = [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]
        if logical_id == RECONCILE:
            # it runs every minute and retries by itself at the next run: alarm when it keeps
            # failing (3 of the last 5 minutes), not on one blip
            props = at_least_one("AWS/Lambda", "Errors", dims, period=60)
            props.update(EvaluationPeriods=5, DatapointsToAlarm=3)
            description = (
                "The reconciler keeps failing: stuck locks and crashed rollouts are not being "
                "repaired. Read its log group."
            )
        else:
            props = at_least_one("AWS/Lambda", "Errors", dims)
            description = f"{logical_id} raised or timed out. Read its log group."
        found[f"{logical_id}ErrorsAlarm"] = alarm(
            f"{_kebab(logical_id)}-errors", description, **props
        )
    if RECONCILE in functions:
        dims = [{"Name": "FunctionName", "Value": {"Ref": RECONCILE}}]
        found["ReconcileNotRunningAlarm"] = alarm(
            "reconcile-not-running",
            "The reconciler has not run for 10 minutes (its schedule rule disabled or "
            "deleted?): nothing repairs stuck locks or crashed rollouts.",
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            Dimensions=dims,
            Statistic="Sum",
            Period=FIVE_MINUTES,
            EvaluationPeriods=2,
            ComparisonOperator="LessThanThreshold",
            Threshold=1,
            TreatMissingData="breaching",  # no invocations at all is exactly the problem
        )

    found["ApiServerErrorsAlarm"] = alarm(
        "api-5xx",
        "The Roadie API answered 5XX (it never does for bad input: a bug, a timeout or an "
        "AWS failure). Read the API handler's log group and the access log.",
        **at_least_one(
            "AWS/ApiGateway",
            "5XXError",
            [{"Name": "ApiName", "Value": n.api}, {"Name": "Stage", "Value": api_stage}],
        ),
    )

    for part, app, env, timeouts in _pairs(pipeline):
        roadie = _roadie_dimensions(app, env)
        found[f"DeploysFailed{part}Alarm"] = alarm(
            f"deploys-failed-{app}-{env}",
            f"A deploy of {app} to {env} failed, timed out, errored or was rolled back "
            "(cancels excluded). GET /deploys?app=...&environment=... says which and why.",
            Metrics=[
                _sum_of("failed", FAILED, roadie),
                _sum_of("cancelled", CANCELLED, roadie),
                {
                    "Id": "faults",
                    "Expression": "failed - cancelled",
                    "Label": "deploys failed or rolled back",
                    "ReturnData": True,
                },
            ],
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            Threshold=1,
        )
        found[f"FleetDiverged{part}Alarm"] = alarm(
            f"fleet-diverged-{app}-{env}",
            f"A deploy of {app} to {env} ended diverged: its hosts run different releases (a "
            "rollback failed). New deploys wait; the reconciler retries the rollback with "
            "backoff. GET /environments/<app>/<env> lists each host's release (fleet_state); "
            "fix the host, or run a force deploy.",
            **at_least_one(NAMESPACE, DIVERGED, roadie),
        )
        threshold = lock_age_threshold(timeouts)
        found[f"LockHeld{part}Alarm"] = alarm(
            f"lock-held-{app}-{env}",
            f"A deploy has held the {app}/{env} lock for more than {threshold} s, the sum of "
            "its phase timeouts: it is probably stuck. GET /environments/<app>/<env> shows "
            "the holder; cancel it, or let its lease expire.",
            Namespace=NAMESPACE,
            MetricName=LOCK_AGE,
            Dimensions=roadie,
            Statistic="Maximum",
            Period=FIVE_MINUTES,
            ComparisonOperator="GreaterThanThreshold",
            Threshold=threshold,
        )
    return found


def _sum_of(metric_id: str, metric: str, dimensions: list[dict[str, str]]) -> dict[str, Any]:
    """A Roadie metric's 5-minute sum inside a metric-math alarm (not itself alarmed on)."""
    return {
        "Id": metric_id,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
            "Period": FIVE_MINUTES,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }


def _kebab(logical_id: str) -> str:
    """``RolloutDispatch`` -> ``rollout-dispatch``; ``APIHandler`` -> ``api-handler``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", logical_id).lower()
