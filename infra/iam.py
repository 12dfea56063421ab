"""One least-privilege IAM policy per Lambda function, and the state machine's role policy.

What each function may do is the trace of its code path (app.py -> bootstrap.Container ->
services -> adapters), written down as data in ``ACCESS`` with the call behind every grant.
The merge template puts each policy on the role Chalice makes for that function, replacing
the placeholder ``.chalice/policy-<stage>.json`` (Chalice requires that file; it grants nothing
a deployed function uses).

Rules every policy here keeps (``tests/unit/infra/test_policy.py`` enforces them):
- every ARN is an ``Fn::Sub`` with ``${AWS::Partition}``, ``${AWS::Region}`` and
  ``${AWS::AccountId}`` (or a ``GetAtt`` of a resource in the stack): never another account or
  region. S3 object ARNs carry neither, so that statement pins the bucket's owner instead;
- ``Resource: "*"`` only for actions AWS authorises on nothing narrower, with a Sid ending in
  ``StarBecauseNoResourceLevelPermissions``;
- no wildcard in an action, and no ``cloudwatch:PutMetricData``: in AWS, metrics leave the
  functions as EMF on stdout;
- ``ssm:SendCommand`` only with the stage's document, and only on instances carrying one
  configured environment's ``hosts.tags`` (``App`` and ``Environment`` among them);
- ``kms:Decrypt`` only through SSM (or Secrets Manager), only for the named parameters
  (secrets), via the encryption context those services set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.config import PipelineConfig
from chalicelib.domain.errors import ConfigError

if TYPE_CHECKING:  # infra.template imports this module
    from infra.template import Names

Statement = dict[str, Any]
STAR_SUFFIX = "StarBecauseNoResourceLevelPermissions"
# IAM's limit on all inline policies of one role together (whitespace not counted).
ROLE_POLICY_LIMIT = 10_240
# Tags ssm:SendCommand is conditioned on: every environment's hosts.tags must carry both.
REQUIRED_HOST_TAGS = ("App", "Environment")
SECRETSMANAGER_PREFIX = "secretsmanager:"

DEPLOYS, HOSTS, ENVIRONMENTS, IDEMPOTENCY, AUDIT = (
    "DeploysTable",
    "HostsTable",
    "EnvironmentsTable",
    "IdempotencyTable",
    "AuditTable",
)
# services.audit: every function that changes a deploy or an environment appends its events
_AUDIT_EVENTS = ("dynamodb:PutItem",)


def arn(service: str, resource: str) -> dict[str, str]:
    """``arn:<partition>:<service>:<region>:<account>:<resource>`` of this stack's account."""
    return {
        "Fn::Sub": "arn:${AWS::Partition}:"
        + service
        + ":${AWS::Region}:${AWS::AccountId}:"
        + resource
    }


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


@dataclass(frozen=True)
class Access:
    """What one function does in AWS; each grant names the code that needs it."""

    # table logical id -> DynamoDB actions on its items (Query included)
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    query_indexes_of: tuple[str, ...] = ()  # tables whose GSIs it queries
    read_api_secrets: bool = False  # API tokens and webhook secrets (SecureStrings)
    start_executions: bool = False
    describe_executions: bool = False
    stop_executions: bool = False
    find_hosts: bool = False  # ec2:DescribeInstances
    send_commands: bool = False  # ssm:SendCommand (document + tagged instances)
    read_commands: bool = False  # ssm:ListCommands, ssm:GetCommandInvocation
    cancel_commands: bool = False  # ssm:CancelCommand
    resolve_refs: bool = False  # per-app SCM token / S3 refs (plans a deploy)
    read_host_output: bool = False  # logs:GetLogEvents in the apps' host output log groups
    notify: bool = False  # per-app Slack webhook secret (services/notify.py; SCM token above)


# DeployRepository.get (GetItem) and .mutate (PutItem with the version condition); the
# TransactWrite of DeployRepository.write_environment(new_deploy=...) is a Put on this table.
_DEPLOY_RECORDS = ("dynamodb:GetItem", "dynamodb:PutItem")
# DeployRepository.environment (GetItem) and .write_environment (UpdateItem, alone or inside
# the TransactWrite: a transaction is authorised per item action).
_ENVIRONMENT_LOCKS = ("dynamodb:GetItem", "dynamodb:UpdateItem")

ACCESS: dict[str, Access] = {
    # Every HTTP route and webhook. DeployService.request/launch/cancel/rollback/freeze/
    # unfreeze/get/list; WebhookService (Powertools idempotency + secrets); ApiTokens.
    "APIHandler": Access(
        tables={
            DEPLOYS: _DEPLOY_RECORDS,
            # ... and the branch heads webhooks keep in the same table: UpdateItem with a
            # condition (BranchHeadRepository.record), GetItem (.head)
            ENVIRONMENTS: _ENVIRONMENT_LOCKS,
            HOSTS: ("dynamodb:Query",),  # GET /deploys/{id}: HostResultRepository.for_deploy
            # Powertools DynamoDBPersistenceLayer: get_item, put_item, update_item, and
            # delete_item of its own record when the handler raised
            IDEMPOTENCY: (
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ),
            AUDIT: (*_AUDIT_EVENTS, "dynamodb:Query"),  # GET /audit: AuditRepository.page
        },
        query_indexes_of=(DEPLOYS,),  # GET /deploys, rollback's previous good, /metrics/dora
        read_api_secrets=True,
        start_executions=True,  # request/unfreeze -> launch -> Executions.start
        describe_executions=True,  # request -> _expire: is the crashed holder still running?
        stop_executions=True,  # ... and stop it
        find_hosts=True,  # request -> _plan -> Fleet.hosts
        resolve_refs=True,  # request(ref=...) resolves the ref with the app's SCM
        notify=True,  # launch/expire -> Notifier: a push's deploy on its commit
        cancel_commands=True,  # cancel -> HostCommands.cancel of the step in flight
        read_host_output=True,  # GET /deploys/{id}/log -> CommandLogs.read
    ),
    # RolloutService.dispatch: renew the lease, SendCommand, pending host rows, record.
    "RolloutDispatch": Access(
        tables={
            DEPLOYS: _DEPLOY_RECORDS,
            ENVIRONMENTS: _ENVIRONMENT_LOCKS,  # DeployService.renew
            HOSTS: ("dynamodb:BatchWriteItem",),  # HostResultRepository.put_many
            AUDIT: _AUDIT_EVENTS,
        },
        send_commands=True,  # HostCommands.run
    ),
    # RolloutService.poll: renew the lease, ListCommands + GetCommandInvocation, host rows.
    "RolloutPoll": Access(
        tables={
            DEPLOYS: _DEPLOY_RECORDS,
            ENVIRONMENTS: _ENVIRONMENT_LOCKS,
            HOSTS: ("dynamodb:BatchWriteItem",),
            AUDIT: _AUDIT_EVENTS,
        },
        read_commands=True,  # HostCommands.is_finished / .invocation
        cancel_commands=True,  # a cancelled deploy's step still running: HostCommands.cancel
    ),
    # RolloutService.recover: reads the deploy and records the error's cause.
    "RolloutRecover": Access(tables={DEPLOYS: _DEPLOY_RECORDS, AUDIT: _AUDIT_EVENTS}),
    # RolloutService.finish: close the record, DeployService.end (release) and launch the
    # queued deploy it promotes (plan against the fleet, start its execution).
    "RolloutFinish": Access(
        tables={
            DEPLOYS: _DEPLOY_RECORDS,
            ENVIRONMENTS: _ENVIRONMENT_LOCKS,
            AUDIT: _AUDIT_EVENTS,
        },
        start_executions=True,
        find_hosts=True,
        resolve_refs=True,
        notify=True,  # Notifier: the launch of a queued deploy and a deploy's end
    ),
    # Reconciler.run: scan held/queued environments, read each holder's execution status,
    # release, start queued deploys (launch) and recovery executions.
    "Reconcile": Access(
        tables={
            DEPLOYS: _DEPLOY_RECORDS,
            ENVIRONMENTS: (*_ENVIRONMENT_LOCKS, "dynamodb:Scan"),  # locked_environments
            AUDIT: _AUDIT_EVENTS,
        },
        start_executions=True,
        describe_executions=True,
        find_hosts=True,
        resolve_refs=True,
        notify=True,  # Notifier: the launch of a queued deploy and a deploy's end
    ),
}


def _sid_part(text: str) -> str:
    """``shop-web_2`` -> ``ShopWeb2``: Sids allow letters and digits only."""
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", text))


def _statement(sid: str, actions: Sequence[str], resources: Any, **extra: Any) -> Statement:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions) if len(actions) > 1 else actions[0],
        "Resource": resources,
        **extra,
    }


def _star(sid: str, actions: Sequence[str]) -> Statement:
    return _statement(sid + STAR_SUFFIX, actions, "*")


def parameter_arn(name: str) -> dict[str, str]:
    """The ARN of an SSM parameter named ``/a/b`` (``...:parameter/a/b``)."""
    if not name.startswith("/"):
        raise ConfigError(f"parameter name {name!r} must start with '/'")
    return arn("ssm", f"parameter{name}")


def _secret_arn(secret_id: str) -> dict[str, str]:
    # Secrets Manager appends "-" and six random characters to a secret's name in its ARN.
    return arn("secretsmanager", f"secret:{secret_id}-??????")


@dataclass(frozen=True)
class ScmGrants:
    """What resolving refs needs, per the apps' ``scm.token`` and ``source``."""

    parameters: tuple[str, ...] = ()  # SSM parameter names (SecureStrings)
    secrets: tuple[str, ...] = ()  # Secrets Manager secret names
    objects: tuple[str, ...] = ()  # S3 "<bucket>/<prefix>/<app>/refs/*"


def scm_grants(pipeline: PipelineConfig) -> ScmGrants:
    """Read each app's SCM token reference and S3 source (``scm`` may not exist yet)."""
    parameters: list[str] = []
    secrets: list[str] = []
    objects: list[str] = []
    for app in pipeline.apps.values():
        scm = getattr(app, "scm", None)
        token = getattr(scm, "token", None) if scm is not None else None
        where = f"apps.{app.name}.scm.token"
        if token:
            if token.startswith("/"):
                parameters.append(token)
            elif token.startswith(SECRETSMANAGER_PREFIX):
                secret_id = token.removeprefix(SECRETSMANAGER_PREFIX)
                if not secret_id or secret_id.startswith("arn:"):
                    raise ConfigError(
                        f"{where}: give the secret's name (secretsmanager:<name>); the policy "
                        "grants secrets of this stack's account and region only"
                    )
                secrets.append(secret_id)
            else:
                raise ConfigError(
                    f"{where}: {token!r} is neither an SSM parameter name (/...) nor "
                    "secretsmanager:<name>; infra/iam.py cannot grant access to it"
                )
        if app.source.kind == "s3":
            if not app.source.url.startswith("s3://"):
                raise ConfigError(f"apps.{app.name}.source.url: an s3 source is s3://bucket/prefix")
            bucket, _, prefix = app.source.url.removeprefix("s3://").partition("/")
            parts = [p for p in (prefix.strip("/"), app.name, "refs", "*") if p]
            objects.append(f"{bucket}/{'/'.join(parts)}")
    return ScmGrants(
        tuple(dict.fromkeys(parameters)),
        tuple(dict.fromkeys(secrets)),
        tuple(dict.fromkeys(objects)),
    )


def notify_grants(pipeline: PipelineConfig) -> ScmGrants:
    """The Slack webhook secrets of the apps' ``notify`` tables (parameters and secrets)."""
    parameters: list[str] = []
    secrets: list[str] = []
    for app in pipeline.apps.values():
        reference = getattr(getattr(app, "notify", None), "slack_webhook", None)
        if not reference:
            continue
        if reference.startswith("/"):
            parameters.append(reference)
        elif reference.startswith(SECRETSMANAGER_PREFIX) and not reference.startswith(
            f"{SECRETSMANAGER_PREFIX}arn:"
        ):
            secrets.append(reference.removeprefix(SECRETSMANAGER_PREFIX))
        else:
            raise ConfigError(
                f"apps.{app.name}.notify.slack_webhook: give an SSM parameter name (/...) or "
                "secretsmanager:<name>; infra/iam.py cannot grant access to it"
            )
    return ScmGrants(tuple(dict.fromkeys(parameters)), tuple(dict.fromkeys(secrets)))


def _decrypt_parameters(names: Iterable[str]) -> Statement:
    return _statement(
        "DecryptOnlyTheseParametersThroughSsm",
        ["kms:Decrypt"],
        arn("kms", "key/*"),  # the key is whichever encrypts them: the context pins the use
        Condition={
            "StringEquals": {
                "kms:ViaService": _sub("ssm.${AWS::Region}.amazonaws.com"),
                "kms:EncryptionContext:PARAMETER_ARN": [parameter_arn(n) for n in names],
            }
        },
    )


def send_command_statements(n: Names, pipeline: PipelineConfig) -> list[Statement]:
    """The stage's document, and one statement per configured environment's tagged hosts."""
    statements = [
        _statement(
            "SendCommandOnlyWithTheStageDocument",
            ["ssm:SendCommand"],
            arn("ssm", f"document/{n.document}"),
        )
    ]
    seen: set[str] = set()
    for app_name, app in pipeline.apps.items():
        for env_name, env in app.environments.items():
            missing = [t for t in REQUIRED_HOST_TAGS if t not in env.host_tags]
            if missing:
                raise ConfigError(
                    f"apps.{app_name}.environments.{env_name}.hosts.tags: needs the tag(s) "
                    f"{', '.join(missing)}: the IAM policy lets ssm:SendCommand reach only "
                    "instances tagged with a configured App and Environment"
                )
            sid = f"SendCommandOnlyTo{_sid_part(app_name)}{_sid_part(env_name)}Hosts"
            base, number = sid, 2
            while sid in seen:
                sid, number = f"{base}{number}", number + 1
            seen.add(sid)
            conditions = {f"ssm:resourceTag/{k}": v for k, v in sorted(env.host_tags.items())}
            statements.append(
                _statement(
                    sid,
                    ["ssm:SendCommand"],
                    arn("ec2", "instance/*"),
                    Condition={"StringEquals": conditions},
                )
            )
    return statements


def _index_names(n: Names, logical_id: str) -> list[str]:
    (table,) = (t for t in n.tables if t.logical_id == logical_id)
    if table.model is None:
        return []
    return [i["index_name"] for i in table.model._get_schema()["global_secondary_indexes"]]


def function_statements(
    logical_id: str, function_name: str, n: Names, pipeline: PipelineConfig
) -> list[Statement]:
    """The statements of one function's role, from its ``ACCESS`` entry."""
    access = ACCESS[logical_id]
    tables = {t.logical_id: t.name for t in n.tables}
    statements = [
        # LoggingConfig sends its logs to the template's log group; it cannot create one
        _statement(
            "WriteOnlyItsOwnLogGroup",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            arn("logs", f"log-group:/aws/lambda/{function_name}:*"),
        ),
        # Tracing: Active (Powertools Tracer): the X-Ray daemon's calls take only "*"
        _star("XRayTraces", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]),
    ]
    for table_id, actions in access.tables.items():
        statements.append(
            _statement(f"Use{table_id}", actions, arn("dynamodb", f"table/{tables[table_id]}"))
        )
    for table_id in access.query_indexes_of:
        indexes = [
            arn("dynamodb", f"table/{tables[table_id]}/index/{index}")
            for index in _index_names(n, table_id)
        ]
        statements.append(_statement(f"Query{table_id}Indexes", ["dynamodb:Query"], indexes))

    decrypt: list[str] = []
    if access.read_api_secrets:
        names = list(n.parameters.values())
        statements.append(
            _statement(
                "ReadApiTokensAndWebhookSecrets",
                ["ssm:GetParameter"],  # Powertools get_parameter(decrypt=True)
                [parameter_arn(name) for name in names],
            )
        )
        decrypt += names

    machine = n.state_machine
    if access.start_executions:
        statements.append(
            _statement(
                "StartOnlyTheRolloutStateMachine",
                ["states:StartExecution"],
                arn("states", f"stateMachine:{machine}"),
            )
        )
    execution_actions = [
        action
        for action, wanted in (
            ("states:DescribeExecution", access.describe_executions),
            ("states:StopExecution", access.stop_executions),
        )
        if wanted
    ]
    if execution_actions:
        statements.append(
            _statement(
                "OnlyRolloutExecutions",
                execution_actions,
                arn("states", f"execution:{machine}:*"),
            )
        )
    if access.find_hosts:
        statements.append(_star("DescribeInstances", ["ec2:DescribeInstances"]))
    if access.send_commands:
        statements += send_command_statements(n, pipeline)
    if access.read_commands:
        statements.append(
            _star("ReadCommandResults", ["ssm:ListCommands", "ssm:GetCommandInvocation"])
        )
    if access.cancel_commands:
        # CancelCommand has no resource type (it names a command id): "*" is the narrowest
        statements.append(_star("CancelCommands", ["ssm:CancelCommand"]))
    if access.read_host_output:
        # the hosts' output SSM sends there (CloudWatchOutputConfig): read, never written
        statements.append(
            _statement(
                "ReadOnlyTheHostOutputLogGroups",
                ["logs:GetLogEvents"],
                [arn("logs", f"log-group:{n.host_log_group(app)}:*") for app in pipeline.apps],
            )
        )
    secret_arns: list[dict[str, str]] = []
    if access.notify:
        slack = notify_grants(pipeline)
        if slack.parameters:
            statements.append(
                _statement(
                    "ReadSlackWebhookParameters",
                    ["ssm:GetParameter"],
                    [parameter_arn(p) for p in slack.parameters],
                )
            )
            decrypt += slack.parameters
        if slack.secrets:
            arns = [_secret_arn(s) for s in slack.secrets]
            statements.append(
                _statement("ReadSlackWebhookSecrets", ["secretsmanager:GetSecretValue"], arns)
            )
            secret_arns += arns
    if access.resolve_refs:
        grants = scm_grants(pipeline)
        if grants.parameters:
            statements.append(
                _statement(
                    "ReadScmTokenParameters",
                    ["ssm:GetParameter"],
                    [parameter_arn(p) for p in grants.parameters],
                )
            )
            decrypt += grants.parameters
        if grants.secrets:
            scm_secret_arns = [_secret_arn(s) for s in grants.secrets]
            statements.append(
                _statement(
                    "ReadScmTokenSecrets", ["secretsmanager:GetSecretValue"], scm_secret_arns
                )
            )
            secret_arns += scm_secret_arns
        if grants.objects:
            statements.append(
                _statement(
                    "ReadRefsOfS3SourcedAppsInBucketsOfThisAccount",
                    ["s3:GetObject"],
                    [_sub(f"arn:${{AWS::Partition}}:s3:::{o}") for o in grants.objects],
                    Condition={"StringEquals": {"s3:ResourceAccount": {"Ref": "AWS::AccountId"}}},
                )
            )
    if secret_arns:
        statements.append(
            _statement(
                "DecryptOnlyTheseSecretsThroughSecretsManager",
                ["kms:Decrypt"],
                arn("kms", "key/*"),
                Condition={
                    "StringEquals": {
                        "kms:ViaService": _sub("secretsmanager.${AWS::Region}.amazonaws.com")
                    },
                    "StringLike": {"kms:EncryptionContext:SecretARN": secret_arns},
                },
            )
        )
    if decrypt:
        statements.append(_decrypt_parameters(dict.fromkeys(decrypt)))
    return statements


def policy_document(statements: list[Statement]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def state_machine_statements(task_logical_ids: Sequence[str]) -> list[Statement]:
    return [
        _statement(
            "InvokeOnlyTheRolloutFunctions",
            ["lambda:InvokeFunction"],
            [{"Fn::GetAtt": [t, "Arn"]} for t in task_logical_ids],
        ),
        # LoggingConfiguration: Step Functions delivers logs through CloudWatch Logs' vended
        # log delivery, whose APIs AWS authorises only on "*".
        _star(
            "VendedLogDelivery",
            [
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            ],
        ),
        # TracingConfiguration: X-Ray's segment and sampling APIs also take only "*".
        _star(
            "XRayTracing",
            [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
            ],
        ),
    ]


# Longest plausible values of the pseudo parameters, to size a policy as IAM will see it.
_WORST_CASE = {
    "${AWS::Partition}": "aws-us-gov",
    "${AWS::Region}": "ap-southeast-5",
    "${AWS::AccountId}": "123456789012",
}


def resolved_size(document: Any) -> int:
    """Characters of ``document`` without whitespace, as IAM counts them, once CloudFormation
    has resolved its pseudo parameters (GetAtt of a function: a 140-character ARN)."""

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Fn::Sub"}:
                text = value["Fn::Sub"]
                for key, worst in _WORST_CASE.items():
                    text = text.replace(key, worst)
                return text
            if set(value) == {"Fn::GetAtt"}:
                return "x" * 140
            if set(value) == {"Ref"}:
                return "123456789012"
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return len(json.dumps(resolve(document), separators=(",", ":")))


def role_policies(
    policy_name: str, statements: list[Statement], *, role: str
) -> list[dict[str, Any]]:
    """A role's ``Policies`` (one inline policy), refused when IAM would refuse it."""
    document = policy_document(statements)
    size = resolved_size(document)
    if size > ROLE_POLICY_LIMIT:
        raise ConfigError(
            f"{role}: its policy would be {size} characters, over IAM's {ROLE_POLICY_LIMIT} "
            "per role (too many configured environments for one statement each?)"
        )
    return [{"PolicyName": policy_name, "PolicyDocument": document}]
