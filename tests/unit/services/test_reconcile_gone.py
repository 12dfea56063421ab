"""A deploy whose execution the orchestrator no longer knows (the local stack restarted) is
recovered like one whose execution stopped: rolled back if hosts may have switched."""

from __future__ import annotations

from chalicelib.config import parse_pipeline
from chalicelib.domain import lifecycle
from chalicelib.domain.contract import EXECUTION_GONE
from chalicelib.domain.model import Deploy, DeployStatus, Host, Phase, Requester
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
PIPELINE = """
[apps.shop]
repository = "roadie-demo/shop"
source = { kind = "git", url = "/x/sources/shop" }

[apps.shop.environments.production]
branch = "main"
hosts = { tags = { App = "shop", Environment = "production" } }
"""


class ForgetfulExecutions(FakeExecutions):
    """An orchestrator that lost every execution started before ``forget()``."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: set[str] = set()

    def forget(self) -> None:
        self.lost = {
            f"arn:aws:states:us-east-1:123456789012:execution:roadie:{n}" for n in self.started
        }

    def status(self, execution_arn: str) -> str:
        return EXECUTION_GONE if execution_arn in self.lost else "RUNNING"


def world(phase: Phase) -> tuple[FakeDeployStore, ForgetfulExecutions, Reconciler, str]:
    clock = FixedClock()
    deploys = FakeDeployStore()
    executions = ForgetfulExecutions()
    pipeline = parse_pipeline(PIPELINE, {})
    service = DeployService.from_ports(
        pipeline=pipeline,
        deploys=deploys,
        host_results=FakeHostResultStore(),
        fleet=FakeFleet([Host("i-0001", "web-1", "us-east-1a"), Host("i-0002", "web-2", "")]),
        executions=executions,
        refs=FakeRefs(),
        poll_seconds=5,
        lease_seconds=3600,
        clock=clock,
    )
    deploy, _ = service.request(
        app="shop", environment="production", requester=Requester("ann", "api"), sha=SHA
    )

    def reach(d: Deploy) -> None:
        for step in (Phase.STAGING, Phase.MIGRATING, Phase.SWITCHING):
            if d.phase is phase:
                break
            lifecycle.enter_phase(d, step, "2024-05-01T12:00:01.000Z")

    deploys.mutate(deploy.deploy_id, reach)
    reconciler = Reconciler(
        pipeline=pipeline,
        deploys=deploys,
        handover=service.launcher,
        executions=executions,
        poll_seconds=5,
        clock=clock,
    )
    return deploys, executions, reconciler, deploy.deploy_id


def test_a_running_execution_is_left_alone() -> None:
    _deploys, _executions, reconciler, _deploy_id = world(Phase.SWITCHING)
    assert reconciler.run() == []


def test_a_lost_execution_after_a_switch_starts_a_rollback_of_every_host() -> None:
    deploys, executions, reconciler, deploy_id = world(Phase.SWITCHING)
    executions.forget()
    (action,) = reconciler.run()
    assert action["action"].startswith("rolling back: its execution no longer exists")
    assert f"{deploy_id}-recovery-1" in executions.started
    record = deploys.get(deploy_id)
    assert record.status is DeployStatus.RUNNING  # the recovery execution ends it
    assert "no longer exists" in str(record.error)


def test_a_lost_execution_before_any_switch_ends_errored_and_releases_the_lock() -> None:
    deploys, executions, reconciler, deploy_id = world(Phase.STAGING)
    executions.forget()
    (action,) = reconciler.run()
    assert action["action"].startswith("ended errored: its execution no longer exists")
    record = deploys.get(deploy_id)
    assert record.status is DeployStatus.ERRORED
    assert len(executions.started) == 1  # no recovery execution
    assert deploy_id not in [e.lock_deploy_id for e in deploys.locked_environments()]
