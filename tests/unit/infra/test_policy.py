"""Each function's role policy in the merge template: least privilege, and exactly what its code
calls. ``violations()`` is the checker; a test widens policies on purpose to prove it bites."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import (
    BUNDLED_CONFIG,
    AppConfig,
    EnvironmentConfig,
    PipelineConfig,
    ScmConfig,
    Source,
    load_pipeline,
)
from chalicelib.domain.errors import ConfigError
from infra import iam, template

ROOT = Path(template.__file__).resolve().parents[1]
PARTITION, REGION, ACCOUNT = "aws", "eu-central-1", "123456789012"
PSEUDO = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
# Actions AWS authorises on no resource narrower than "*".
STAR_ONLY = {
    "ec2:DescribeInstances",
    "ssm:ListCommands",
    "ssm:GetCommandInvocation",
    "ssm:CancelCommand",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}
PINNED = re.compile(r"^arn:\$\{AWS::Partition\}:[a-z0-9-]+:\$\{AWS::Region\}:\$\{AWS::AccountId\}:")
S3_OBJECT = re.compile(r"^arn:\$\{AWS::Partition\}:s3:::[a-z0-9.-]+/\S+$")

# the bundled demo config, its local source path expanded as the packager does
DEMO = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/roadie-state"})
FUNCTIONS = list(template.all_functions())
PLANNERS = {"APIHandler", "RolloutFinish", "Reconcile"}  # functions that plan (resolve refs)


# --- a config with SCM tokens and an S3 source ------------------------------------------------


def with_scm(app: AppConfig, scm: ScmConfig | None, **changes: Any) -> AppConfig:
    return replace(app, scm=scm, **changes)


def _scm_pipeline() -> PipelineConfig:
    shop = DEMO.apps["shop"]
    staging = shop.environments["staging"]
    api_env = replace(staging, name="qa", host_tags={"App": "api", "Environment": "qa"})
    return PipelineConfig(
        {
            "shop": with_scm(
                shop, ScmConfig("github", "https://api.github.com", "/roadie/scm/shop")
            ),
            "api": with_scm(
                shop,
                ScmConfig(
                    "gitlab", "https://gitlab.example.com/api/v4", "secretsmanager:ci/gitlab"
                ),
                name="api",
                source=Source("s3", "s3://roadie-artifacts/builds"),
                environments={"qa": api_env},
            ),
            "docs": with_scm(shop, None, name="docs", environments={"qa": api_env}),
        }
    )


SCM = _scm_pipeline()


# --- resolving and evaluating policies ---------------------------------------------------------


def resolve(value: Any) -> Any:
    """What CloudFormation makes of a policy value in account ACCOUNT, region REGION."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"]
            unknown = set(re.findall(r"\$\{([^}]+)\}", text)) - set(PSEUDO)
            assert not unknown, f"unexpected substitution {unknown} in {text}"
            return re.sub(r"\$\{([^}]+)\}", lambda m: PSEUDO[m.group(1)], text)
        if set(value) == {"Ref"}:
            return PSEUDO[value["Ref"]]
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn"
            return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            values = [str(v) for v in as_list(expected)]
            actual = context.get(key)
            if operator == "Null":
                if (actual is None) != (values == ["true"]):
                    return False
            elif actual is None:
                return False
            elif operator == "StringEquals":
                if actual not in values:
                    return False
            elif operator in ("StringLike", "ArnLike"):
                if not any(fnmatchcase(actual, v) for v in values):
                    return False
            else:
                raise AssertionError(f"the test does not evaluate {operator}")
    return True


def allowing(
    statements: list[dict[str, Any]],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The statements that allow ``action`` on ``resource`` in ``context`` (IAM wildcards)."""
    found = []
    for raw in statements:
        s = resolve(raw)
        if s["Effect"] != "Allow":
            continue
        if not any(fnmatchcase(action, a) for a in as_list(s["Action"])):
            continue
        if not any(fnmatchcase(resource, r) for r in as_list(s["Resource"])):
            continue
        if not _condition_holds(s.get("Condition", {}), context or {}):
            continue
        found.append(raw)
    return found


def allowed(
    statements: list[dict[str, Any]],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    return bool(allowing(statements, action, resource, context))


def arn(service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


def role_statements(merged: dict[str, Any], role: str) -> list[dict[str, Any]]:
    (policy,) = merged["Resources"][role]["Properties"]["Policies"]
    assert policy["PolicyDocument"]["Version"] == "2012-10-17"
    return list(policy["PolicyDocument"]["Statement"])


def function_policies(merged: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        logical_id: role_statements(merged, template.role_logical_id(function))
        for logical_id, function in template.all_functions().items()
    }


# --- the checker ---------------------------------------------------------------------------


def violations(statements: list[dict[str, Any]]) -> list[str]:
    """Every rule a Roadie role policy must keep; an empty list means it keeps them all."""
    found: list[str] = []
    sids = [s.get("Sid", "") for s in statements]
    if len(set(sids)) != len(sids):
        found.append("duplicate Sid")
    for s in statements:
        sid = s.get("Sid", "")
        if not sid.isalnum():
            found.append(f"{sid!r}: every statement has a Sid saying why (letters, digits)")
        if s.get("Effect") != "Allow":
            found.append(f"{sid}: only Allow statements")
        for key in ("NotAction", "NotResource", "NotPrincipal"):
            if key in s:
                found.append(f"{sid}: {key} grants everything else")
        actions = as_list(s.get("Action", []))
        for action in actions:
            if "*" in action or "?" in action:
                found.append(f"{sid}: wildcard in action {action}")
            if action.lower() == "cloudwatch:putmetricdata":
                found.append(f"{sid}: PutMetricData (metrics leave as EMF on stdout)")
        resources = as_list(s.get("Resource", []))
        if "*" in resources:
            if resources != ["*"]:
                found.append(f"{sid}: '*' mixed with other resources")
            if not set(actions) <= STAR_ONLY:
                found.append(f"{sid}: '*' for {sorted(set(actions) - STAR_ONLY)}")
            if not sid.endswith(iam.STAR_SUFFIX):
                found.append(f"{sid}: a '*' statement's Sid says why ({iam.STAR_SUFFIX})")
            continue
        for resource in resources:
            if isinstance(resource, dict) and set(resource) == {"Fn::GetAtt"}:
                continue  # a resource of this stack: its own account and region
            text = resource.get("Fn::Sub") if isinstance(resource, dict) else None
            if not isinstance(text, str):
                found.append(f"{sid}: {resource!r} is not an Fn::Sub ARN")
            elif S3_OBJECT.match(text):
                owner = s.get("Condition", {}).get("StringEquals", {}).get("s3:ResourceAccount")
                if owner != {"Ref": "AWS::AccountId"}:
                    found.append(f"{sid}: S3 ARNs name no account: pin s3:ResourceAccount")
            elif not PINNED.match(text):
                found.append(f"{sid}: {text} is not pinned to the stack's partition/region/account")
            elif re.search(r":\*:|::\*", text):
                found.append(f"{sid}: {text} has a wildcard account or region")
        if "kms:Decrypt" in actions:
            found += _decrypt_violations(s)
        if "ssm:SendCommand" in actions:
            found += _send_command_violations(s)
    return found


def _decrypt_violations(s: dict[str, Any]) -> list[str]:
    sid = s["Sid"]
    equals = s.get("Condition", {}).get("StringEquals", {})
    like = s.get("Condition", {}).get("StringLike", {})
    via = resolve(equals.get("kms:ViaService"))
    if via == f"ssm.{REGION}.amazonaws.com":
        context = equals.get("kms:EncryptionContext:PARAMETER_ARN")
        if not context or any("*" in p for p in as_list(resolve(context))):
            return [f"{sid}: kms:Decrypt through SSM only for named parameters"]
        return []
    if via == f"secretsmanager.{REGION}.amazonaws.com":
        if not like.get("kms:EncryptionContext:SecretARN"):
            return [f"{sid}: kms:Decrypt through Secrets Manager only for named secrets"]
        return []
    return [f"{sid}: kms:Decrypt only via SSM or Secrets Manager of the stack's region"]


def _send_command_violations(s: dict[str, Any]) -> list[str]:
    sid = s["Sid"]
    problems = []
    for resource in as_list(resolve(s["Resource"])):
        if ":instance/" in resource:
            tags = s.get("Condition", {}).get("StringEquals", {})
            for tag in iam.REQUIRED_HOST_TAGS:
                value = tags.get(f"ssm:resourceTag/{tag}")
                if not isinstance(value, str) or "*" in value:
                    problems.append(f"{sid}: SendCommand on instances needs one exact {tag} tag")
        elif ":document/" in resource:
            if not re.search(r":document/Roadie-Deploy-[A-Za-z0-9_-]+$", resource):
                problems.append(f"{sid}: SendCommand only with the Roadie document")
        else:
            problems.append(f"{sid}: SendCommand on {resource}")
    return problems


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    return template.build_merge_template("dev", DEMO)


@pytest.fixture(scope="module")
def policies(merged: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return function_policies(merged)


@pytest.fixture(scope="module")
def scm_policies() -> dict[str, list[dict[str, Any]]]:
    return function_policies(template.build_merge_template("dev", SCM))


# --- the rules, on the real template -----------------------------------------------------------


@pytest.mark.parametrize("config", [DEMO, SCM], ids=["demo", "scm"])
@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_role_of_the_template_keeps_every_rule(config: PipelineConfig, stage: str) -> None:
    merged = template.build_merge_template(stage, config)
    roles = {
        logical_id: resource
        for logical_id, resource in merged["Resources"].items()
        if logical_id.endswith("Role") and "Policies" in resource.get("Properties", {})
    }
    expected = {template.role_logical_id(f) for f in template.all_functions().values()}
    assert expected | {template.STATE_MACHINE_ROLE} <= set(roles)
    for logical_id in roles:
        assert violations(role_statements(merged, logical_id)) == [], logical_id
    assert "PutMetricData" not in json.dumps(merged)


def test_no_role_is_over_iams_size_limit() -> None:
    for config in (DEMO, SCM):
        merged = template.build_merge_template("prod", config)
        for function in template.all_functions().values():
            role = template.role_logical_id(function)
            (policy,) = merged["Resources"][role]["Properties"]["Policies"]
            assert iam.resolved_size(policy["PolicyDocument"]) < iam.ROLE_POLICY_LIMIT / 2


def test_too_many_environments_for_one_role_is_refused_at_package_time() -> None:
    shop = DEMO.apps["shop"]
    staging = shop.environments["staging"]
    envs = {
        f"env{i}": replace(
            staging, name=f"env{i}", host_tags={"App": "shop", "Environment": f"e{i}"}
        )
        for i in range(120)
    }
    crowded = PipelineConfig({"shop": replace(shop, environments=envs)})
    with pytest.raises(ConfigError, match="over IAM's 10240"):
        template.build_merge_template("dev", crowded)


# --- the checker bites -----------------------------------------------------------------------

Mutation = Callable[[list[dict[str, Any]]], None]


def _add(statement: dict[str, Any]) -> Mutation:
    return lambda statements: statements.append(statement)


def _edit(sid: str, change: Callable[[dict[str, Any]], None]) -> Mutation:
    def apply(statements: list[dict[str, Any]]) -> None:
        (found,) = (s for s in statements if s["Sid"] == sid)
        change(found)

    return apply


# case -> (function, how its policy is widened, what the checker must say)
WIDENINGS: dict[str, tuple[str, Mutation, str]] = {
    "wildcard action": (
        "RolloutPoll",
        _edit("UseDeploysTable", lambda s: s.update(Action="dynamodb:*")),
        "wildcard in action",
    ),
    "star resource for a table": (
        "RolloutPoll",
        _edit("UseDeploysTable", lambda s: s.update(Resource="*")),
        "'*' for",
    ),
    "any region": (
        "RolloutPoll",
        _edit(
            "UseDeploysTable",
            lambda s: s.update(
                Resource={"Fn::Sub": "arn:aws:dynamodb:*:*:table/roadie-dev-deploys"}
            ),
        ),
        "not pinned",
    ),
    "put metric data": (
        "RolloutFinish",
        _add(
            {
                "Sid": "Metrics" + iam.STAR_SUFFIX,
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
            }
        ),
        "PutMetricData",
    ),
    "send command without tag condition": (
        "RolloutDispatch",
        _edit("SendCommandOnlyToShopStagingHosts", lambda s: s.pop("Condition")),
        "exact App tag",
    ),
    "send command with a tag wildcard": (
        "RolloutDispatch",
        _edit(
            "SendCommandOnlyToShopStagingHosts",
            lambda s: s["Condition"]["StringEquals"].update({"ssm:resourceTag/App": "*"}),
        ),
        "exact App tag",
    ),
    "any document": (
        "RolloutDispatch",
        _edit(
            "SendCommandOnlyWithTheStageDocument",
            lambda s: s.update(Resource=iam.arn("ssm", "document/AWS-RunShellScript")),
        ),
        "only with the Roadie document",
    ),
    "decrypt any key use": (
        "APIHandler",
        _edit("DecryptOnlyTheseParametersThroughSsm", lambda s: s.pop("Condition")),
        "only via SSM or Secrets Manager",
    ),
    "decrypt every parameter": (
        "APIHandler",
        _edit(
            "DecryptOnlyTheseParametersThroughSsm",
            lambda s: s["Condition"]["StringEquals"].update(
                {"kms:EncryptionContext:PARAMETER_ARN": iam.arn("ssm", "parameter/*")}
            ),
        ),
        "only for named parameters",
    ),
    "not action": (
        "RolloutRecover",
        _add({"Sid": "Sneaky", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
        "NotAction",
    ),
    "no sid": (
        "RolloutRecover",
        _edit("UseDeploysTable", lambda s: s.update(Sid="")),
        "has a Sid saying why",
    ),
    "star without saying why": (
        "RolloutPoll",
        _edit(
            "ReadCommandResults" + iam.STAR_SUFFIX,
            lambda s: s.update(Sid="ReadCommandResults"),
        ),
        "Sid says why",
    ),
    "s3 of any account": (
        "APIHandler",
        _add(
            {
                "Sid": "Artifacts",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::bucket/x/*"},
            }
        ),
        "s3:ResourceAccount",
    ),
}


@pytest.mark.parametrize("case", sorted(WIDENINGS))
def test_the_checker_catches_a_widened_policy(
    policies: dict[str, list[dict[str, Any]]], case: str
) -> None:
    function, widen, complaint = WIDENINGS[case]
    statements = copy.deepcopy(policies[function])
    assert violations(statements) == []
    widen(statements)
    found = violations(statements)
    assert any(complaint in v for v in found), found


# --- what each function may do: the trace of its code, written down a second time -----------

NAMES = template.names("dev")
TABLES = {t.logical_id: t.name for t in NAMES.tables}
MACHINE = NAMES.state_machine


def table(logical_id: str, index: str | None = None) -> str:
    found = arn("dynamodb", f"table/{TABLES[logical_id]}")
    return f"{found}/index/{index}" if index else found


# (action, resource, condition context) for each thing some function does
PROBES: dict[str, tuple[str, str, dict[str, str]]] = {
    "read deploy": ("dynamodb:GetItem", table("DeploysTable"), {}),
    "write deploy": ("dynamodb:PutItem", table("DeploysTable"), {}),
    "update deploy": ("dynamodb:UpdateItem", table("DeploysTable"), {}),
    "delete deploy": ("dynamodb:DeleteItem", table("DeploysTable"), {}),
    "list deploys by time": ("dynamodb:Query", table("DeploysTable", "by_time"), {}),
    "list deploys by env": ("dynamodb:Query", table("DeploysTable", "by_environment"), {}),
    "scan deploys": ("dynamodb:Scan", table("DeploysTable"), {}),
    "read environment": ("dynamodb:GetItem", table("EnvironmentsTable"), {}),
    "update environment": ("dynamodb:UpdateItem", table("EnvironmentsTable"), {}),
    "scan environments": ("dynamodb:Scan", table("EnvironmentsTable"), {}),
    "delete environment": ("dynamodb:DeleteItem", table("EnvironmentsTable"), {}),
    "write host rows": ("dynamodb:BatchWriteItem", table("HostsTable"), {}),
    "read host rows": ("dynamodb:Query", table("HostsTable"), {}),
    "idempotency get": ("dynamodb:GetItem", table("IdempotencyTable"), {}),
    "idempotency put": ("dynamodb:PutItem", table("IdempotencyTable"), {}),
    "idempotency update": ("dynamodb:UpdateItem", table("IdempotencyTable"), {}),
    "idempotency delete": ("dynamodb:DeleteItem", table("IdempotencyTable"), {}),
    "api tokens": ("ssm:GetParameter", arn("ssm", "parameter/roadie/dev/api-tokens"), {}),
    "github secret": ("ssm:GetParameter", arn("ssm", "parameter/roadie/dev/webhooks/github"), {}),
    "decrypt api tokens": (
        "kms:Decrypt",
        arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        {
            "kms:ViaService": f"ssm.{REGION}.amazonaws.com",
            "kms:EncryptionContext:PARAMETER_ARN": arn("ssm", "parameter/roadie/dev/api-tokens"),
        },
    ),
    "start execution": ("states:StartExecution", arn("states", f"stateMachine:{MACHINE}"), {}),
    "describe execution": (
        "states:DescribeExecution",
        arn("states", f"execution:{MACHINE}:d-20240501t120000-abcd1234"),
        {},
    ),
    "stop execution": (
        "states:StopExecution",
        arn("states", f"execution:{MACHINE}:d-20240501t120000-abcd1234"),
        {},
    ),
    "find hosts": ("ec2:DescribeInstances", "*", {}),
    "send command document": (
        "ssm:SendCommand",
        arn("ssm", f"document/{NAMES.document}"),
        {},
    ),
    "send command host": (
        "ssm:SendCommand",
        arn("ec2", "instance/i-0123456789abcdef0"),
        {"ssm:resourceTag/App": "shop", "ssm:resourceTag/Environment": "production"},
    ),
    "list commands": ("ssm:ListCommands", "*", {}),
    "command invocation": ("ssm:GetCommandInvocation", "*", {}),
    "cancel command": ("ssm:CancelCommand", "*", {}),
    "create log group": ("logs:CreateLogGroup", arn("logs", "log-group:/aws/lambda/x"), {}),
    "read host output": (
        "logs:GetLogEvents",
        arn("logs", "log-group:/roadie/dev/hosts/shop:log-stream:c-1/i-1/deploy/stdout"),
        {},
    ),
    "read other logs": (
        "logs:GetLogEvents",
        arn("logs", "log-group:/aws/lambda/roadie-dev:log-stream:x"),
        {},
    ),
    "read another stage's host output": (
        "logs:GetLogEvents",
        arn("logs", "log-group:/roadie/prod/hosts/shop:log-stream:c-1/i-1/deploy/stdout"),
        {},
    ),
    "write host output": (
        "logs:PutLogEvents",
        arn("logs", "log-group:/roadie/dev/hosts/shop:log-stream:c-1/i-1/deploy/stdout"),
        {},
    ),
}

EXPECTED: dict[str, set[str]] = {
    "APIHandler": {
        "read deploy",
        "write deploy",
        "list deploys by time",
        "list deploys by env",
        "read environment",
        "update environment",
        "read host rows",
        "idempotency get",
        "idempotency put",
        "idempotency update",
        "idempotency delete",
        "api tokens",
        "github secret",
        "decrypt api tokens",
        "start execution",
        "describe execution",
        "stop execution",
        "find hosts",
        "cancel command",
        "read host output",  # GET /deploys/{id}/log
    },
    "RolloutDispatch": {
        "read deploy",
        "write deploy",
        "read environment",
        "update environment",
        "write host rows",
        "send command document",
        "send command host",
    },
    "RolloutPoll": {
        "read deploy",
        "write deploy",
        "read environment",
        "update environment",
        "write host rows",
        "list commands",
        "command invocation",
        "cancel command",
    },
    "RolloutRecover": {"read deploy", "write deploy"},
    "RolloutFinish": {
        "read deploy",
        "write deploy",
        "read environment",
        "update environment",
        "start execution",
        "find hosts",
    },
    "Reconcile": {
        "read deploy",
        "write deploy",
        "read environment",
        "update environment",
        "scan environments",
        "start execution",
        "describe execution",
        "find hosts",
    },
}


def test_every_function_is_described() -> None:
    assert set(EXPECTED) == set(FUNCTIONS) == set(iam.ACCESS)


@pytest.mark.parametrize("function", sorted(EXPECTED))
def test_each_function_may_do_exactly_what_its_code_does(
    policies: dict[str, list[dict[str, Any]]], function: str
) -> None:
    statements = policies[function]
    can = {
        name for name, (action, res, ctx) in PROBES.items() if allowed(statements, action, res, ctx)
    }
    assert can == EXPECTED[function]


def test_the_api_starts_executions_but_never_runs_commands_on_hosts(
    policies: dict[str, list[dict[str, Any]]],
) -> None:
    api = policies["APIHandler"]
    assert allowed(api, "states:StartExecution", arn("states", f"stateMachine:{MACHINE}"))
    for resource in (arn("ssm", f"document/{NAMES.document}"), arn("ec2", "instance/i-1"), "*"):
        assert not allowed(api, "ssm:SendCommand", resource, PROBES["send command host"][2])


def test_the_poll_function_cannot_start_executions(
    policies: dict[str, list[dict[str, Any]]],
) -> None:
    for machine in (MACHINE, "roadie-prod-rollout", "other"):
        resource = arn("states", f"stateMachine:{machine}")
        assert not allowed(policies["RolloutPoll"], "states:StartExecution", resource)


def test_only_dispatch_sends_commands(policies: dict[str, list[dict[str, Any]]]) -> None:
    senders = [
        f
        for f, statements in policies.items()
        if any("ssm:SendCommand" in as_list(s["Action"]) for s in statements)
    ]
    assert senders == ["RolloutDispatch"]


def test_commands_only_with_the_stage_document_on_configured_hosts(
    policies: dict[str, list[dict[str, Any]]],
) -> None:
    dispatch = policies["RolloutDispatch"]
    assert allowed(dispatch, "ssm:SendCommand", arn("ssm", "document/Roadie-Deploy-dev"))
    for other in ("Roadie-Deploy-prod", "AWS-RunShellScript", "AWS-RunPowerShellScript"):
        assert not allowed(dispatch, "ssm:SendCommand", arn("ssm", f"document/{other}"))
    host = arn("ec2", "instance/i-0123456789abcdef0")
    for app, env in template.configured_apps_envs(DEMO):
        tags = DEMO.apps[app].environments[env].host_tags
        context = {f"ssm:resourceTag/{k}": v for k, v in tags.items()}
        assert allowed(dispatch, "ssm:SendCommand", host, context), (app, env)
    for context in (
        {},  # an untagged instance
        {"ssm:resourceTag/App": "shop"},
        {"ssm:resourceTag/App": "shop", "ssm:resourceTag/Environment": "qa"},
        {"ssm:resourceTag/App": "other", "ssm:resourceTag/Environment": "production"},
    ):
        assert not allowed(dispatch, "ssm:SendCommand", host, context), context
    # in another account or region, nothing
    foreign = host.replace(ACCOUNT, "999999999999")
    assert not allowed(dispatch, "ssm:SendCommand", foreign, PROBES["send command host"][2])


def test_an_environment_without_app_and_environment_tags_is_refused() -> None:
    shop = DEMO.apps["shop"]
    untagged: EnvironmentConfig = replace(shop.environments["staging"], host_tags={"Role": "web"})
    config = PipelineConfig({"shop": replace(shop, environments={"staging": untagged})})
    with pytest.raises(ConfigError, match=r"apps\.shop\.environments\.staging\.hosts\.tags"):
        template.build_merge_template("dev", config)


def test_secrets_are_the_stages_and_decrypted_only_through_ssm(
    policies: dict[str, list[dict[str, Any]]],
) -> None:
    api = policies["APIHandler"]
    for name in template.names("dev").parameters.values():
        assert name.startswith("/roadie/dev/")
        assert allowed(api, "ssm:GetParameter", arn("ssm", f"parameter{name}"))
        assert not allowed(
            api, "ssm:GetParameter", arn("ssm", f"parameter{name}").replace("/dev/", "/prod/")
        )
    assert not allowed(api, "ssm:GetParameters", arn("ssm", "parameter/roadie/dev/api-tokens"))
    action, key, context = PROBES["decrypt api tokens"]
    assert allowed(api, action, key, context)
    prod_token = arn("ssm", "parameter/roadie/prod/api-tokens")
    assert not allowed(
        api, action, key, {**context, "kms:EncryptionContext:PARAMETER_ARN": prod_token}
    )
    assert not allowed(
        api, action, key, {**context, "kms:ViaService": "s3.eu-central-1.amazonaws.com"}
    )
    assert not allowed(api, action, key, {})  # a direct Decrypt, not through SSM


def test_logs_only_into_each_functions_own_log_group(
    merged: dict[str, Any], policies: dict[str, list[dict[str, Any]]]
) -> None:
    names = template.names("dev")
    for logical_id, function in template.all_functions().items():
        group = f"/aws/lambda/{names.function_name(function)}"
        assert merged["Resources"][f"{logical_id}LogGroup"]["Properties"]["LogGroupName"] == group
        stream = arn("logs", f"log-group:{group}:log-stream:2025/01/01/[$LATEST]abc")
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            assert allowed(policies[logical_id], action, stream)
        for other_id, other in policies.items():
            if other_id != logical_id:
                assert not allowed(other, "logs:PutLogEvents", stream), (other_id, group)


# --- SCM ref resolution (the API and the functions that start queued deploys) -------------------


def test_only_planning_functions_read_scm_tokens_and_refs(
    scm_policies: dict[str, list[dict[str, Any]]],
) -> None:
    token = arn("ssm", "parameter/roadie/scm/shop")
    secret = arn("secretsmanager", "secret:ci/gitlab-AbCdEf")
    refs = f"arn:{PARTITION}:s3:::roadie-artifacts/builds/api/refs/heads/main"
    owner = {"s3:ResourceAccount": ACCOUNT}
    decrypt_token = {
        "kms:ViaService": f"ssm.{REGION}.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": token,
    }
    for function, statements in scm_policies.items():
        planner = function in PLANNERS
        assert allowed(statements, "ssm:GetParameter", token) is planner, function
        assert allowed(statements, "secretsmanager:GetSecretValue", secret) is planner, function
        assert allowed(statements, "s3:GetObject", refs, owner) is planner, function
        assert allowed(statements, "kms:Decrypt", arn("kms", "key/k"), decrypt_token) is planner
    api = scm_policies["APIHandler"]
    # nothing wider: another secret, another app's refs, the artifacts, another bucket owner
    assert not allowed(
        api, "secretsmanager:GetSecretValue", arn("secretsmanager", "secret:ci/other-AbCdEf")
    )
    assert not allowed(
        api, "secretsmanager:GetSecretValue", arn("secretsmanager", "secret:ci/gitlab-extra-AbCdEf")
    )
    for key in ("builds/shop/refs/x", "builds/api/abc.tar.gz", "builds/api/refsx"):
        assert not allowed(
            api, "s3:GetObject", f"arn:{PARTITION}:s3:::roadie-artifacts/{key}", owner
        )
    assert not allowed(api, "s3:GetObject", refs, {"s3:ResourceAccount": "999999999999"})


@pytest.mark.parametrize(
    "token",
    ["ghp_literal_token", "secretsmanager:", "secretsmanager:arn:aws:secretsmanager:x"],
)
def test_an_scm_token_the_policy_cannot_name_is_refused(token: str) -> None:
    shop = DEMO.apps["shop"]
    config = PipelineConfig(
        {"shop": with_scm(shop, ScmConfig("github", "https://api.github.com", token))}
    )
    with pytest.raises(ConfigError, match=r"apps\.shop\.scm\.token"):
        template.build_merge_template("dev", config)


def test_the_demo_config_grants_no_scm_access(policies: dict[str, list[dict[str, Any]]]) -> None:
    text = json.dumps(policies)
    assert "secretsmanager" not in text and "s3:GetObject" not in text


# --- the state machine's role and Chalice's policy files ---------------------------------------


def test_the_state_machine_role_invokes_the_task_functions_and_delivers_logs_and_traces(
    merged: dict[str, Any],
) -> None:
    statements = role_statements(merged, template.STATE_MACHINE_ROLE)
    assert violations(statements) == []
    for task in template.function_logical_ids().values():  # resolve() names them by logical id
        assert allowed(statements, "lambda:InvokeFunction", arn("lambda", f"function:{task}"))
    for other in ("Reconcile", "APIHandler", "someone-elses"):
        assert not allowed(statements, "lambda:InvokeFunction", arn("lambda", f"function:{other}"))
    assert allowed(statements, "logs:CreateLogDelivery", "*")
    assert allowed(statements, "xray:PutTraceSegments", "*")


def test_chalices_policy_files_are_placeholders_that_grant_nothing() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert {"dev", "prod"} <= set(config["stages"])
    for stage in config["stages"]:
        policy = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
        assert all(s["Effect"] == "Deny" for s in policy["Statement"]), stage
        assert "Replaces" in policy["Statement"][0]["Sid"]
