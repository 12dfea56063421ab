"""DeployService asks the ref resolver with the whole app, for git and s3 sources alike."""

from __future__ import annotations

import pytest

from chalicelib.config import parse_pipeline
from chalicelib.domain.errors import NotFoundError, ValidationError
from chalicelib.domain.model import Host, Requester
from chalicelib.services.deploys import DeployService

from .fakes import (
    FakeDeployStore,
    FakeExecutions,
    FakeFleet,
    FakeHostResultStore,
    FakeRefs,
    FixedClock,
)

SHA = "a" * 40
PIPELINE = """
[apps.{name}]
repository = "roadie-demo/{name}"
source = {{ kind = "{kind}", url = "{url}" }}

[apps.{name}.environments.production]
branch = "main"
hosts = {{ tags = {{ App = "{name}" }} }}
"""
REQUESTER = Requester("local-admin", "api")


def service(kind: str, url: str, refs: FakeRefs) -> DeployService:
    return DeployService.from_ports(
        pipeline=parse_pipeline(PIPELINE.format(name="shop", kind=kind, url=url), {}),
        deploys=FakeDeployStore(),
        host_results=FakeHostResultStore(),
        fleet=FakeFleet([Host("i-0001", "web-1", "us-east-1a")]),
        executions=FakeExecutions(),
        refs=refs,
        poll_seconds=5,
        lease_seconds=3600,
        clock=FixedClock(),
    )


@pytest.mark.parametrize(
    ("kind", "url"), [("git", "git@github.com:roadie-demo/shop.git"), ("s3", "s3://artifacts")]
)
def test_a_ref_resolves_through_the_resolver_with_the_app(kind: str, url: str) -> None:
    refs = FakeRefs({"main": SHA})
    deploy, created = service(kind, url, refs).request(
        app="shop", environment="production", requester=REQUESTER, ref="main"
    )
    assert created and deploy.sha == SHA
    assert refs.asked == [("shop", "main")]


def test_a_sha_is_taken_as_given_without_asking_the_resolver() -> None:
    refs = FakeRefs()
    deploy, _ = service("s3", "s3://artifacts", refs).request(
        app="shop", environment="production", requester=REQUESTER, sha=SHA
    )
    assert deploy.sha == SHA and refs.asked == []


def test_an_unknown_ref_is_not_found_and_records_nothing() -> None:
    svc = service("git", "/x/sources/shop", FakeRefs())
    with pytest.raises(NotFoundError):
        svc.request(app="shop", environment="production", requester=REQUESTER, ref="nope")
    assert svc.deploys.list() == ([], None)


def test_neither_sha_nor_ref_is_invalid() -> None:
    with pytest.raises(ValidationError, match="give either sha or ref"):
        service("git", "/x/sources/shop", FakeRefs()).request(
            app="shop", environment="production", requester=REQUESTER
        )
