"""Every function of the packaged template boots with exactly its template environment and works.

The stack is deployed from a package built with an AWS-shaped config (it passes the packager's
AWS checks): `shop` ships from an S3 artifact store (hosts fetch `<sha>.tar.gz` from moto's S3
with the `aws` CLI; refs resolve through the store's ref objects), `web` is a git source whose
refs resolve through the GitHub API (a fake on 127.0.0.1 that checks every request, with the
token read from a SecureString). Through the template's functions, invoked as AWS invokes them:
HTTP deploys by SHA and by ref, a signed webhook, the reconcile schedule, and every rollout
task; each function's AWS calls are checked against the IAM policy its role gets.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import pytest

from chalicelib import bootstrap
from chalicelib.config import Settings, check_deployable
from devstack import moto_patches
from devstack.stack import LocalStack
from infra import package
from tests.functional.conftest import CORPUS_SECRETS, EVENTS, auth, wait_for
from tests.functional.host_output import assert_host_output_kept
from tests.functional.test_scm_refs import BRANCHES, FakeScm

BUCKET = "roadie-test-releases"
SCM_TOKEN_PARAM = "/roadie/dev/scm/github"
SCM_TOKEN = "ghp-boot-test-token-0123456789"
CONFIG = """
[apps.shop]
repository = "acme/shop"
source = {{ kind = "s3", url = "s3://{bucket}/builds" }}
deploy_root = "/srv/roadie"

[apps.shop.commands]
build = "seq 1 1000"
migrate = "bin/migrate"
post_migrate = "bin/post_migrate"
health = "bin/health"
restart = "bin/restart"

[apps.shop.environments.production]
branch = "main"
hosts = {{ tags = {{ App = "shop", Environment = "production" }} }}
batch_size = 1

[apps.web]
repository = "roadie-demo/shop"
source = {{ kind = "git", url = "https://127.0.0.1:9/roadie-demo/shop.git" }}
scm = {{ provider = "github", api_url = "{api_url}", token = "{token}" }}

[apps.web.environments.production]
branch = "main"
hosts = {{ tags = {{ App = "web", Environment = "production" }} }}
"""
# the function making an AWS call right now (None: not one of ours, e.g. moto's interpreter)
_calling: ContextVar[str | None] = ContextVar("calling", default=None)


@pytest.fixture
def scm() -> Iterator[FakeScm]:
    fake = FakeScm().start()
    fake.expected_token = SCM_TOKEN
    yield fake
    fake.stop()


@pytest.fixture
def aws_stack(stack: LocalStack, scm: FakeScm, tmp_path: Path) -> Iterator[LocalStack]:
    config = tmp_path / "pipeline.toml"
    config.write_text(
        CONFIG.format(bucket=BUCKET, api_url=scm.url("github"), token=SCM_TOKEN_PARAM)
    )
    # the same config passes the checks `make package` applies to an artifact for AWS
    check_deployable(package.load_config(config, {}, local=False)[1])
    stack.reset(config=str(config), host_counts={"production": 2})
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=SCM_TOKEN_PARAM, Type="SecureString", Value=SCM_TOKEN)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    repo = stack.sources
    for sha in (repo.v1, repo.v2):  # what CI uploads: a tarball per SHA ...
        s3.put_object(Bucket=BUCKET, Key=f"builds/shop/{sha}.tar.gz", Body=_tarball(repo.path, sha))
    # ... and the branch's SHA
    s3.put_object(Bucket=BUCKET, Key="builds/shop/refs/heads/main", Body=repo.v2.encode())
    yield stack
    stack.reset()  # leave the bundled config for the next test of this process


def _tarball(repo: Path, sha: str) -> bytes:
    tar = subprocess.run(
        ["git", "--git-dir", str(repo), "archive", "--format=tar", sha],
        capture_output=True,
        check=True,
    ).stdout
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as gz, tarfile.open(fileobj=io.BytesIO(tar)) as t:
        for member in t.getmembers():
            gz.addfile(member, t.extractfile(member) if member.isfile() else None)
    return out.getvalue()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(function, IAM action) of every AWS call our functions make."""
    recorded: list[tuple[str, str]] = []
    original = botocore.client.BaseClient._make_api_call
    original_invoke = moto_patches._invoke

    def record(self: Any, operation: str, params: Any) -> Any:
        function = _calling.get()
        if function is not None:
            model = self.meta.service_model
            service = model.metadata.get("signingName") or model.endpoint_prefix
            recorded.extend((function, a) for a in iam_actions(service, operation, params))
        return original(self, operation, params)

    def invoke(backend: Any, function_name: str, *args: Any) -> Any:
        token = _calling.set(moto_patches._normalise(function_name))
        try:
            return original_invoke(backend, function_name, *args)
        finally:
            _calling.reset(token)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    monkeypatch.setattr(moto_patches.LambdaSimpleBackend, "invoke", invoke)
    return recorded


def as_api(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One request to the API handler, in this thread, so its AWS calls are attributed."""
    token = _calling.set("roadie-dev")
    try:
        return getattr(client.http, method)(path, **kwargs)
    finally:
        _calling.reset(token)


def deploy(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = as_api(client, "post", "/deploys", headers=auth(), body=json.dumps(body))
    assert response.status_code == 202, response.body
    return dict(response.json_body)


def wait_until_phase(client: Any, deploy_id: str, phase: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.http.get(f"/deploys/{deploy_id}", headers=auth()).json_body["phase"] != phase:
        assert time.monotonic() < deadline, f"{deploy_id} never reached {phase}"
        time.sleep(0.05)


def releases(stack: LocalStack, app: str = "shop") -> set[str]:
    hosts = stack.provisioned.hosts[f"{app}#production"]
    return {
        (stack.options.hosts_dir / h["instance_id"] / app / "current").resolve().name for h in hosts
    }


def test_every_function_boots_with_its_template_environment_and_does_its_job(
    aws_stack: LocalStack, client: Any, scm: FakeScm, calls: list[tuple[str, str]]
) -> None:
    repo = aws_stack.sources
    # one host's shared .env has a line the host script warns about (on stderr)
    warned = min(aws_stack.provisioned.hosts["shop#production"], key=lambda h: h["name"])
    dotenv = aws_stack.options.hosts_dir / warned["instance_id"] / "shop" / "shared" / ".env"
    dotenv.write_text(dotenv.read_text() + "not an assignment\n")

    # HTTP deploy by SHA: hosts fetch the tarball from the artifact store
    first = wait_for(
        client,
        deploy(client, {"app": "shop", "environment": "production", "sha": repo.v1})["deploy_id"],
    )
    assert first["status"] == "succeeded", first.get("error")
    assert releases(aws_stack) == {repo.v1}
    # each host's whole output, from the log group SSM sent it to, read by the API's role
    assert_host_output_kept(
        lambda path: as_api(client, "get", path, headers=auth()),
        first,
        warned["instance_id"],
        aws_stack.provisioned.outputs["HostOutputLogGroupPrefix"] + "/shop",
    )

    # HTTP deploy by ref: the branch's SHA comes from the store's ref object, not git
    by_ref = deploy(client, {"app": "shop", "environment": "production", "ref": "main"})
    assert by_ref["sha"] == repo.v2
    assert wait_for(client, by_ref["deploy_id"])["status"] == "succeeded"
    assert releases(aws_stack) == {repo.v2}

    # a signed GitHub push of v1 to main deploys it
    body = json.loads((EVENTS / "github/push/2.json").read_text())
    body["repository"]["full_name"] = "acme/shop"
    body["ref"], body["after"] = "refs/heads/main", repo.v1
    body["head_commit"]["id"] = repo.v1
    raw = json.dumps(body).encode()
    secret = CORPUS_SECRETS["github_webhook_secret"].encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest(),
    }
    pushed = as_api(client, "post", "/webhooks/github", headers=headers, body=raw)
    assert pushed.status_code == 202, pushed.body
    assert wait_for(client, pushed.json_body["deploy_id"])["status"] == "succeeded"
    assert releases(aws_stack) == {repo.v1}

    # a cancel stops a hung migration on its host (SSM CancelCommand from the API's role)
    first_host = min(aws_stack.provisioned.hosts["shop#production"], key=lambda h: h["name"])
    hang = aws_stack.options.hosts_dir / first_host["instance_id"] / "fault.migrate"
    hang.write_text("hang\n")
    hung = deploy(client, {"app": "shop", "environment": "production", "sha": repo.v2})
    wait_until_phase(client, hung["deploy_id"], "migrating")
    cancelled = as_api(client, "post", f"/deploys/{hung['deploy_id']}/cancel", headers=auth())
    assert cancelled.status_code == 202, cancelled.body
    assert wait_for(client, hung["deploy_id"], timeout=30)["status"] == "cancelled"
    hang.unlink()
    assert releases(aws_stack) == {repo.v1}

    # a ref of a git app resolves through the SCM's API with the token from SSM (frozen first,
    # so the deploy is recorded and queued: no host needs to reach the repository)
    frozen = as_api(
        client,
        "put",
        "/environments/web/production/lock",
        headers=auth(),
        body=json.dumps({"reason": "boot test"}),
    )
    assert frozen.status_code == 200, frozen.body
    queued = deploy(client, {"app": "web", "environment": "production", "ref": "main"})
    assert (queued["status"], queued["sha"]) == ("queued", BRANCHES["main"])
    assert any(s.path.endswith("/git/ref/heads/main") for s in scm.requests)
    assert all(s.headers.get("authorization") == f"Bearer {SCM_TOKEN}" for s in scm.requests)

    # the schedule: EventBridge invokes the template's Reconcile function
    assert aws_stack.run_schedule("Reconcile") == []

    # RolloutRecover, given what the state machine gives it after an error before any switch
    execution = boto3.client("stepfunctions").describe_execution(
        executionArn=first["links"]["execution"]
    )
    event = {**json.loads(execution["input"]), "cursor": 0, "error": {"Error": "X", "Cause": "y"}}
    assert aws_stack.invoke("RolloutRecover", event)["state"] == "errored"

    # every function ran, each with exactly its template environment plus the runtime's own
    built = aws_stack.package
    ran = dict(moto_patches.invocations)
    lam = boto3.client("lambda")
    for logical_id in TASKS:
        function = aws_stack.provisioned.functions[logical_id]
        assert function.name in ran, f"{logical_id} never ran"
        conf = lam.get_function_configuration(FunctionName=function.name)
        template_env = conf["Environment"]["Variables"]
        environ = ran[function.name]
        assert {k: environ[k] for k in template_env} == template_env
        assert set(environ) - set(template_env) == RUNTIME_VARIABLES
        settings = Settings.from_env(environ)
        assert settings.deploys_table == template_env["ROADIE_DEPLOYS_TABLE"]
        assert settings.pipeline_config == built.task_root / package.CONFIG_IN_PACKAGE
    api = aws_stack.provisioned.api
    assert bootstrap.container().settings == Settings.from_env(
        aws_stack.function_environment(api, built.task_root)
    )

    # and every AWS call a function made is one its role's policy allows
    assert_calls_allowed(built.load_template(), aws_stack, calls)


TASKS = ("RolloutDispatch", "RolloutPoll", "RolloutFinish", "RolloutRecover", "Reconcile")
RUNTIME_VARIABLES = {
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "LAMBDA_TASK_ROOT",
    "ROADIE_MIRROR_METRICS",
}
# IAM has no action for a transaction: each item in it needs its own
TRANSACT_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def iam_actions(service: str, operation: str, params: Any) -> list[str]:
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return [
            f"dynamodb:{TRANSACT_ITEMS[kind]}" for item in params["TransactItems"] for kind in item
        ]
    return [f"{service}:{operation}"]


def assert_calls_allowed(
    template: dict[str, Any], stack: LocalStack, calls: list[tuple[str, str]]
) -> None:
    by_name = {f.name: f.logical_id for f in stack.provisioned.functions.values()}
    seen: dict[str, set[str]] = {}
    for function, action in calls:
        if action == "monitoring:PutMetricData":
            continue  # the local runtime's stand-in for EMF ingestion (ROADIE_MIRROR_METRICS)
        seen.setdefault(by_name[function], set()).add(action)
    assert {"APIHandler", *TASKS} <= set(seen), seen.keys()
    for logical_id, actions in seen.items():
        role = template["Resources"][logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        allowed = [
            action
            for policy in template["Resources"][role]["Properties"]["Policies"]
            for statement in policy["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Allow"
            for action in (
                [statement["Action"]]
                if isinstance(statement["Action"], str)
                else statement["Action"]
            )
        ]
        missing = sorted(
            a for a in actions if not any(fnmatchcase(a.lower(), p.lower()) for p in allowed)
        )
        assert missing == [], f"{logical_id} calls {missing}; its role does not allow them"
