"""The CloudFormation merge template for `chalice package`, built from the code's definitions."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice.utils import to_cfn_resource_name
from pynamodb.models import Model

from chalicelib.adapters import dynamo, idempotency
from chalicelib.adapters.metrics import NAMESPACE
from chalicelib.config import BUNDLED_CONFIG, PipelineConfig, Settings, load_pipeline
from chalicelib.statemachine import FUNCTIONS, build_definition
from infra.ssm_document import DOCUMENT_NAME, build_document

ROOT = Path(__file__).resolve().parents[1]
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
# Chalice's logical id for the one function that serves every HTTP route.
API_HANDLER = "APIHandler"
STATE_MACHINE = "RolloutStateMachine"
STATE_MACHINE_ROLE = "RolloutStateMachineRole"
SSM_DOCUMENT = "DeployDocument"
DASHBOARD = "DeployDashboard"
IDEMPOTENCY_TABLE = "IdempotencyTable"
LOG_RETENTION_DAYS = 30
METRICS = ("DeployFinished", "DeploySucceeded", "DeployFailed", "DeployDuration")


@dataclass(frozen=True)
class Table:
    """One DynamoDB table of the stack and how the functions learn its name."""

    logical_id: str
    env_var: str
    name: str
    model: type[Model] | None  # None: the idempotency table (Powertools owns its items)


@dataclass(frozen=True)
class Names:
    """Every physical name of a stage; the policy file names the same ones (a test checks)."""

    stage: str
    prefix: str  # "<app>-<stage>": Chalice's own naming for the stage's functions
    tables: tuple[Table, ...]
    state_machine: str
    document: str
    dashboard: str
    parameters: Mapping[str, str]  # env var -> SSM parameter name (SecureStrings made by hand)

    def function_name(self, function: str | None) -> str:
        """`<app>-<stage>` for the API handler, `<app>-<stage>-<name>` for a lambda_function."""
        return self.prefix if function is None else f"{self.prefix}-{function}"


def app_name() -> str:
    return str(json.loads(CHALICE_CONFIG.read_text(encoding="utf-8"))["app_name"])


def names(stage: str = "dev") -> Names:
    prefix = f"{app_name()}-{stage}"
    # The table names are Settings' own defaults under the stage's prefix ("roadie-dev-deploys").
    staged = Settings.from_env({"ROADIE_RESOURCE_PREFIX": prefix})
    shared = Settings.from_env({})  # parameters stay at Settings' defaults, /roadie/...
    by_model: dict[type[Model], Table] = {
        dynamo.DeployModel: Table(
            "DeploysTable", "ROADIE_DEPLOYS_TABLE", staged.deploys_table, dynamo.DeployModel
        ),
        dynamo.HostResultModel: Table(
            "HostsTable", "ROADIE_HOSTS_TABLE", staged.hosts_table, dynamo.HostResultModel
        ),
        dynamo.EnvironmentModel: Table(
            "EnvironmentsTable",
            "ROADIE_ENVIRONMENTS_TABLE",
            staged.environments_table,
            dynamo.EnvironmentModel,
        ),
    }
    missing = [model.__name__ for model in dynamo.MODELS if model not in by_model]
    if missing:
        raise ValueError(f"no table in the template for {', '.join(missing)}: add it to names()")
    idempotency = Table(
        IDEMPOTENCY_TABLE, "ROADIE_IDEMPOTENCY_TABLE", staged.idempotency_table, None
    )
    return Names(
        stage=stage,
        prefix=prefix,
        tables=(*(by_model[model] for model in dynamo.MODELS), idempotency),
        state_machine=f"{prefix}-rollout",
        document=f"{DOCUMENT_NAME}-{stage}",
        dashboard=f"{prefix}-deploys",
        parameters={
            "ROADIE_API_TOKENS_PARAM": shared.api_tokens_param,
            "ROADIE_GITHUB_SECRET_PARAM": shared.github_secret_param,
            "ROADIE_GITLAB_SECRET_PARAM": shared.gitlab_secret_param,
            "ROADIE_BITBUCKET_SECRET_PARAM": shared.bitbucket_secret_param,
        },
    )


def function_logical_ids() -> dict[str, str]:
    """Chalice's logical id of each rollout task (`rollout_dispatch` -> `RolloutDispatch`)."""
    return {name: to_cfn_resource_name(name) for name in FUNCTIONS}


# --- DynamoDB ------------------------------------------------------------------------------


def _key_schema(elements: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """CloudFormation wants HASH before RANGE (PynamoDB's schema lists them in any order)."""
    ordered = sorted(elements, key=lambda e: e["KeyType"])  # "HASH" < "RANGE"
    return [{"AttributeName": e["AttributeName"], "KeyType": e["KeyType"]} for e in ordered]


def _attribute_definitions(groups: Iterable[Iterable[Mapping[str, Any]]]) -> list[dict[str, str]]:
    seen: dict[str, str] = {}
    for group in groups:
        for attr in group:
            name, kind = attr["AttributeName"], attr["AttributeType"]
            if seen.setdefault(name, kind) != kind:
                raise ValueError(f"attribute {name} is declared as {seen[name]} and {kind}")
    return [{"AttributeName": n, "AttributeType": t} for n, t in seen.items()]


def table_properties(model: type[Model], table_name: str) -> dict[str, Any]:
    """Key schema, attributes and indexes exactly as the PynamoDB model declares them."""
    schema = model._get_schema()
    gsis = schema["global_secondary_indexes"]
    lsis = schema["local_secondary_indexes"]
    props: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": _attribute_definitions(
            [schema["attribute_definitions"], *(i["attribute_definitions"] for i in gsis + lsis)]
        ),
        "KeySchema": _key_schema(schema["key_schema"]),
    }
    if gsis:
        props["GlobalSecondaryIndexes"] = [
            {
                "IndexName": i["index_name"],
                "KeySchema": _key_schema(i["key_schema"]),
                "Projection": dict(i["projection"]),
            }
            for i in gsis
        ]
    if lsis:
        props["LocalSecondaryIndexes"] = [
            {
                "IndexName": i["index_name"],
                "KeySchema": _key_schema(i["key_schema"]),
                "Projection": dict(i["projection"]),
            }
            for i in lsis
        ]
    ttl = model._ttl_attribute()
    if ttl is not None:
        props["TimeToLiveSpecification"] = {"AttributeName": ttl.attr_name, "Enabled": True}
    return props


def idempotency_table_properties(table_name: str) -> dict[str, Any]:
    """The Powertools idempotency table, keyed and expired as ``adapters.idempotency`` says."""
    key = idempotency.KEY_ATTRIBUTE
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "TimeToLiveSpecification": {
            "AttributeName": idempotency.EXPIRY_ATTRIBUTE,
            "Enabled": True,
        },
    }


def _table_resource(table: Table) -> dict[str, Any]:
    if table.model is None:
        props = idempotency_table_properties(table.name)
    else:
        props = table_properties(table.model, table.name)
    props["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
    props["SSESpecification"] = {"SSEEnabled": True}
    return {
        "Type": "AWS::DynamoDB::Table",
        # deploy records are the audit trail: never lose them to a stack delete or replacement
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": props,
    }


# --- CloudWatch dashboard -------------------------------------------------------------------


def _metric(name: str, app: str, env: str, stat: str, **extra: Any) -> list[Any]:
    # Powertools adds the service dimension to every EMF metric; the local mirror does too.
    return [
        NAMESPACE,
        name,
        "service",
        "roadie",
        "app",
        app,
        "environment",
        env,
        {"stat": stat, **extra},
    ]


def dashboard_body(apps_envs: list[tuple[str, str]], region: str = "us-east-1") -> dict[str, Any]:
    """The deploy dashboard (namespace Roadie, dimensions app + environment) for PutDashboard.

    The template passes ``region="${AWS::Region}"`` inside an ``Fn::Sub``; the local stack
    passes its region.
    """
    pairs = sorted(set(apps_envs))

    def graph(title: str, metrics: list[Any], x: int, y: int, **props: Any) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "view": "timeSeries",
                "period": 3600,
                "metrics": metrics,
                **props,
            },
        }

    finished = [_metric("DeployFinished", a, e, "Sum", label=f"{a}/{e}") for a, e in pairs]
    outcomes = [
        _metric(name, a, e, "Sum", label=f"{a}/{e} {word}")
        for a, e in pairs
        for name, word in (("DeploySucceeded", "succeeded"), ("DeployFailed", "failed"))
    ]
    durations = [
        _metric("DeployDuration", a, e, stat, label=f"{a}/{e} {stat.lower()}")
        for a, e in pairs
        for stat in ("Average", "Maximum")
    ]
    rates: list[list[Any]] = []
    for i, (a, e) in enumerate(pairs):
        rates.append(_metric("DeploySucceeded", a, e, "Sum", id=f"ok{i}", visible=False))
        rates.append(_metric("DeployFinished", a, e, "Sum", id=f"all{i}", visible=False))
        rates.append(
            [{"expression": f"100 * ok{i} / all{i}", "label": f"{a}/{e}", "id": f"rate{i}"}]
        )
    # Matches every Roadie DeployFinished series whatever its dimensions, so an app or
    # environment added to the config later shows up here before the template is rebuilt.
    search = [
        [
            {
                "expression": "SEARCH('Roadie MetricName=\"DeployFinished\"', 'Sum', 3600)",
                "id": "search",
                "label": "",
            }
        ]
    ]
    markdown = (
        f"# Roadie deploys\nNamespace `{NAMESPACE}`, metrics {', '.join(METRICS)} "
        "per `app` and `environment`. The deploy record (`GET /deploys/{id}`) has the details."
    )
    return {
        "start": "-P7D",
        "widgets": [
            {
                "type": "text",
                "x": 0,
                "y": 0,
                "width": 24,
                "height": 2,
                "properties": {"markdown": markdown},
            },
            graph("Deploys finished", finished, 0, 2, stacked=True),
            graph("Succeeded / failed", outcomes, 12, 2),
            graph("Deploy duration (seconds)", durations, 0, 8),
            graph("Success rate (%)", rates, 12, 8, yAxis={"left": {"min": 0, "max": 100}}),
            graph("Deploys finished, every series in the namespace", search, 0, 14),
        ],
    }


def configured_apps_envs(pipeline: PipelineConfig) -> list[tuple[str, str]]:
    """(app, environment) pairs of the pipeline config the package bundles."""
    return [(app, env) for app, spec in pipeline.apps.items() for env in spec.environments]


# --- the template ---------------------------------------------------------------------------


def _lambda_log_group(function_name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Logs::LogGroup",
        # explicit (cfn-lint I3011): logs go with the stack and expire; records stay in DynamoDB
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "LogGroupName": f"/aws/lambda/{function_name}",
            "RetentionInDays": LOG_RETENTION_DAYS,
        },
    }


def state_machine_arn_sub(n: Names) -> dict[str, str]:
    """The state machine's ARN built from its fixed name: usable where a Ref would be a cycle."""
    return {
        "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:"
        + n.state_machine
    }


def _state_machine_role(n: Names, task_ids: Sequence[str]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "states.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        # confused-deputy guard; the ARN is built from the fixed name, not a Ref,
                        # because the state machine itself depends on this role
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                            "ArnLike": {"aws:SourceArn": state_machine_arn_sub(n)},
                        },
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "InvokeRolloutTasks",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "InvokeTheThreeRolloutFunctionsOnly",
                                "Effect": "Allow",
                                "Action": "lambda:InvokeFunction",
                                "Resource": [{"Fn::GetAtt": [t, "Arn"]} for t in task_ids],
                            }
                        ],
                    },
                }
            ],
        },
    }


def build_merge_template(stage: str, pipeline: PipelineConfig) -> dict[str, Any]:
    """Resources Chalice does not make, plus settings deep-merged into the functions it makes.

    ``pipeline`` is the validated config the package bundles (apps, environments, host tags).
    """
    n = names(stage)
    tasks = function_logical_ids()
    resources: dict[str, Any] = {t.logical_id: _table_resource(t) for t in n.tables}

    resources[SSM_DOCUMENT] = {
        "Type": "AWS::SSM::Document",
        "Properties": {
            "Name": n.document,
            "DocumentType": "Command",
            "DocumentFormat": "JSON",
            "TargetType": "/AWS::EC2::Instance",
            # a fixed Name cannot be replaced in place; NewVersion updates it and makes the
            # new version the default, which is what SendCommand without a version runs
            "UpdateMethod": "NewVersion",
            "Content": build_document(),
        },
    }

    placeholders = {name: f"${{{tasks[name]}Arn}}" for name in FUNCTIONS}
    resources[STATE_MACHINE_ROLE] = _state_machine_role(n, list(tasks.values()))
    resources[STATE_MACHINE] = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": n.state_machine,
            "StateMachineType": "STANDARD",
            "RoleArn": {"Fn::GetAtt": [STATE_MACHINE_ROLE, "Arn"]},
            "Definition": build_definition(placeholders),
            "DefinitionSubstitutions": {
                f"{task}Arn": {"Fn::GetAtt": [task, "Arn"]} for task in tasks.values()
            },
        },
    }

    common_env: dict[str, Any] = {t.env_var: {"Ref": t.logical_id} for t in n.tables}
    common_env["ROADIE_SSM_DOCUMENT"] = {"Ref": SSM_DOCUMENT}
    common_env.update(n.parameters)
    functions: dict[str, str | None] = {
        API_HANDLER: None,
        **{v: k for k, v in tasks.items()},
        "Reconcile": "reconcile",
    }
    for logical_id, function in functions.items():
        function_name = n.function_name(function)
        log_group = f"{logical_id}LogGroup"
        resources[log_group] = _lambda_log_group(function_name)
        env = dict(common_env)
        # Every function may start an execution: the API for a new deploy, rollout_finish for
        # the queued deploy it promotes. The API handler gets a Ref (no cycle: the state
        # machine references only the task functions). The task functions must NOT: they would
        # depend on the state machine that depends on their ARNs, a circular dependency. They
        # get the same ARN built with Fn::Sub from the fixed StateMachineName instead.
        if logical_id == API_HANDLER:
            env["ROADIE_STATE_MACHINE_ARN"] = {"Ref": STATE_MACHINE}
        else:
            env["ROADIE_STATE_MACHINE_ARN"] = state_machine_arn_sub(n)
        resources[logical_id] = {
            "Properties": {
                "FunctionName": function_name,
                "LoggingConfig": {"LogGroup": {"Ref": log_group}},
                "Environment": {"Variables": env},
            }
        }

    apps_envs = configured_apps_envs(pipeline)
    resources[DASHBOARD] = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": n.dashboard,
            "DashboardBody": {
                "Fn::Sub": json.dumps(dashboard_body(apps_envs, region="${AWS::Region}"))
            },
        },
    }

    return {
        "Description": f"Roadie deploy pipeline, stage {stage} (infra/template.py + chalice)",
        "Resources": resources,
        "Outputs": {
            "RolloutStateMachineArn": {"Value": {"Ref": STATE_MACHINE}},
            "DeployDocumentName": {"Value": {"Ref": SSM_DOCUMENT}},
            "DashboardName": {"Value": {"Ref": DASHBOARD}},
            **{f"{t.logical_id}Name": {"Value": {"Ref": t.logical_id}} for t in n.tables},
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path, help="where to write the merge template (JSON)")
    parser.add_argument("--stage", default="dev", help="Chalice stage (default: dev)")
    parser.add_argument(
        "--config", type=Path, default=BUNDLED_CONFIG, help="pipeline config (TOML) to bundle"
    )
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    pipeline = load_pipeline(args.config)
    text = json.dumps(build_merge_template(args.stage, pipeline), indent=2) + "\n"
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
