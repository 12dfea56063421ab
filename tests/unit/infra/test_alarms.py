"""The stage's alarms: what they watch, when they fire, whom they tell."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.adapters.metrics import DIVERGED, LOCK_AGE, NAMESPACE
from chalicelib.config import BUNDLED_CONFIG, load_pipeline
from infra import alarms, template

DEMO = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/roadie-state"})


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    return template.build_merge_template("dev", DEMO)


def alarms_of(merged: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: v["Properties"]
        for k, v in merged["Resources"].items()
        if v.get("Type") == "AWS::CloudWatch::Alarm"
    }


def test_every_alarm_is_named_by_stage_and_notifies_only_a_given_topic(
    merged: dict[str, Any],
) -> None:
    found = alarms_of(merged)
    assert found
    names = [p["AlarmName"] for p in found.values()]
    assert len(set(names)) == len(names)
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for logical_id, props in found.items():
        assert re.fullmatch(r"[A-Za-z0-9]+", logical_id)
        assert props["AlarmName"].startswith("roadie-dev-")
        assert props["AlarmActions"] == props["OKActions"] == notify
        assert props["AlarmDescription"]
        assert props["TreatMissingData"] in ("notBreaching", "breaching")
    assert merged["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }


def test_the_state_machine_alarms_on_failed_timed_out_and_aborted_executions(
    merged: dict[str, Any],
) -> None:
    found = alarms_of(merged)
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        props = found[f"Rollout{metric}Alarm"]
        assert (props["Namespace"], props["MetricName"]) == ("AWS/States", metric)
        assert props["Dimensions"] == [
            {"Name": "StateMachineArn", "Value": {"Ref": template.STATE_MACHINE}}
        ]
        assert props["Threshold"] == 1 and props["Statistic"] == "Sum"


def test_every_function_alarms_on_errors_and_the_reconciler_on_not_running(
    merged: dict[str, Any],
) -> None:
    found = alarms_of(merged)
    for logical_id in template.all_functions():
        props = found[f"{logical_id}ErrorsAlarm"]
        assert (props["Namespace"], props["MetricName"]) == ("AWS/Lambda", "Errors")
        assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]
        assert props["TreatMissingData"] == "notBreaching"
    reconcile = found["ReconcileErrorsAlarm"]
    assert (reconcile["Period"], reconcile["DatapointsToAlarm"]) == (60, 3)
    heartbeat = found["ReconcileNotRunningAlarm"]
    assert heartbeat["MetricName"] == "Invocations"
    assert heartbeat["ComparisonOperator"] == "LessThanThreshold"
    assert heartbeat["TreatMissingData"] == "breaching"


def test_the_api_alarms_on_5xx_of_its_own_stage(merged: dict[str, Any]) -> None:
    props = alarms_of(merged)["ApiServerErrorsAlarm"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    api = merged["Resources"][template.REST_API]["Properties"]["Name"]
    assert props["Dimensions"] == [
        {"Name": "ApiName", "Value": api},
        {"Name": "Stage", "Value": template.api_gateway_stage("dev")},
    ]


def test_failed_deploys_alarm_per_environment_without_counting_cancels(
    merged: dict[str, Any],
) -> None:
    found = alarms_of(merged)
    for app, env in template.configured_apps_envs(DEMO):
        part = app.capitalize() + env.capitalize()
        props = found[f"DeploysFailed{part}Alarm"]
        by_id = {m["Id"]: m for m in props["Metrics"]}
        returned = [m for m in props["Metrics"] if m["ReturnData"]]
        assert [m["Id"] for m in returned] == ["faults"]
        assert by_id["faults"]["Expression"] == "failed - cancelled"
        dims = [
            {"Name": "service", "Value": "roadie"},
            {"Name": "app", "Value": app},
            {"Name": "environment", "Value": env},
        ]
        for metric_id, name in (("failed", "DeployFailed"), ("cancelled", "DeployCancelled")):
            metric = by_id[metric_id]["MetricStat"]["Metric"]
            assert metric == {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims}
        assert "SEARCH" not in str(props)


def test_a_diverged_fleet_alarms_per_environment(merged: dict[str, Any]) -> None:
    found = alarms_of(merged)
    for part, env in (("ShopProduction", "production"), ("ShopStaging", "staging")):
        props = found[f"FleetDiverged{part}Alarm"]
        assert (props["Namespace"], props["MetricName"]) == (NAMESPACE, DIVERGED)
        assert props["Dimensions"] == [
            {"Name": "service", "Value": "roadie"},
            {"Name": "app", "Value": "shop"},
            {"Name": "environment", "Value": env},
        ]
        assert (props["Statistic"], props["Threshold"]) == ("Sum", 1)
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert props["AlarmName"] == f"roadie-dev-fleet-diverged-shop-{env}"
        assert "fleet_state" in props["AlarmDescription"]


def test_a_lock_held_past_the_sum_of_the_phase_timeouts_alarms(merged: dict[str, Any]) -> None:
    found = alarms_of(merged)
    production = found["LockHeldShopProductionAlarm"]
    assert (production["Namespace"], production["MetricName"]) == (NAMESPACE, LOCK_AGE)
    assert production["Statistic"] == "Maximum"
    # the bundled config: stage 600 + migrate 900 + switch 120 + verify 120 + post 900 + rb 120
    assert production["Threshold"] == 2760
    staging = found["LockHeldShopStagingAlarm"]
    assert staging["Threshold"] == 900 + 1800 + 300 + 300 + 1800 + 300  # the defaults


def test_logical_ids_stay_unique_when_names_collide_after_cleaning() -> None:
    shop = DEMO.apps["shop"]
    env = shop.environments["staging"]
    tricky = {
        "a-b": {"c": env},
        "a": {"b-c": env},
    }
    config = type(DEMO)(
        {
            name: type(shop)(**{**shop.__dict__, "name": name, "environments": envs})
            for name, envs in tricky.items()
        }
    )
    found = alarms.alarms(
        template.names("dev"),
        config,
        functions=[],
        state_machine=template.STATE_MACHINE,
        api_stage="api",
        topic="T",
        has_topic="H",
    )
    assert {"DeploysFailedABCAlarm", "DeploysFailedABC2Alarm"} <= set(found)
