"""Creates every resource of the local stack from the same definitions the AWS template uses:
the PynamoDB models' tables, the SSM document, the generic state machine, the task Lambdas,
the secrets, and EC2 instances tagged the way the pipeline config finds them."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

import app as chalice_app
from chalicelib.adapters import dynamo, idempotency
from chalicelib.adapters.secrets import token_hash
from chalicelib.config import PipelineConfig
from chalicelib.statemachine import FUNCTIONS, definition_json
from devstack import moto_patches
from infra.ssm_document import DOCUMENT_NAME, build_document
from infra.template import dashboard_body, names

STAGE = "dev"
STATE_MACHINE_NAME = "roadie-rollout"
AMI = "ami-12c6146b"  # one of moto's built-in images


def function_name(name: str) -> str:
    return f"roadie-{STAGE}-{name}"


@dataclass
class Provisioned:
    state_machine_arn: str
    hosts: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # env key -> hosts


class _CachedClients:
    """boto3 clients are slow to build (service models load); the stack reuses them."""

    def __init__(self, region: str) -> None:
        self._session = boto3.session.Session(region_name=region)
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service)  # type: ignore[call-overload]
        return self._clients[service]


_sessions: dict[str, _CachedClients] = {}


def _session(region: str) -> _CachedClients:
    return _sessions.setdefault(region, _CachedClients(region))


def _dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "# code runs in-process in the local stack\n")
    return buf.getvalue()


def provision(
    pipeline: PipelineConfig,
    *,
    hosts_dir: Path,
    state_dir: Path,
    api_tokens: dict[str, str],
    webhook_secrets: dict[str, list[str]],
    host_counts: dict[str, int],
    settings: Any,
) -> Provisioned:
    session = _session(settings.region)
    for model in dynamo.MODELS:
        # moto creates tables ACTIVE at once; the stack always provisions into an empty account
        model.create_table(wait=False, billing_mode="PAY_PER_REQUEST")

    session.client("dynamodb").create_table(
        TableName=settings.idempotency_table,
        KeySchema=[{"AttributeName": idempotency.KEY_ATTRIBUTE, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": idempotency.KEY_ATTRIBUTE, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    ssm = session.client("ssm")
    ssm.create_document(
        Content=json.dumps(build_document()),
        Name=DOCUMENT_NAME,
        DocumentType="Command",
        DocumentFormat="JSON",
    )
    ssm.put_parameter(
        Name=settings.api_tokens_param,
        Type="SecureString",
        Value=json.dumps({name: token_hash(token) for name, token in api_tokens.items()}),
        Overwrite=True,
    )
    for provider, values in webhook_secrets.items():
        ssm.put_parameter(
            Name=getattr(settings, f"{provider}_secret_param"),
            Type="SecureString",
            Value=json.dumps(values),
            Overwrite=True,
        )

    iam = session.client("iam")
    role_arn = iam.create_role(
        RoleName="roadie-local",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    lam = session.client("lambda")
    arns = {}
    for name in FUNCTIONS:
        deployed = function_name(name)
        arns[name] = lam.create_function(
            FunctionName=deployed,
            Runtime="python3.11",
            Role=role_arn,
            Handler=f"app.{name}",
            Code={"ZipFile": _dummy_zip()},
        )["FunctionArn"]
        moto_patches.register_function(deployed, chalice_app.app.handler_map[name])
    sfn = session.client("stepfunctions")
    state_machine_arn = sfn.create_state_machine(
        name=STATE_MACHINE_NAME, definition=definition_json(arns), roleArn=role_arn
    )["stateMachineArn"]

    # the same dashboard the AWS template creates, over the metrics the stack mirrors locally
    pairs = [(a, e) for a, app_cfg in pipeline.apps.items() for e in app_cfg.environments]
    session.client("cloudwatch").put_dashboard(
        DashboardName=names(STAGE).dashboard,
        DashboardBody=json.dumps(dashboard_body(pairs, region=settings.region)),
    )

    result = Provisioned(state_machine_arn)
    ec2 = session.client("ec2")
    for app_name, app_config in pipeline.apps.items():
        for env_name, env in app_config.environments.items():
            count = host_counts.get(env_name, 2)
            response = ec2.run_instances(
                ImageId=AMI,
                MinCount=count,
                MaxCount=count,
                InstanceType="t3.small",
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": k, "Value": v} for k, v in env.host_tags.items()],
                    }
                ],
            )
            hosts = []
            for index, instance in enumerate(
                sorted(response["Instances"], key=lambda i: i["InstanceId"]), start=1
            ):
                instance_id = instance["InstanceId"]
                name = f"{app_name}-{env_name}-{index}"
                ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "Name", "Value": name}])
                _prepare_host(hosts_dir / instance_id, app_name, env_name, state_dir)
                hosts.append({"instance_id": instance_id, "name": name})
            result.hosts[f"{app_name}#{env_name}"] = hosts
    return result


def _prepare_host(host_dir: Path, app: str, environment: str, state_dir: Path) -> None:
    """A host's first boot: its app directory with the shared config every release links."""
    shared = host_dir / app / "shared"
    (shared / "log").mkdir(parents=True, exist_ok=True)
    db_dir = state_dir / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    (shared / ".env").write_text(
        f"DATABASE_PATH={db_dir / f'{app}-{environment}.sqlite3'}\nRAILS_ENV={environment}\n"
    )
