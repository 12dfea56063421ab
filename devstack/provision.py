"""Provisions the local stack by deploying the packaged template onto moto, as a team deploys it.

The template (``infra.package.build``) is translated from SAM to CloudFormation offline with
``aws-sam-translator``, its code zip uploaded to moto's S3, and ``create_stack`` run on moto's
CloudFormation: every table, index, TTL, the state machine, the SSM document, the dashboard,
the log groups and the functions with their environments exist once, in the template.

Left out locally, by ``drop_unsupported`` only: the API Gateway resources (moto cannot create
SAM's REST API; the local HTTP front is Chalice's own server running the same handler), the
CloudWatch alarms (moto's CloudFormation cannot create them), and whatever refers to those.
Outside the template, as in AWS, the operator's part: the SecureStrings (API token hashes,
webhook secrets), and the world's part: EC2 instances tagged the way the pipeline config finds
them, one sandbox directory per host.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from chalicelib.adapters.secrets import token_hash
from chalicelib.config import PipelineConfig
from infra.package import Package

AMI = "ami-12c6146b"  # one of moto's built-in images
ARTIFACT_BUCKET = "roadie-local-artifacts"
UNSUPPORTED_TYPES = ("AWS::Serverless::Api", "AWS::ApiGateway::", "AWS::CloudWatch::Alarm")
# SAM's managed policies the translator may be asked about (it only needs their ARNs).
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for name, path in {
        "AWSLambdaBasicExecutionRole": "service-role/",
        "AWSXrayWriteOnlyAccess": "",
        "AWSXRayDaemonWriteAccess": "",
    }.items()
}


@dataclass(frozen=True)
class Function:
    """One deployed Lambda function of the stack."""

    logical_id: str
    name: str
    handler: str  # "app.rollout_poll"
    environment: Mapping[str, str]


@dataclass
class Provisioned:
    stack_name: str
    state_machine_arn: str
    outputs: dict[str, str]
    functions: dict[str, Function]  # by logical id
    hosts: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # "app#env" -> hosts

    @property
    def api(self) -> Function:
        """The function that serves every HTTP route (Chalice's ``APIHandler``)."""
        return self.functions["APIHandler"]


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


def clients(region: str) -> _CachedClients:
    return _sessions.setdefault(region, _CachedClients(region))


# --- the template, made local ------------------------------------------------------------------


def _references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, Fn::GetAtt, ${Id} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                if isinstance(text, str):
                    found |= {p.split(".")[0] for p in _sub_names(text)}
            found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def _sub_names(text: str) -> Iterable[str]:
    start = 0
    while (i := text.find("${", start)) != -1:
        end = text.find("}", i)
        if end == -1:
            return
        name = text[i + 2 : end]
        if not name.startswith("!"):
            yield name
        start = end + 1


def drop_unsupported(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template without what moto cannot create (API Gateway, alarms), and without
    whatever refers to what was dropped."""
    out = json.loads(json.dumps(template))
    resources: dict[str, Any] = out["Resources"]
    dropped = {
        k for k, r in resources.items() if str(r.get("Type", "")).startswith(UNSUPPORTED_TYPES)
    }
    while True:
        more = {k for k, r in resources.items() if k not in dropped and _references(r) & dropped}
        if not more:
            break
        dropped |= more
    for key in dropped:
        del resources[key]
    for section in ("Outputs", "Conditions"):
        for key in [k for k, v in out.get(section, {}).items() if _references(v) & dropped]:
            del out[section][key]
    return out


def translate(sam: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, Any]:
    """SAM to plain CloudFormation, offline (what CloudFormation's SAM transform does)."""
    from samtranslator.translator.transform import transform

    class _Policies:
        def load(self) -> dict[str, str]:
            return dict(MANAGED_POLICIES)

    return dict(transform(json.loads(json.dumps(sam)), dict(parameters), _Policies()))


def deploy_package(
    package: Package, region: str, *, stack_name: str, parameters: Mapping[str, str]
) -> Provisioned:
    """Upload the code, create the stack from the package's template, read back what it made."""
    aws = clients(region)
    key = f"{package.stage}/{package.digest}.zip"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    s3.upload_file(str(package.zip), ARTIFACT_BUCKET, key)
    sam = drop_unsupported(package.load_template())
    for resource in sam["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = {"Bucket": ARTIFACT_BUCKET, "Key": key}
    declared = sam.get("Parameters", {})
    given = {k: v for k, v in parameters.items() if k in declared}
    cfn_template = translate(sam, given)
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn_template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack_name}: {stack['StackStatus']}: {stack}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    physical = {
        r["LogicalResourceId"]: r
        for r in cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    }
    lam = aws.client("lambda")
    functions: dict[str, Function] = {}
    state_machine_arn = ""
    for logical_id, summary in physical.items():
        if summary["ResourceType"] == "AWS::StepFunctions::StateMachine":
            state_machine_arn = summary["PhysicalResourceId"]
        if summary["ResourceType"] != "AWS::Lambda::Function":
            continue
        conf = lam.get_function_configuration(FunctionName=summary["PhysicalResourceId"])
        functions[logical_id] = Function(
            logical_id=logical_id,
            name=conf["FunctionName"],
            handler=conf["Handler"],
            environment=dict(conf.get("Environment", {}).get("Variables", {})),
        )
    return Provisioned(stack_name, state_machine_arn, outputs, functions)


# --- outside the template: the operator's secrets and the world's hosts -----------------------


def put_secrets(
    region: str,
    api: Function,
    *,
    api_tokens: Mapping[str, str],
    webhook_secrets: Mapping[str, list[str]],
) -> None:
    """The SecureStrings an operator creates, at the names the API function is told to read."""
    ssm = clients(region).client("ssm")
    env = api.environment
    values = {
        env["ROADIE_API_TOKENS_PARAM"]: {n: token_hash(t) for n, t in api_tokens.items()},
        **{
            env[f"ROADIE_{provider.upper()}_SECRET_PARAM"]: secrets
            for provider, secrets in webhook_secrets.items()
        },
    }
    for name, value in values.items():
        ssm.put_parameter(Name=name, Type="SecureString", Value=json.dumps(value), Overwrite=True)


def launch_hosts(
    region: str,
    pipeline: PipelineConfig,
    *,
    hosts_dir: Path,
    state_dir: Path,
    host_counts: Mapping[str, int],
    known: Mapping[str, list[dict[str, str]]] | None = None,
) -> dict[str, list[dict[str, str]]]:
    """EC2 instances tagged as each environment's ``hosts.tags`` finds them, one sandbox each.

    ``known`` ("app#env" -> hosts a previous run launched): those instances come back with the
    same ids (and so the same names and sandboxes), as a stopped fleet starts again."""
    from devstack.persist import instance_ids

    ec2 = clients(region).client("ec2")
    hosts: dict[str, list[dict[str, str]]] = {}
    for app_name, app_config in pipeline.apps.items():
        for env_name, env in app_config.environments.items():
            count = host_counts.get(env_name, 2)
            before = (known or {}).get(f"{app_name}#{env_name}", [])
            with instance_ids(sorted(h["instance_id"] for h in before)[:count]):
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
            found = []
            for index, instance in enumerate(
                sorted(response["Instances"], key=lambda i: i["InstanceId"]), start=1
            ):
                instance_id = instance["InstanceId"]
                name = f"{app_name}-{env_name}-{index}"
                ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "Name", "Value": name}])
                _prepare_host(hosts_dir / instance_id, app_name, env_name, state_dir)
                found.append({"instance_id": instance_id, "name": name})
            hosts[f"{app_name}#{env_name}"] = found
    return hosts


def _prepare_host(host_dir: Path, app: str, environment: str, state_dir: Path) -> None:
    """A host's first boot: its app directory with the shared config every release links."""
    shared = host_dir / app / "shared"
    (shared / "log").mkdir(parents=True, exist_ok=True)
    db_dir = state_dir / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    (shared / ".env").write_text(
        f"DATABASE_PATH={db_dir / f'{app}-{environment}.sqlite3'}\nRAILS_ENV={environment}\n"
    )
