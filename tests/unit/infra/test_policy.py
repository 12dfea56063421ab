"""The Lambda policy: least privilege, and it names exactly what the template creates."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import BUNDLED_CONFIG, load_pipeline
from chalicelib.statemachine import FUNCTIONS
from infra import template

POLICY = Path(template.__file__).resolve().parents[1] / ".chalice" / "policy-dev.json"
REGION, ACCOUNT = "eu-central-1", "123456789012"
# Actions AWS gives no resource-level permissions for (or that are namespace-scoped only).
STAR_ALLOWED = {
    "ec2:DescribeInstances",
    "ssm:ListCommands",
    "ssm:GetCommandInvocation",
    "cloudwatch:PutMetricData",
}

# the bundled demo config, its local source path expanded as the packager does
DEMO = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/roadie-state"})


@pytest.fixture(scope="module")
def statements() -> list[dict[str, Any]]:
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    return list(policy["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allowing(statements: list[dict[str, Any]], action: str, arn: str) -> list[dict[str, Any]]:
    """The statements that allow ``action`` on ``arn`` (IAM wildcards; conditions ignored)."""
    return [
        s
        for s in statements
        if s["Effect"] == "Allow"
        and any(fnmatchcase(action, a) for a in as_list(s["Action"]))
        and any(fnmatchcase(arn, r) for r in as_list(s["Resource"]))
    ]


def allowed(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    return bool(allowing(statements, action, arn))


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def test_every_statement_is_explained_allow_only_and_never_a_wildcard_action(
    statements: list[dict[str, Any]],
) -> None:
    sids = [s.get("Sid", "") for s in statements]
    assert all(sid.isalnum() for sid in sids), "every statement has a Sid saying why"
    assert len(set(sids)) == len(sids)
    for s in statements:
        assert s["Effect"] == "Allow"
        assert "NotAction" not in s and "NotResource" not in s
        for action in as_list(s["Action"]):
            assert action != "*" and not action.endswith(":*"), s["Sid"]
            assert "*" not in action, f"{s['Sid']}: spell the action out"


def test_star_resources_only_where_aws_offers_nothing_narrower(
    statements: list[dict[str, Any]],
) -> None:
    for s in statements:
        resources = as_list(s["Resource"])
        if "*" not in resources:
            for resource in resources:
                assert resource.startswith("arn:aws:"), resource
                assert resource.split(":")[3:5] == ["*", "*"], "region/account wildcards"
            continue
        assert resources == ["*"], s["Sid"]
        assert set(as_list(s["Action"])) <= STAR_ALLOWED, s["Sid"]
        if "cloudwatch:PutMetricData" in as_list(s["Action"]):
            assert s["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Roadie"}}


def test_the_tables_and_their_indexes_are_covered(statements: list[dict[str, Any]]) -> None:
    names = template.names("dev")
    merged = template.build_merge_template("dev", DEMO)
    for table in names.tables:
        table_arn = arn("dynamodb", f"table/{table.name}")
        for action in ("GetItem", "PutItem", "UpdateItem", "Query", "BatchWriteItem"):
            assert allowed(statements, f"dynamodb:{action}", table_arn), (action, table.name)
        assert allowed(statements, "dynamodb:ConditionCheckItem", table_arn)
        props = merged["Resources"][table.logical_id]["Properties"]
        for index in props.get("GlobalSecondaryIndexes", []):
            index_arn = f"{table_arn}/index/{index['IndexName']}"
            assert allowed(statements, "dynamodb:Query", index_arn)
    for other in ("table/someone-elses", "table/roadie-prod-deploys"):
        assert not allowed(statements, "dynamodb:GetItem", arn("dynamodb", other))


def test_deletes_and_scans_are_limited_to_the_table_that_needs_them(
    statements: list[dict[str, Any]],
) -> None:
    names = {t.logical_id: t.name for t in template.names("dev").tables}
    for logical_id, name in names.items():
        table_arn = arn("dynamodb", f"table/{name}")
        assert allowed(statements, "dynamodb:DeleteItem", table_arn) == (
            logical_id == template.IDEMPOTENCY_TABLE
        )
        assert allowed(statements, "dynamodb:Scan", table_arn) == (
            logical_id == "EnvironmentsTable"
        )


def test_run_command_only_with_the_roadie_document_on_app_tagged_instances(
    statements: list[dict[str, Any]],
) -> None:
    names = template.names("dev")
    assert allowed(statements, "ssm:SendCommand", arn("ssm", f"document/{names.document}"))
    for foreign in ("AWS-RunShellScript", "AWS-RunPowerShellScript", "Other"):
        assert not allowed(statements, "ssm:SendCommand", arn("ssm", f"document/{foreign}"))
    on_instances = allowing(statements, "ssm:SendCommand", arn("ec2", "instance/i-0123456789"))
    assert on_instances
    for s in on_instances:
        assert s["Condition"] == {"Null": {"ssm:resourceTag/App": "false"}}
    for action in ("ssm:ListCommands", "ssm:GetCommandInvocation"):
        assert allowed(statements, action, "*")


def test_parameters_and_their_decryption_are_limited_to_roadie(
    statements: list[dict[str, Any]],
) -> None:
    for name in template.names("dev").parameters.values():
        assert name.startswith("/")
        parameter = arn("ssm", f"parameter{name}")
        assert allowed(statements, "ssm:GetParameter", parameter)
    assert not allowed(statements, "ssm:GetParameter", arn("ssm", "parameter/other/secret"))
    (decrypt,) = allowing(statements, "kms:Decrypt", arn("kms", "key/any-key-id"))
    assert decrypt["Condition"]["StringLike"]["kms:ViaService"] == "ssm.*.amazonaws.com"


def test_executions_only_of_the_rollout_state_machine(statements: list[dict[str, Any]]) -> None:
    machine = template.names("dev").state_machine
    assert allowed(statements, "states:StartExecution", arn("states", f"stateMachine:{machine}"))
    execution = arn("states", f"execution:{machine}:deploy-1")
    for action in ("states:DescribeExecution", "states:StopExecution"):
        assert allowed(statements, action, execution)
    assert not allowed(statements, "states:StartExecution", arn("states", "stateMachine:other"))
    assert not allowed(statements, "states:StopExecution", arn("states", "execution:other:x"))


def test_logs_only_into_the_functions_log_groups(statements: list[dict[str, Any]]) -> None:
    merged = template.build_merge_template("dev", DEMO)
    groups = [
        r["Properties"]["LogGroupName"]
        for r in merged["Resources"].values()
        if r.get("Type") == "AWS::Logs::LogGroup"
    ]
    assert len(groups) == len(FUNCTIONS) + 2  # the API handler, each task function, reconcile
    for group in groups:
        stream = arn("logs", f"log-group:{group}:log-stream:2025/01/01/[$LATEST]abc")
        assert allowed(statements, "logs:PutLogEvents", stream)
        assert allowed(statements, "logs:CreateLogStream", stream)
    other = arn("logs", "log-group:/aws/lambda/other:log-stream:x")
    assert not allowed(statements, "logs:PutLogEvents", other)
    # the template owns the log groups (and their retention): the functions cannot make one
    assert not allowed(statements, "logs:CreateLogGroup", arn("logs", f"log-group:{groups[0]}"))
