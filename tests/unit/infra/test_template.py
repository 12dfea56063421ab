"""The merge template is built from the code's definitions: models, ASL, SSM document, dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import (
    GlobalSecondaryIndex,
    IncludeProjection,
    KeysOnlyProjection,
    LocalSecondaryIndex,
)
from pynamodb.models import Model

from chalicelib.adapters import dynamo
from chalicelib.config import BUNDLED_CONFIG, load_pipeline
from chalicelib.statemachine import FUNCTIONS, build_definition
from infra import template
from infra.ssm_document import build_document

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")

# the bundled demo config, its local source path expanded as the packager does
DEMO = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/roadie-state"})


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    return template.build_merge_template("dev", DEMO)


def resources_of(merged: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in merged["Resources"].items() if v.get("Type") == kind}


def expected_key_schema(attributes: dict[str, Any]) -> list[dict[str, str]]:
    """HASH then RANGE, read straight off the attribute objects (not from _get_schema)."""
    keys = [("HASH", a) for a in attributes.values() if a.is_hash_key]
    keys += [("RANGE", a) for a in attributes.values() if a.is_range_key]
    return [{"AttributeName": a.attr_name, "KeyType": kind} for kind, a in keys]


def expected_table(model: type[Model]) -> dict[str, Any]:
    attributes = model.get_attributes()
    key_attrs = {a.attr_name: a.attr_type for a in attributes.values() if a.is_hash_key}
    key_attrs |= {a.attr_name: a.attr_type for a in attributes.values() if a.is_range_key}
    gsis: list[dict[str, Any]] = []
    lsis: list[dict[str, Any]] = []
    for index in model._indexes.values():
        idx_attrs = index.Meta.attributes
        key_attrs |= {
            a.attr_name: a.attr_type for a in idx_attrs.values() if a.is_hash_key or a.is_range_key
        }
        projection = {"ProjectionType": index.Meta.projection.projection_type}
        if index.Meta.projection.non_key_attributes:
            projection["NonKeyAttributes"] = index.Meta.projection.non_key_attributes
        entry = {
            "IndexName": index.Meta.index_name,
            "KeySchema": expected_key_schema(idx_attrs),
            "Projection": projection,
        }
        (gsis if isinstance(index, GlobalSecondaryIndex) else lsis).append(entry)
    return {
        "KeySchema": expected_key_schema(attributes),
        "AttributeDefinitions": sorted(
            ({"AttributeName": n, "AttributeType": t} for n, t in key_attrs.items()),
            key=lambda d: d["AttributeName"],
        ),
        "GlobalSecondaryIndexes": sorted(gsis, key=lambda i: i["IndexName"]),
        "LocalSecondaryIndexes": sorted(lsis, key=lambda i: i["IndexName"]),
    }


def actual_table(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": sorted(
            props["AttributeDefinitions"], key=lambda d: d["AttributeName"]
        ),
        "GlobalSecondaryIndexes": sorted(
            props.get("GlobalSecondaryIndexes", []), key=lambda i: i["IndexName"]
        ),
        "LocalSecondaryIndexes": sorted(
            props.get("LocalSecondaryIndexes", []), key=lambda i: i["IndexName"]
        ),
    }


def test_each_model_table_has_exactly_its_models_keys_and_indexes(
    merged: dict[str, Any],
) -> None:
    tables = resources_of(merged, "AWS::DynamoDB::Table")
    names = template.names("dev")
    by_model = {t.model: t for t in names.tables if t.model is not None}
    assert set(by_model) == set(dynamo.MODELS)
    for model, table in by_model.items():
        props = tables[table.logical_id]["Properties"]
        assert actual_table(props) == expected_table(model), model.__name__
        assert props["TableName"] == table.name
    assert set(tables) == {t.logical_id for t in names.tables}


def test_every_table_is_on_demand_with_recovery_and_encryption(merged: dict[str, Any]) -> None:
    for logical_id, table in resources_of(merged, "AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
        assert props["TableName"].startswith("roadie-dev-")


def test_the_idempotency_table_has_powertools_key_and_ttl(merged: dict[str, Any]) -> None:
    props = merged["Resources"][template.IDEMPOTENCY_TABLE]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["TableName"] == "roadie-dev-idempotency"


class _ByOwner(GlobalSecondaryIndex["_Toy"]):
    class Meta:
        index_name = "by_owner"
        projection = IncludeProjection(["title"])

    owner = UnicodeAttribute(hash_key=True)
    score = NumberAttribute(range_key=True)


class _ByScore(LocalSecondaryIndex["_Toy"]):
    class Meta:
        index_name = "by_score"
        projection = KeysOnlyProjection()

    pk = UnicodeAttribute(hash_key=True)
    score = NumberAttribute(range_key=True)


class _Toy(Model):
    class Meta:
        table_name = "toy"

    sk = UnicodeAttribute(range_key=True)  # declared before the hash key on purpose
    pk = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()
    score = NumberAttribute()
    title = UnicodeAttribute()
    expires = TTLAttribute()
    by_owner = _ByOwner()
    by_score = _ByScore()


def test_derivation_covers_range_keys_lsis_projections_and_ttl() -> None:
    props = template.table_properties(_Toy, "roadie-dev-toy")
    assert actual_table(props) == expected_table(_Toy)
    assert props["KeySchema"][0] == {"AttributeName": "pk", "KeyType": "HASH"}
    assert props["GlobalSecondaryIndexes"][0]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["title"],
    }
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}


def test_the_state_machine_is_build_definition_with_the_task_arns_substituted(
    merged: dict[str, Any],
) -> None:
    machine = merged["Resources"][template.STATE_MACHINE]["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["StateMachineName"] == "roadie-dev-rollout"
    substitutions = machine["DefinitionSubstitutions"]
    text = json.dumps(machine["Definition"])
    used = set(PLACEHOLDER.findall(text))
    assert used == set(substitutions), "every placeholder substituted, no spare substitution"
    # substitute each placeholder with the logical id its GetAtt names, then compare
    resolved: dict[str, str] = {}
    for key, value in substitutions.items():
        logical_id, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn"
        resolved[key] = logical_id
    definition = json.loads(PLACEHOLDER.sub(lambda m: resolved[m.group(1)], text))
    tasks = template.function_logical_ids()
    assert definition == build_definition({name: tasks[name] for name in FUNCTIONS})
    assert set(resolved.values()) == set(tasks.values())


def test_the_state_machine_role_invokes_only_the_three_task_functions(
    merged: dict[str, Any],
) -> None:
    role = merged["Resources"][template.STATE_MACHINE_ROLE]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "lambda:InvokeFunction"
    targets = {r["Fn::GetAtt"][0] for r in statement["Resource"]}
    assert targets == set(template.function_logical_ids().values())
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "states.amazonaws.com"}]


def test_the_ssm_document_is_build_document(merged: dict[str, Any]) -> None:
    props = merged["Resources"][template.SSM_DOCUMENT]["Properties"]
    assert props["Content"] == build_document()
    assert props["DocumentType"] == "Command"
    assert props["DocumentFormat"] == "JSON"
    assert props["Name"] == "Roadie-Deploy-dev"


def test_functions_get_names_log_groups_and_every_setting(merged: dict[str, Any]) -> None:
    names = template.names("dev")
    tasks = template.function_logical_ids()
    functions = {template.API_HANDLER: None, **{v: k for k, v in tasks.items()}}
    for logical_id, function in functions.items():
        props = merged["Resources"][logical_id]["Properties"]
        assert "Type" not in merged["Resources"][logical_id], "Chalice owns the resource type"
        assert props["FunctionName"] == names.function_name(function)
        log_group = merged["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{props['FunctionName']}"
        assert log_group["Properties"]["RetentionInDays"] > 0
        env = props["Environment"]["Variables"]
        for table in names.tables:
            assert env[table.env_var] == {"Ref": table.logical_id}
        assert env["ROADIE_SSM_DOCUMENT"] == {"Ref": template.SSM_DOCUMENT}
        assert env["ROADIE_API_TOKENS_PARAM"] == "/roadie/api-tokens"
        if logical_id == template.API_HANDLER:
            assert env["ROADIE_STATE_MACHINE_ARN"] == {"Ref": template.STATE_MACHINE}
        else:
            # the state machine depends on the task functions: a Ref back would be a cycle,
            # so they get the ARN built from the fixed name (rollout_finish starts queued deploys)
            assert env["ROADIE_STATE_MACHINE_ARN"] == {
                "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
                f":stateMachine:{names.state_machine}"
            }


def test_every_settings_variable_the_template_sets_is_one_the_code_reads() -> None:
    source = (Path(template.__file__).parents[1] / "chalicelib" / "config.py").read_text()
    read = set(re.findall(r'env\.get\(\s*"(ROADIE_[A-Z_]+)"', source))
    env = template.build_merge_template("dev", DEMO)["Resources"][template.API_HANDLER]
    assert set(env["Properties"]["Environment"]["Variables"]) - {"POWERTOOLS_SERVICE_NAME"} <= read


def test_the_template_dashboard_is_dashboard_body_of_the_configured_environments(
    merged: dict[str, Any],
) -> None:
    props = merged["Resources"][template.DASHBOARD]["Properties"]
    body = json.loads(props["DashboardBody"]["Fn::Sub"])
    pairs = template.configured_apps_envs(DEMO)
    assert ("shop", "production") in pairs and ("shop", "staging") in pairs
    assert body == template.dashboard_body(pairs, region="${AWS::Region}")
    assert set(PLACEHOLDER.findall(props["DashboardBody"]["Fn::Sub"])) == set()  # only ${AWS::}


def test_the_dashboard_graphs_the_four_metrics_per_app_and_environment() -> None:
    body = template.dashboard_body([("shop", "production"), ("api", "staging")], "eu-west-1")
    seen: set[tuple[str, str, str]] = set()
    for widget in body["widgets"]:
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24
        if widget["type"] != "metric":
            continue
        assert widget["properties"]["region"] == "eu-west-1"
        for metric in widget["properties"]["metrics"]:
            assert isinstance(metric, list), "each metric line is an array"
            if isinstance(metric[0], dict):
                continue  # a math or search expression
            namespace, name, d0, service, d1, app, d2, env, _options = metric
            assert (namespace, d0, service) == ("Roadie", "service", "roadie")
            assert (d1, d2) == ("app", "environment")
            seen.add((name, app, env))
    for name in template.METRICS:
        for app, env in (("shop", "production"), ("api", "staging")):
            assert (name, app, env) in seen
    json.dumps(body)  # PutDashboard takes it as JSON


def test_main_writes_the_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROADIE_STATE_DIR", "/srv/roadie-state")
    out = tmp_path / "out" / "merge-template.json"
    assert template.main([str(out)]) == 0
    assert json.loads(out.read_text()) == template.build_merge_template("dev", DEMO)
