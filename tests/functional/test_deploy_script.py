"""`make deploy` (scripts/deploy.sh) against a moto server on 127.0.0.1.

moto stands in for S3 and CloudFormation: the script packages, uploads the code and the
template through S3 and asks CloudFormation for a change set. moto cannot run a SAM change set
(it resolves neither the TemplateURL it was given nor the Serverless transform), so the test
checks everything up to that request, and that the request was made for the right stack.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from devstack.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "acme-roadie-artifacts"


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def run(endpoint: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ROADIE_"))},
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **env,
    }
    return subprocess.run(
        [str(ROOT / "scripts" / "deploy.sh"), *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_refuses_without_a_bucket_or_with_the_example_config(moto_endpoint: str) -> None:
    missing = run(moto_endpoint, "prod", "", "infra/pipeline.example.toml", "us-east-1")
    assert missing.returncode == 2 and "BUCKET=" in missing.stderr
    example = run(moto_endpoint, "prod", BUCKET, "infra/pipeline.example.toml", "us-east-1")
    assert example.returncode == 2 and "example config" in example.stderr
    bad_stage = run(moto_endpoint, "Prod!", BUCKET, "infra/pipeline.example.toml", "us-east-1")
    assert bad_stage.returncode == 2 and "STAGE" in bad_stage.stderr


def test_packages_uploads_through_s3_and_asks_for_the_stage_stack(
    moto_endpoint: str, tmp_path: Path
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=BUCKET)
    config = tmp_path / "pipeline.toml"
    config.write_text((ROOT / "infra" / "pipeline.example.toml").read_text())
    result = run(moto_endpoint, "prod", BUCKET, str(config), "us-east-1")
    report = result.stdout + result.stderr
    assert "cfn-lint and asl-validator clean" in report
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert all(k.startswith("roadie/prod/") for k in keys)
    assert any(k.endswith(".template") for k in keys), "the template went through S3"
    packaged = json.loads((ROOT / "out" / "prod" / "packaged.json").read_text())
    uris = {
        r["Properties"]["CodeUri"]
        for r in packaged["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert len(uris) == 1 and next(iter(uris)).startswith(f"s3://{BUCKET}/roadie/prod/")
    assert packaged["Resources"]["APIHandler"]["Properties"]["FunctionName"] == "roadie-prod"
    # the change set request was made; moto cannot take it further (see the module docstring)
    assert "CreateChangeSet" in report, report[-2000:]
