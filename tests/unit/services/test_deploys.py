"""DeployService: admission (run, queue, supersede), launch, cancel, freeze, against fakes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from chalicelib.config import parse_pipeline
from chalicelib.domain.contract import ExecutionInput
from chalicelib.domain.errors import (
    ConflictError,
    UnavailableError,
    UnknownShaError,
    ValidationError,
)
from chalicelib.domain.model import DeployStatus, Host, Requester
from chalicelib.domain.rollout import RolloutPlan
from chalicelib.services.clock import iso
from chalicelib.services.deploys import DeployService

from .fakes import (
    FakeDeployStore,
    FakeExecutions,
    FakeFleet,
    FakeHostResultStore,
    FakeRefs,
    FixedClock,
)

A, B, C = "a" * 40, "b" * 40, "c" * 40
LEASE = 600
PIPELINE = """
[apps.shop]
repository = "roadie-demo/shop"
source = { kind = "git", url = "/x/sources/shop" }

[apps.shop.environments.production]
branch = "main"
hosts = { tags = { App = "shop" } }
batch_size = 2
"""
ANN = Requester("ann", "api")
HOSTS = [Host(f"i-{n:04d}", f"web-{n}", "us-east-1a") for n in range(3)]


class FailingExecutions(FakeExecutions):
    def start(self, name: str, payload: Mapping[str, Any]) -> str:
        raise UnavailableError("Step Functions is down")


def make(executions: FakeExecutions | None = None) -> tuple[DeployService, FixedClock]:
    clock = FixedClock()
    service = DeployService.from_ports(
        pipeline=parse_pipeline(PIPELINE, {}),
        deploys=FakeDeployStore(),
        host_results=FakeHostResultStore(),
        fleet=FakeFleet(HOSTS),
        executions=executions or FakeExecutions(),
        refs=FakeRefs(),
        poll_seconds=5,
        lease_seconds=LEASE,
        clock=clock,
    )
    return service, clock


def request(service: DeployService, sha: str) -> Any:
    deploy, created = service.request(app="shop", environment="production", requester=ANN, sha=sha)
    assert created
    return deploy


def test_a_deploy_to_a_free_environment_runs_with_its_plan_recorded_and_started() -> None:
    service, clock = make()
    deploy = request(service, A)
    assert deploy.status is DeployStatus.RUNNING
    assert deploy.created_at == deploy.started_at == iso(clock.now)
    assert deploy.execution_arn and deploy.execution_arn.endswith(deploy.deploy_id)
    plan = RolloutPlan.from_json(deploy.plan)
    assert plan.hosts == tuple(Host(h.instance_id, h.name) for h in HOSTS)  # names kept
    assert (deploy.step_count, deploy.host_count, deploy.batch_size) == (
        len(plan.steps),
        3,
        2,
    )
    started = service.executions.started[deploy.deploy_id]  # type: ignore[attr-defined]
    execution = ExecutionInput.from_json(started)
    assert (execution.deploy_id, execution.cursor, execution.poll_seconds) == (
        deploy.deploy_id,
        0,
        5,
    )
    assert execution.plan.to_json(names=False) == plan.to_json(names=False)
    assert "host_names" not in started["plan"]
    assert execution.parameters["sha"] == A


def test_a_second_deploy_queues_and_a_third_supersedes_it() -> None:
    service, clock = make()
    running = request(service, A)
    second = request(service, B)
    assert second.status is DeployStatus.QUEUED and second.started_at is None
    clock.advance(3)
    third = request(service, C)
    assert third.status is DeployStatus.QUEUED
    superseded = service.deploys.get(second.deploy_id)
    assert (superseded.status, superseded.superseded_by) == (
        DeployStatus.SUPERSEDED,
        third.deploy_id,
    )
    assert superseded.finished_at == iso(clock.now)
    state = service.environment_state("shop", "production")
    assert (state.lock_deploy_id, state.queued_deploy_id) == (running.deploy_id, third.deploy_id)


def test_cancelling_a_queued_deploy_ends_it_and_empties_the_queue() -> None:
    service, clock = make()
    request(service, A)
    queued = request(service, B)
    clock.advance(1)
    cancelled = service.cancel(queued.deploy_id, Requester("bob", "api"))
    assert (cancelled.status, cancelled.cancel_requested_by) == (DeployStatus.CANCELLED, "bob")
    assert cancelled.finished_at == iso(clock.now)
    state = service.environment_state("shop", "production")
    assert state.queued_deploy_id is None
    assert state.audit[-1]["action"] == "cancel"


def test_cancelling_a_running_deploy_asks_it_to_stop() -> None:
    service, _clock = make()
    running = request(service, A)
    asked = service.cancel(running.deploy_id, Requester("bob", "api"))
    assert (asked.status, asked.cancel_requested_by) == (DeployStatus.RUNNING, "bob")
    again = service.cancel(running.deploy_id, Requester("carol", "api"))
    assert again.cancel_requested_by == "bob"


def test_cancelling_an_ended_deploy_is_a_conflict() -> None:
    service, _clock = make()
    request(service, A)
    second = request(service, B)
    request(service, C)  # supersedes the second
    with pytest.raises(ConflictError, match="already ended as superseded"):
        service.cancel(second.deploy_id, ANN)


def test_a_rollout_that_cannot_start_ends_errored_and_frees_the_environment() -> None:
    service, _clock = make(FailingExecutions())
    deploy, _ = service.request(app="shop", environment="production", requester=ANN, sha=A)
    assert deploy.status is DeployStatus.ERRORED
    assert deploy.finished_at is not None
    assert deploy.error == {
        "kind": "errored",
        "phase": "starting",
        "message": "could not start the rollout: Step Functions is down",
    }
    assert service.environment_state("shop", "production").lock_deploy_id is None


def test_a_holder_whose_lease_expired_is_stopped_and_ends_errored() -> None:
    executions = FakeExecutions()
    service, clock = make(executions)
    stale = request(service, A)
    clock.advance(LEASE + 1)
    fresh = request(service, B)
    assert fresh.status is DeployStatus.RUNNING
    ended = service.deploys.get(stale.deploy_id)
    assert ended.status is DeployStatus.ERRORED
    assert ended.error == {
        "kind": "errored",
        "phase": "pending",
        "message": "its lease expired (no progress)",
    }
    assert executions.stopped == [(stale.execution_arn, "lease expired")]


def test_unfreezing_starts_the_deploy_queued_meanwhile() -> None:
    service, _clock = make()
    service.freeze("shop", "production", "incident", ANN)
    queued = request(service, A)
    assert queued.status is DeployStatus.QUEUED
    state = service.unfreeze("shop", "production", ANN)
    assert state.lock_deploy_id == queued.deploy_id and not state.frozen
    started = service.deploys.get(queued.deploy_id)
    assert started.status is DeployStatus.RUNNING and started.started_at is not None


def test_a_forced_deploy_runs_through_a_freeze() -> None:
    service, _clock = make()
    service.freeze("shop", "production", "incident", ANN)
    deploy, _ = service.request(
        app="shop", environment="production", requester=ANN, sha=A, force=True
    )
    assert deploy.status is DeployStatus.RUNNING and deploy.force


def test_the_same_sha_answers_with_the_deploy_already_there() -> None:
    service, _clock = make()
    first = request(service, A)
    again, created = service.request(app="shop", environment="production", requester=ANN, sha=A)
    assert (created, again.deploy_id) == (False, first.deploy_id)


def test_a_freeze_needs_a_reason() -> None:
    service, _clock = make()
    with pytest.raises(ValidationError, match="a freeze needs a reason"):
        service.freeze("shop", "production", "  ", ANN)
    assert not service.environment_state("shop", "production").frozen


def test_a_sha_that_is_no_commit_of_the_repository_is_unknown_and_records_nothing() -> None:
    service, _ = make()
    refs = FakeRefs(commits=[A])
    service.refs = refs
    with pytest.raises(UnknownShaError, match=B):
        service.request(app="shop", environment="production", requester=ANN, sha=B)
    assert service.deploys.list() == ([], None)
    assert refs.looked_up == [("shop", B)]
    assert request(service, A).sha == A


def test_a_sha_a_signed_push_reported_or_a_source_that_cannot_tell_is_not_refused() -> None:
    service, _ = make()
    service.refs = FakeRefs(commits=[])
    deploy, created = service.request(
        app="shop", environment="production", requester=ANN, sha=B, sha_known=True
    )
    assert created and deploy.sha == B and service.refs.looked_up == []
    other, _ = make()
    other.refs = FakeRefs(unknown_commits=True)  # an s3 source: staging is the check
    assert request(other, C).sha == C
