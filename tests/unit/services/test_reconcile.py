"""The reconciler reports how long each active lock holder has held its environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.config import parse_pipeline
from chalicelib.domain import lifecycle
from chalicelib.domain.model import Deploy, DeployStatus, Host, Requester
from chalicelib.services.deploys import DeployService
from chalicelib.services.reconcile import Reconciler

from .fakes import (
    FakeDeployStore,
    FakeExecutions,
    FakeFleet,
    FakeHostResultStore,
    FakeRefs,
    FixedClock,
)

SHA = "a" * 40
NEXT_SHA = "d" * 40
PIPELINE = """
[apps.shop]
repository = "roadie-demo/shop"
source = { kind = "git", url = "/x/sources/shop" }

[apps.shop.environments.production]
branch = "main"
hosts = { tags = { App = "shop", Environment = "production" } }
"""


@dataclass
class FakeGauge:
    ages: list[tuple[str, str, float]] = field(default_factory=list)

    def lock_age(self, app: str, environment: str, seconds: float) -> None:
        self.ages.append((app, environment, seconds))


def world(gauge: FakeGauge | None) -> tuple[FixedClock, FakeDeployStore, Reconciler]:
    clock = FixedClock()
    deploys = FakeDeployStore()
    executions = FakeExecutions()  # every execution reports RUNNING
    pipeline = parse_pipeline(PIPELINE, {})
    service = DeployService.from_ports(
        pipeline=pipeline,
        deploys=deploys,
        host_results=FakeHostResultStore(),
        fleet=FakeFleet([Host("i-0001", "web-1", "us-east-1a")]),
        executions=executions,
        refs=FakeRefs(),
        poll_seconds=5,
        lease_seconds=3600,
        clock=clock,
    )
    reconciler = Reconciler(
        pipeline=pipeline,
        deploys=deploys,
        handover=service.launcher,
        executions=executions,
        poll_seconds=5,
        clock=clock,
        metrics=gauge,
    )
    deploy, created = service.request(
        app="shop", environment="production", requester=Requester("ann", "api"), sha=SHA
    )
    assert created and deploy.status is DeployStatus.RUNNING
    return clock, deploys, reconciler


def test_reports_the_age_of_a_running_holders_lock() -> None:
    gauge = FakeGauge()
    clock, _deploys, reconciler = world(gauge)
    clock.advance(125)
    assert reconciler.run() == []  # its execution is running: nothing to fix
    assert gauge.ages == [("shop", "production", 125.0)]


def test_a_finished_holder_is_released_and_reports_no_age() -> None:
    gauge = FakeGauge()
    clock, deploys, reconciler = world(gauge)
    (holder,) = deploys.deploys

    def succeeded(d: Deploy) -> None:
        lifecycle.end(d, DeployStatus.SUCCEEDED, "2024-05-01T12:01:00.000Z")

    deploys.mutate(holder, succeeded)
    clock.advance(10_000)
    assert [a["action"] for a in reconciler.run()] == ["released a finished deploy"]
    assert gauge.ages == []


def test_without_a_gauge_it_reconciles_as_before() -> None:
    clock, _deploys, reconciler = world(None)
    clock.advance(60)
    assert reconciler.run() == []
