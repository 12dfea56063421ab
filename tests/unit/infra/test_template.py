"""The merge template is built from the code's definitions: models, ASL, SSM document, dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from chalice.utils import to_cfn_resource_name
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


def test_the_state_machine_logs_errors_to_its_own_log_group_and_is_traced(
    merged: dict[str, Any],
) -> None:
    props = merged["Resources"][template.STATE_MACHINE]["Properties"]
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ERROR"
    (destination,) = logging["Destinations"]
    group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group = merged["Resources"][group_id]["Properties"]
    assert group["LogGroupName"] == "/aws/vendedlogs/states/roadie-dev-rollout"
    assert group["RetentionInDays"] > 0
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["RoleArn"] == {"Fn::GetAtt": [template.STATE_MACHINE_ROLE, "Arn"]}
    trust = merged["Resources"][template.STATE_MACHINE_ROLE]["Properties"]
    statements = trust["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in statements] == [{"Service": "states.amazonaws.com"}]


def test_the_ssm_document_is_build_document(merged: dict[str, Any]) -> None:
    props = merged["Resources"][template.SSM_DOCUMENT]["Properties"]
    assert props["Content"] == build_document()
    assert props["DocumentType"] == "Command"
    assert props["DocumentFormat"] == "JSON"
    assert props["Name"] == "Roadie-Deploy-dev"


def test_the_template_covers_every_function_app_py_registers() -> None:
    from app import app  # the Chalice app: its routes, lambda_functions and schedules

    registered = {to_cfn_resource_name(f.name) for f in app.pure_lambda_functions}
    registered |= {to_cfn_resource_name(e.name) for e in app.event_sources}
    assert set(template.all_functions()) == registered | {template.API_HANDLER}
    assert set(template.SIZING) == set(template.all_functions())


def test_functions_get_names_log_groups_sizing_and_every_setting(merged: dict[str, Any]) -> None:
    names = template.names("dev")
    for logical_id, function in template.all_functions().items():
        props = merged["Resources"][logical_id]["Properties"]
        assert "Type" not in merged["Resources"][logical_id], "Chalice owns the resource type"
        assert props["FunctionName"] == names.function_name(function)
        log_group = merged["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{props['FunctionName']}"
        assert log_group["Properties"]["RetentionInDays"] > 0
        assert props["Timeout"] == template.SIZING[logical_id].timeout
        assert props["MemorySize"] == template.SIZING[logical_id].memory
        env = props["Environment"]["Variables"]
        for table in names.tables:
            assert env[table.env_var] == {"Ref": table.logical_id}
        assert env["ROADIE_SSM_DOCUMENT"] == {"Ref": template.SSM_DOCUMENT}
        assert env["ROADIE_API_TOKENS_PARAM"] == "/roadie/dev/api-tokens"
        assert env["ROADIE_GITHUB_SECRET_PARAM"] == "/roadie/dev/webhooks/github"
        assert env["ROADIE_POLL_SECONDS"] == {"Ref": "PollSeconds"}
        if logical_id == template.API_HANDLER:
            assert env["ROADIE_STATE_MACHINE_ARN"] == {"Ref": template.STATE_MACHINE}
        else:
            # the state machine depends on the task functions: a Ref back would be a cycle,
            # so they get the ARN built from the fixed name (finish and reconcile start deploys)
            assert env["ROADIE_STATE_MACHINE_ARN"] == {
                "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
                f":stateMachine:{names.state_machine}"
            }
        role = merged["Resources"][template.role_logical_id(function)]["Properties"]
        assert len(role["Policies"]) == 1, "a list: the merge replaces Chalice's policy"


def test_sizing_stays_under_the_callers_limits() -> None:
    assert template.SIZING[template.API_HANDLER].timeout < 29, "API Gateway's integration limit"
    assert template.SIZING["Reconcile"].timeout < 60, "it runs every minute"
    for sizing in template.SIZING.values():
        assert 128 <= sizing.memory <= 10240 and 1 <= sizing.timeout <= 900


# What the template leaves to the code's default, and why.
LEFT_TO_DEFAULTS = {
    "ROADIE_CONFIG": "the functions read the pipeline config bundled in the package",
    "ROADIE_MIRROR_METRICS": "local runtime only: moto has no EMF ingestion (AWS gets EMF)",
}


def _variables_config_reads() -> set[str]:
    source = (Path(template.__file__).parents[1] / "chalicelib" / "settings.py").read_text()
    return set(re.findall(r'env\.get\(\s*"(ROADIE_[A-Z0-9_]+)"', source))


def test_every_function_gets_every_setting_the_code_reads_and_no_other(
    merged: dict[str, Any],
) -> None:
    read = _variables_config_reads()
    assert "ROADIE_POLL_SECONDS" in read and "ROADIE_DEPLOYS_TABLE" in read
    for logical_id in template.all_functions():
        env = merged["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        assert set(env) <= read, logical_id
        assert read - set(env) == set(LEFT_TO_DEFAULTS), logical_id


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


def test_every_physical_name_follows_the_stage() -> None:
    n = template.names("prod")
    assert n.prefix == "roadie-prod"
    assert [t.name for t in n.tables] == [
        "roadie-prod-deploys",
        "roadie-prod-deploy-hosts",
        "roadie-prod-environments",
        "roadie-prod-audit",
        "roadie-prod-idempotency",
    ]
    assert (n.state_machine, n.document, n.dashboard, n.api) == (
        "roadie-prod-rollout",
        "Roadie-Deploy-prod",
        "roadie-prod-deploys",
        "roadie-prod",
    )
    assert n.function_name(None) == "roadie-prod"
    assert n.function_name("reconcile") == "roadie-prod-reconcile"
    assert dict(n.parameters) == {
        "ROADIE_API_TOKENS_PARAM": "/roadie/prod/api-tokens",
        "ROADIE_GITHUB_SECRET_PARAM": "/roadie/prod/webhooks/github",
        "ROADIE_GITLAB_SECRET_PARAM": "/roadie/prod/webhooks/gitlab",
        "ROADIE_BITBUCKET_SECRET_PARAM": "/roadie/prod/webhooks/bitbucket",
    }
    assert n.state_machine_log_group == "/aws/vendedlogs/states/roadie-prod-rollout"
    assert n.api_access_log_group == "/aws/apigateway/roadie-prod/access"
    assert n.alarm_name("api-5xx") == "roadie-prod-api-5xx"


@pytest.mark.parametrize("stage", ["prod", "staging"])
def test_no_dev_name_leaks_into_another_stages_template(stage: str) -> None:
    text = json.dumps(template.build_merge_template(stage, DEMO))
    assert "roadie-dev" not in text and "/roadie/dev/" not in text and "-dev" not in text
    assert f"roadie-{stage}-rollout" in text


def test_chalice_knows_the_dev_and_prod_stages() -> None:
    config = json.loads(template.CHALICE_CONFIG.read_text())
    assert {"dev", "prod"} <= set(config["stages"])
    assert config["autogen_policy"] is False
    for stage in config["stages"]:
        assert template.api_gateway_stage(stage) == "api"
        policy = template.CHALICE_CONFIG.parent / f"policy-{stage}.json"
        assert policy.is_file(), "chalice package needs the stage's policy file"


def test_every_parameter_has_a_default_that_deploys(merged: dict[str, Any]) -> None:
    params = merged["Parameters"]
    assert set(params) == {
        "PollSeconds",
        "AllowGitHubSha1",
        "AlarmTopicArn",
        "CreateApiGatewayAccountRole",
    }
    assert params["AllowGitHubSha1"]["Default"] == "0"
    assert all("Default" in p for p in params.values())
    poll = params["PollSeconds"]
    assert (poll["Type"], poll["Default"], poll["MinValue"]) == ("Number", 5, 1)
    assert params["AlarmTopicArn"]["Default"] == ""
    account = params["CreateApiGatewayAccountRole"]
    assert account["Default"] in account["AllowedValues"]
    used = json.dumps(merged["Resources"])
    for name in params:
        assert json.dumps({"Ref": name}) in json.dumps(merged), f"{name} is used"
    assert json.dumps({"Ref": "PollSeconds"}) in used


def test_api_access_logs_carry_no_tokens_and_calls_are_throttled_and_traced(
    merged: dict[str, Any],
) -> None:
    api = merged["Resources"][template.REST_API]
    assert "Type" not in api, "merged into Chalice's AWS::Serverless::Api"
    props = api["Properties"]
    assert props["Name"] == props["DefinitionBody"]["info"]["title"] == "roadie-dev"
    assert props["TracingEnabled"] is True
    log = props["AccessLogSetting"]
    group_id = log["DestinationArn"]["Fn::GetAtt"][0]
    group = merged["Resources"][group_id]["Properties"]["LogGroupName"]
    assert group == "/aws/apigateway/roadie-dev/access"
    fields = json.loads(log["Format"])
    assert {"requestId", "status", "resource", "latencyMs"} <= set(fields)
    for variable in fields.values():
        assert variable.startswith("$context.")
        for secret_bearing in ("querystring", "header", "useragent", "authorizer", "override"):
            assert secret_bearing not in variable.lower(), variable
    (settings,) = props["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert 0 < settings["ThrottlingRateLimit"] <= settings["ThrottlingBurstLimit"]
    assert settings["DataTraceEnabled"] is False and settings["LoggingLevel"] == "OFF"


def test_the_account_cloudwatch_role_is_optional_and_outlives_the_stack(
    merged: dict[str, Any],
) -> None:
    resources = merged["Resources"]
    account = resources[template.API_GATEWAY_ACCOUNT]
    role = resources[template.API_GATEWAY_ACCOUNT_ROLE]
    for resource in (account, role):
        assert resource["Condition"] == template.CREATES_ACCOUNT_ROLE
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    assert merged["Conditions"][template.CREATES_ACCOUNT_ROLE] == {
        "Fn::Equals": [{"Ref": "CreateApiGatewayAccountRole"}, "true"]
    }
    # the API's stage is created after the account setting, when the stack makes it
    variables = resources[template.REST_API]["Properties"]["Variables"]["Fn::If"]
    assert variables[0] == template.CREATES_ACCOUNT_ROLE
    assert variables[1] == {"ApiGatewayAccount": {"Ref": template.API_GATEWAY_ACCOUNT}}
    # nothing outside the API Gateway resources depends on them (the local stack drops them)
    for logical_id, resource in resources.items():
        if logical_id in (template.REST_API, template.API_GATEWAY_ACCOUNT):
            continue
        if not resource.get("Type", "").startswith("AWS::ApiGateway::"):
            assert json.dumps({"Ref": template.REST_API}) not in json.dumps(resource)
            assert '"RestAPI"' not in json.dumps(resource), logical_id


def test_outputs_give_the_urls_the_state_machine_and_the_tables(merged: dict[str, Any]) -> None:
    outputs = merged["Outputs"]
    base = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/webhooks/"
    for provider in ("github", "gitlab", "bitbucket"):
        url = outputs[f"{provider.capitalize()}WebhookUrl"]["Value"]["Fn::Sub"]
        assert url == base + provider
    dashboard = outputs["DashboardUrl"]["Value"]["Fn::Sub"]
    assert dashboard.endswith("#dashboards:name=roadie-dev-deploys")
    assert outputs["RolloutStateMachineArn"] == {"Value": {"Ref": template.STATE_MACHINE}}
    for table in template.names("dev").tables:
        assert outputs[f"{table.logical_id}Name"] == {"Value": {"Ref": table.logical_id}}
    assert {"DeployDocumentName", "DashboardName"} <= set(outputs)


def test_main_writes_the_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROADIE_STATE_DIR", "/srv/roadie-state")
    out = tmp_path / "out" / "merge-template.json"
    assert template.main([str(out)]) == 0
    assert json.loads(out.read_text()) == template.build_merge_template("dev", DEMO)


def test_api_gateways_own_answers_have_the_one_error_shape(merged: dict[str, Any]) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in merged["Resources"].values()
        if r.get("Type") == "AWS::ApiGateway::GatewayResponse"
    }
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "MISSING_AUTHENTICATION_TOKEN"} <= set(responses)
    for kind, properties in responses.items():
        assert properties["RestApiId"] == {"Ref": template.REST_API}
        body = properties["ResponseTemplates"]["application/json"]
        # API Gateway substitutes $context.error.messageString with a quoted JSON string
        sample = json.loads(body.replace("$context.error.messageString", '"why"'))
        assert set(sample) == {"error", "message"}, kind
        assert isinstance(sample["error"], str) and isinstance(sample["message"], str)
        assert properties["ResponseParameters"] == {
            "gatewayresponse.header.Content-Type": "'application/json'"
        }
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    assert "StatusCode" not in responses["DEFAULT_4XX"]  # keeps the status API Gateway chose
