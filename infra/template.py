"""The CloudFormation merge template for `chalice package`, built from the code's definitions.

Everything Chalice does not make (tables, state machine, SSM document, dashboard, log groups,
alarms) plus what is deep-merged into what it makes: each function's name, environment,
sizing, log group and least-privilege role policy (``infra/iam.py``), and the REST API's
access logs, throttling and tracing. ``build_merge_template(stage, pipeline)`` is the entry
point; ``names(stage)`` is the one place physical names come from.

Template parameters (each has a default that deploys; the local stack passes only PollSeconds):
- ``PollSeconds``: the Wait between polls of a rollout step (``ROADIE_POLL_SECONDS``);
- ``AllowGitHubSha1``: "1" accepts GitHub's legacy SHA-1 signature when no SHA-256 one is sent
  (``ROADIE_GITHUB_ALLOW_SHA1``; default "0");
- ``AlarmTopicArn``: an SNS topic for alarm and OK notifications (empty: alarms only show);
- ``CreateApiGatewayAccountRole``: whether this stack sets API Gateway's account-level
  CloudWatch Logs role, which access logging needs (see ``_api_gateway_account``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice.utils import to_cfn_resource_name
from pynamodb.models import Model

from chalicelib.adapters import dynamo, idempotency, metrics
from chalicelib.adapters.metrics import NAMESPACE
from chalicelib.config import BUNDLED_CONFIG, PipelineConfig, Settings, load_pipeline
from chalicelib.domain.hostlog import host_log_group
from chalicelib.statemachine import FUNCTIONS, build_definition
from infra import alarms, iam
from infra.ssm_document import DOCUMENT_NAME, build_document

ROOT = Path(__file__).resolve().parents[1]
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
# Chalice's logical id for the one function that serves every HTTP route, and for the API.
API_HANDLER = "APIHandler"
REST_API = "RestAPI"
STATE_MACHINE = "RolloutStateMachine"
STATE_MACHINE_ROLE = "RolloutStateMachineRole"
STATE_MACHINE_LOG_GROUP = "RolloutStateMachineLogGroup"
API_ACCESS_LOG_GROUP = "ApiAccessLogGroup"
API_GATEWAY_ACCOUNT = "ApiGatewayAccount"
API_GATEWAY_ACCOUNT_ROLE = "ApiGatewayCloudWatchRole"
SSM_DOCUMENT = "DeployDocument"
DASHBOARD = "DeployDashboard"
IDEMPOTENCY_TABLE = "IdempotencyTable"
# Scheduled functions (``@app.schedule``): Chalice names them like lambda_functions.
SCHEDULED = ("reconcile",)
LOG_RETENTION_DAYS = 30
METRICS = (metrics.FINISHED, metrics.SUCCEEDED, metrics.FAILED, metrics.DURATION)  # graphed
WEBHOOK_PROVIDERS = ("github", "gitlab", "bitbucket")

# Template parameters and conditions.
POLL_SECONDS = "PollSeconds"
ALLOW_GITHUB_SHA1 = "AllowGitHubSha1"
ALARM_TOPIC = "AlarmTopicArn"
HAS_ALARM_TOPIC = "HasAlarmTopic"
CREATE_ACCOUNT_ROLE = "CreateApiGatewayAccountRole"
CREATES_ACCOUNT_ROLE = "CreatesApiGatewayAccountRole"

# API Gateway throttling for every method of the stage. Roadie's traffic is people pressing
# deploy and SCM webhooks (a busy org pushes a few per second at most); the limit keeps a
# runaway client or a redelivery storm from exhausting the account's Lambda concurrency and
# DynamoDB capacity that rollouts in flight need. A throttled webhook gets 429 and the SCM
# retries (GitHub: redeliver), and deliveries are idempotent.
THROTTLE_RATE_PER_SECOND = 25
THROTTLE_BURST = 50


@dataclass(frozen=True)
class Sizing:
    timeout: int  # seconds
    memory: int  # MB; Lambda's CPU share grows with it


# Why each function gets its timeout and memory. 256 MB rather than 128 MB everywhere: the
# cold import of boto3 + PynamoDB + Powertools (the zip ships no .pyc) is CPU-bound and takes
# seconds at 128 MB; the price per invocation is about the same because it runs faster.
SIZING: dict[str, Sizing] = {
    # API Gateway's REST integration gives up after 29 s: stop first, so the caller gets a
    # Lambda error we logged rather than a bare 504, and a webhook delivery's idempotency
    # record (in progress until the function's timeout) frees up soon. The slowest path is a
    # deploy by ref (resolving it, the SCM call's own timeout is 20 s) plus the fleet lookup.
    # 512 MB: the webhook and deploy-button paths are latency-sensitive on a cold start.
    API_HANDLER: Sizing(25, 512),
    # Sends one SSM command per 50 hosts and batch-writes the pending host rows: seconds
    # even for hundreds of hosts; 60 s covers SSM throttling retries.
    "RolloutDispatch": Sizing(60, 256),
    # When a step ends it reads each host's invocation (about 30 ms per host): 1,000 hosts
    # take ~30 s; 120 s leaves room for throttling retries.
    "RolloutPoll": Sizing(120, 256),
    # Two DynamoDB reads and a write.
    "RolloutRecover": Sizing(30, 256),
    # Closes the record, releases the lock and may launch the queued deploy (fleet lookup,
    # StartExecution, resolving a ref): like the API's work, without the 29 s ceiling.
    "RolloutFinish": Sizing(60, 256),
    # Scheduled every minute: a run must end before the next one starts, so runs never
    # overlap on the same environments (each run is safe, two at once only waste retries).
    "Reconcile": Sizing(50, 256),
}


@dataclass(frozen=True)
class Table:
    """One DynamoDB table of the stack and how the functions learn its name."""

    logical_id: str
    env_var: str
    name: str
    model: type[Model] | None  # None: the idempotency table (Powertools owns its items)


@dataclass(frozen=True)
class Names:
    """Every physical name of a stage (``roadie-<stage>...``, ``/roadie/<stage>/...``)."""

    stage: str
    prefix: str  # "<app>-<stage>": Chalice's own naming for the stage's functions
    tables: tuple[Table, ...]
    state_machine: str
    document: str
    dashboard: str
    api: str  # the REST API's name (the ApiName dimension of its metrics)
    parameters: Mapping[str, str]  # env var -> SSM parameter name (SecureStrings made by hand)
    host_log_group_prefix: str = ""  # each app's hosts' command output: "<this>/<app>"

    def function_name(self, function: str | None) -> str:
        """`<app>-<stage>` for the API handler, `<app>-<stage>-<name>` for a lambda_function."""
        return self.prefix if function is None else f"{self.prefix}-{function}"

    @property
    def state_machine_log_group(self) -> str:
        # /aws/vendedlogs/: CloudWatch Logs' resource policy for vended logs covers that
        # prefix with one statement, instead of one per log group (the policy has a size cap)
        return f"/aws/vendedlogs/states/{self.state_machine}"

    @property
    def api_access_log_group(self) -> str:
        return f"/aws/apigateway/{self.api}/access"

    def host_log_group(self, app: str) -> str:
        return host_log_group(self.host_log_group_prefix, app)

    def alarm_name(self, what: str) -> str:
        return f"{self.prefix}-{what}"


def _chalice_config() -> dict[str, Any]:
    return dict(json.loads(CHALICE_CONFIG.read_text(encoding="utf-8")))


def app_name() -> str:
    return str(_chalice_config()["app_name"])


def api_gateway_stage(stage: str) -> str:
    """The API Gateway stage (the URL's first path segment), looked up as Chalice does."""
    config = _chalice_config()
    found = config.get("stages", {}).get(stage, {}).get("api_gateway_stage")
    return str(found or config.get("api_gateway_stage") or "api")


def names(stage: str = "dev") -> Names:
    app = app_name()
    prefix = f"{app}-{stage}"
    # The table names are Settings' own defaults under the stage's prefix ("roadie-dev-deploys").
    staged = Settings.from_env({"ROADIE_RESOURCE_PREFIX": prefix})
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
        dynamo.AuditModel: Table(
            "AuditTable", "ROADIE_AUDIT_TABLE", staged.audit_table, dynamo.AuditModel
        ),
    }
    missing = [model.__name__ for model in dynamo.MODELS if model not in by_model]
    if missing:
        raise ValueError(f"no table in the template for {', '.join(missing)}: add it to names()")
    idempotency = Table(
        IDEMPOTENCY_TABLE, "ROADIE_IDEMPOTENCY_TABLE", staged.idempotency_table, None
    )
    # The secrets a team creates by hand (SecureStrings), one set per stage.
    secrets = f"/{app}/{stage}"
    return Names(
        stage=stage,
        prefix=prefix,
        tables=(*(by_model[model] for model in dynamo.MODELS), idempotency),
        state_machine=f"{prefix}-rollout",
        document=f"{DOCUMENT_NAME}-{stage}",
        dashboard=f"{prefix}-deploys",
        api=prefix,
        parameters={
            "ROADIE_API_TOKENS_PARAM": f"{secrets}/api-tokens",
            "ROADIE_GITHUB_SECRET_PARAM": f"{secrets}/webhooks/github",
            "ROADIE_GITLAB_SECRET_PARAM": f"{secrets}/webhooks/gitlab",
            "ROADIE_BITBUCKET_SECRET_PARAM": f"{secrets}/webhooks/bitbucket",
        },
        host_log_group_prefix=f"/{app}/{stage}/hosts",
    )


def function_logical_ids() -> dict[str, str]:
    """Chalice's logical id of each rollout task (`rollout_dispatch` -> `RolloutDispatch`)."""
    return {name: to_cfn_resource_name(name) for name in FUNCTIONS}


def all_functions() -> dict[str, str | None]:
    """Every Lambda function Chalice makes: logical id -> its name (None: the API handler)."""
    functions: dict[str, str | None] = {API_HANDLER: None}
    for name in (*FUNCTIONS, *SCHEDULED):
        functions[to_cfn_resource_name(name)] = name
    return functions


def role_logical_id(function: str | None) -> str:
    """The role Chalice makes for a function (``api_handler_role`` -> ``ApiHandlerRole``)."""
    return to_cfn_resource_name(f"{function or 'api_handler'}_role")


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

    finished = [_metric(metrics.FINISHED, a, e, "Sum", label=f"{a}/{e}") for a, e in pairs]
    outcomes = [
        _metric(name, a, e, "Sum", label=f"{a}/{e} {word}")
        for a, e in pairs
        for name, word in (
            (metrics.SUCCEEDED, "succeeded"),
            (metrics.FAILED, "failed"),
            (metrics.DIVERGED, "diverged"),
        )
    ]
    durations = [
        _metric(metrics.DURATION, a, e, stat, label=f"{a}/{e} {stat.lower()}")
        for a, e in pairs
        for stat in ("Average", "Maximum")
    ]
    rates: list[list[Any]] = []
    for i, (a, e) in enumerate(pairs):
        rates.append(_metric(metrics.SUCCEEDED, a, e, "Sum", id=f"ok{i}", visible=False))
        rates.append(_metric(metrics.FINISHED, a, e, "Sum", id=f"all{i}", visible=False))
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


def _log_group(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Logs::LogGroup",
        # explicit (cfn-lint I3011): logs go with the stack and expire; records stay in DynamoDB
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {"LogGroupName": name, "RetentionInDays": LOG_RETENTION_DAYS},
    }


def _lambda_log_group(function_name: str) -> dict[str, Any]:
    return _log_group(f"/aws/lambda/{function_name}")


def state_machine_arn_sub(n: Names) -> dict[str, str]:
    """The state machine's ARN built from its fixed name: usable where a Ref would be a cycle."""
    return iam.arn("states", f"stateMachine:{n.state_machine}")


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
            "Policies": iam.role_policies(
                "RolloutStateMachine",
                iam.state_machine_statements(task_ids),
                role=STATE_MACHINE_ROLE,
            ),
        },
    }


def _settings_env(n: Names) -> dict[str, Any]:
    """Every setting ``Settings.from_env`` reads, for every function (names, not secrets).

    ``ROADIE_CONFIG`` stays unset: the functions read the config bundled in the package.
    """
    defaults = Settings.from_env({})
    env: dict[str, Any] = {"ROADIE_RESOURCE_PREFIX": n.prefix}
    env.update({t.env_var: {"Ref": t.logical_id} for t in n.tables})
    env["ROADIE_SSM_DOCUMENT"] = {"Ref": SSM_DOCUMENT}
    env.update(n.parameters)
    env["ROADIE_POLL_SECONDS"] = {"Ref": POLL_SECONDS}
    env["ROADIE_GITHUB_ALLOW_SHA1"] = {"Ref": ALLOW_GITHUB_SHA1}
    env["ROADIE_PARAMETERS_MAX_AGE"] = str(defaults.parameters_max_age)
    env["ROADIE_LEASE_SECONDS"] = str(defaults.lease_seconds)
    env["ROADIE_HOST_LOG_GROUP_PREFIX"] = n.host_log_group_prefix
    return env


def host_log_group_id(app: str) -> str:
    """``HostOutputShopLogGroup`` for app ``shop`` (``web-api``: ``HostOutputWebApiLogGroup``)."""
    return "HostOutput" + "".join(part.capitalize() for part in app.split("-")) + "LogGroup"


def _host_log_groups(n: Names, pipeline: PipelineConfig) -> dict[str, Any]:
    """One log group per app for its hosts' SSM command output (``CloudWatchOutputConfig``),
    with the stack's retention. The hosts write to it (their instance profile), the API reads."""
    return {host_log_group_id(app): _log_group(n.host_log_group(app)) for app in pipeline.apps}


def _functions(n: Names, pipeline: PipelineConfig) -> dict[str, Any]:
    """What is merged into each function Chalice makes, its log group and its role policy."""
    resources: dict[str, Any] = {}
    common = _settings_env(n)
    for logical_id, function in all_functions().items():
        function_name = n.function_name(function)
        log_group = f"{logical_id}LogGroup"
        resources[log_group] = _lambda_log_group(function_name)
        env = dict(common)
        # The API handler gets a Ref (no cycle: the state machine references only the task
        # functions). The others must NOT: the task functions would depend on the state
        # machine that depends on their ARNs. They get the same ARN built with Fn::Sub from
        # the fixed StateMachineName instead (rollout_finish and reconcile start executions).
        if logical_id == API_HANDLER:
            env["ROADIE_STATE_MACHINE_ARN"] = {"Ref": STATE_MACHINE}
        else:
            env["ROADIE_STATE_MACHINE_ARN"] = state_machine_arn_sub(n)
        sizing = SIZING[logical_id]
        resources[logical_id] = {
            "Properties": {
                "FunctionName": function_name,
                "Timeout": sizing.timeout,
                "MemorySize": sizing.memory,
                "LoggingConfig": {"LogGroup": {"Ref": log_group}},
                "Environment": {"Variables": env},
                # Powertools Tracer: the handler and every AWS client call as X-Ray segments
                "Tracing": "Active",
            }
        }
        role = role_logical_id(function)
        statements = iam.function_statements(logical_id, function_name, n, pipeline)
        # a list: the deep merge REPLACES Chalice's policy (from .chalice/policy-<stage>.json)
        resources[role] = {
            "Properties": {"Policies": iam.role_policies("LeastPrivilege", statements, role=role)}
        }
    return resources


def access_log_format() -> str:
    """API Gateway access log line (JSON). Deliberately no query string, no headers and no
    user agent: bearer tokens, webhook signatures and cursors travel there."""
    fields = {
        "requestId": "$context.requestId",
        "time": "$context.requestTime",
        "ip": "$context.identity.sourceIp",
        "method": "$context.httpMethod",
        "resource": "$context.resourcePath",
        "path": "$context.path",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "latencyMs": "$context.responseLatency",
        "integrationLatencyMs": "$context.integrationLatency",
        "integrationStatus": "$context.integration.status",
        "error": "$context.error.message",
        "xrayTraceId": "$context.xrayTraceId",
    }
    return json.dumps(fields, separators=(",", ":"))


def _api(n: Names) -> dict[str, Any]:
    """Merged into Chalice's ``AWS::Serverless::Api`` (the local stack drops it whole)."""
    return {
        "Properties": {
            # a stage-specific name (Chalice's title is the app name for every stage): the
            # ApiName dimension the 5XX alarm reads must not mix dev and prod
            "Name": n.api,
            "DefinitionBody": {"info": {"title": n.api}},
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": {"Fn::GetAtt": [API_ACCESS_LOG_GROUP, "Arn"]},
                "Format": access_log_format(),
            },
            "MethodSettings": [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "ThrottlingRateLimit": THROTTLE_RATE_PER_SECOND,
                    "ThrottlingBurstLimit": THROTTLE_BURST,
                    # no execution logs or full request/response logging: they would hold
                    # the Authorization header and webhook bodies
                    "LoggingLevel": "OFF",
                    "DataTraceEnabled": False,
                    "MetricsEnabled": False,
                }
            ],
            # The stage must be created after the account's CloudWatch role is set, or API
            # Gateway refuses the access log setting. A DependsOn cannot name a resource that
            # a Condition may leave out; a stage variable referring to it (only when created)
            # orders the two just the same.
            "Variables": {
                "Fn::If": [
                    CREATES_ACCOUNT_ROLE,
                    {"ApiGatewayAccount": {"Ref": API_GATEWAY_ACCOUNT}},
                    {"Ref": "AWS::NoValue"},
                ]
            },
        }
    }


@dataclass(frozen=True)
class GatewayAnswer:
    """What API Gateway answers itself (no Lambda ran) for one response type, in the API's
    one error shape. ``message`` None: API Gateway's own message (a JSON string already)."""

    response_type: str
    status: int | None  # None: the status API Gateway chose
    code: str
    message: str | None = None

    def body_template(self) -> str:
        message = json.dumps(self.message) if self.message else "$context.error.messageString"
        return f'{{"error":"{self.code}","message":{message}}}'


# An unknown route answers 404 (API Gateway's 403 "Missing Authentication Token" names
# nothing a caller can fix); every other refusal of its own keeps its status and gets the
# shape. The local stack answers unknown routes from this same table (devstack/gateway.py).
GATEWAY_ANSWERS: tuple[GatewayAnswer, ...] = (
    GatewayAnswer("MISSING_AUTHENTICATION_TOKEN", 404, "not_found", "no such route"),
    GatewayAnswer("REQUEST_TOO_LARGE", 413, "payload_too_large"),
    GatewayAnswer("THROTTLED", 429, "too_many_requests"),
    GatewayAnswer("UNSUPPORTED_MEDIA_TYPE", 415, "unsupported_media_type"),
    GatewayAnswer("DEFAULT_4XX", None, "bad_request"),
    GatewayAnswer("DEFAULT_5XX", None, "unavailable"),
)


def gateway_answer(response_type: str) -> GatewayAnswer:
    return next(a for a in GATEWAY_ANSWERS if a.response_type == response_type)


def _gateway_responses() -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for answer in GATEWAY_ANSWERS:
        properties: dict[str, Any] = {
            "RestApiId": {"Ref": REST_API},
            "ResponseType": answer.response_type,
            "ResponseTemplates": {"application/json": answer.body_template()},
            "ResponseParameters": {
                "gatewayresponse.header.Content-Type": "'application/json'",
            },
        }
        if answer.status is not None:
            properties["StatusCode"] = str(answer.status)
        name = "".join(part.title() for part in answer.response_type.split("_"))
        resources[f"GatewayResponse{name}"] = {
            "Type": "AWS::ApiGateway::GatewayResponse",
            "Properties": properties,
        }
    return resources


def _api_gateway_account() -> dict[str, Any]:
    """API Gateway writes access logs with ONE role per account and region (its account
    settings), not a role per API. Without it, creating the stage fails. The stack creates
    and sets it by default so a first deploy just works; an account that already has one (a
    second stage in the same account, or a platform team's) passes
    ``CreateApiGatewayAccountRole=false``. Both are retained on delete: deleting one stage's
    stack must not pull the role from under another stage's API in the same account."""
    retain = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    return {
        API_GATEWAY_ACCOUNT_ROLE: {
            "Type": "AWS::IAM::Role",
            "Condition": CREATES_ACCOUNT_ROLE,
            **retain,
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "apigateway.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                            },
                        }
                    ],
                },
                # AWS's managed policy for exactly this role (it covers every API's log
                # groups in the account, which is what an account-wide setting needs)
                "ManagedPolicyArns": [
                    {
                        "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                        "AmazonAPIGatewayPushToCloudWatchLogs"
                    }
                ],
            },
        },
        API_GATEWAY_ACCOUNT: {
            "Type": "AWS::ApiGateway::Account",
            "Condition": CREATES_ACCOUNT_ROLE,
            **retain,
            "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": [API_GATEWAY_ACCOUNT_ROLE, "Arn"]}},
        },
    }


def parameters() -> dict[str, Any]:
    return {
        POLL_SECONDS: {
            "Type": "Number",
            "Default": 5,
            "MinValue": 1,
            "Description": "Seconds between polls of a rollout step's host commands",
        },
        ALLOW_GITHUB_SHA1: {
            "Type": "String",
            "Default": "0",
            "AllowedValues": ["0", "1"],
            "Description": "1: accept GitHub's legacy SHA-1 webhook signature (X-Hub-Signature)",
        },
        ALARM_TOPIC: {
            "Type": "String",
            "Default": "",
            "Description": "SNS topic ARN for alarm and OK notifications (empty: none)",
        },
        CREATE_ACCOUNT_ROLE: {
            "Type": "String",
            "Default": "true",
            "AllowedValues": ["true", "false"],
            "Description": "Create and set API Gateway's account-level CloudWatch Logs role "
            "(access logs need one per account and region); false if the account has one",
        },
    }


def conditions() -> dict[str, Any]:
    return {
        HAS_ALARM_TOPIC: {"Fn::Not": [{"Fn::Equals": [{"Ref": ALARM_TOPIC}, ""]}]},
        CREATES_ACCOUNT_ROLE: {"Fn::Equals": [{"Ref": CREATE_ACCOUNT_ROLE}, "true"]},
    }


def outputs(n: Names, stage: str) -> dict[str, Any]:
    api_url = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"
    api_url += api_gateway_stage(stage)
    console = "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
    found: dict[str, Any] = {
        "RolloutStateMachineArn": {"Value": {"Ref": STATE_MACHINE}},
        "DeployDocumentName": {"Value": {"Ref": SSM_DOCUMENT}},
        "DashboardName": {"Value": {"Ref": DASHBOARD}},
        "DashboardUrl": {"Value": {"Fn::Sub": f"{console}#dashboards:name={n.dashboard}"}},
        **{f"{t.logical_id}Name": {"Value": {"Ref": t.logical_id}} for t in n.tables},
        # each app's hosts send their command output to "<this>/<app>": the instance profile
        # needs logs:CreateLogStream and logs:PutLogEvents there (README, preparing the hosts)
        "HostOutputLogGroupPrefix": {"Value": n.host_log_group_prefix},
    }
    # (Chalice's own output EndpointURL is the API's URL.) These refer to the API, so the
    # local stack, which leaves API Gateway out, drops them with it.
    for provider in WEBHOOK_PROVIDERS:
        found[f"{provider.capitalize()}WebhookUrl"] = {
            "Value": {"Fn::Sub": f"{api_url}/webhooks/{provider}"}
        }
    return found


def build_merge_template(stage: str, pipeline: PipelineConfig) -> dict[str, Any]:
    """Resources Chalice does not make, plus settings deep-merged into the functions it makes.

    ``pipeline`` is the validated config the package bundles (apps, environments, host tags):
    it decides which hosts the dispatch function may run commands on, which SCM tokens the
    planning functions may read, and the alarms per app and environment.
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
    resources[STATE_MACHINE_LOG_GROUP] = _log_group(n.state_machine_log_group)
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
            # ERROR: failed states and executions, with their input (ids, the plan, the
            # error's cause; no secrets travel through an execution)
            "LoggingConfiguration": {
                "Level": "ERROR",
                "IncludeExecutionData": True,
                "Destinations": [
                    {
                        "CloudWatchLogsLogGroup": {
                            "LogGroupArn": {"Fn::GetAtt": [STATE_MACHINE_LOG_GROUP, "Arn"]}
                        }
                    }
                ],
            },
            "TracingConfiguration": {"Enabled": True},
        },
    }

    resources.update(_functions(n, pipeline))
    resources.update(_host_log_groups(n, pipeline))

    resources[API_ACCESS_LOG_GROUP] = _log_group(n.api_access_log_group)
    resources[REST_API] = _api(n)
    resources.update(_gateway_responses())
    resources.update(_api_gateway_account())

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

    resources.update(
        alarms.alarms(
            n,
            pipeline,
            functions=list(all_functions()),
            state_machine=STATE_MACHINE,
            api_stage=api_gateway_stage(stage),
            topic=ALARM_TOPIC,
            has_topic=HAS_ALARM_TOPIC,
        )
    )

    return {
        "Description": f"Roadie deploy pipeline, stage {stage} (infra/template.py + chalice)",
        "Parameters": parameters(),
        "Conditions": conditions(),
        "Resources": resources,
        "Outputs": outputs(n, stage),
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
