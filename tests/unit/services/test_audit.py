"""The audit trail and the status log lines: ``ObservedDeploys`` sees every deploy created,
every status change and every environment entry, and writes each once."""

from __future__ import annotations

import logging

import pytest

from chalicelib.config import parse_pipeline
from chalicelib.domain import correlation
from chalicelib.domain.errors import UnavailableError, ValidationError
from chalicelib.domain.model import DeployStatus, Host, Requester
from chalicelib.services.audit import AuditQueries, ObservedDeploys, Observer
from chalicelib.services.deploys import DeployService

from .fake_audit import FakeAuditLog
from .fakes import (
    FakeDeployStore,
    FakeExecutions,
    FakeFleet,
    FakeHostResultStore,
    FakeRefs,
    FixedClock,
)

A, B, C = "a" * 40, "b" * 40, "c" * 40
PIPELINE = """
[apps.shop]
repository = "roadie-demo/shop"
source = { kind = "git", url = "/x/sources/shop" }

[apps.shop.environments.production]
branch = "main"
hosts = { tags = { App = "shop" } }
"""
ANN = Requester("ann", "api")
BOB = Requester("bob", "api")


def make(trail: FakeAuditLog | None = None) -> tuple[DeployService, FakeAuditLog]:
    trail = trail or FakeAuditLog()
    clock = FixedClock()
    service = DeployService.from_ports(
        pipeline=parse_pipeline(PIPELINE, {}),
        deploys=ObservedDeploys(FakeDeployStore(), Observer(trail, clock)),
        host_results=FakeHostResultStore(),
        fleet=FakeFleet([Host("i-0001", "web-1")]),
        executions=FakeExecutions(),
        refs=FakeRefs(),
        poll_seconds=5,
        lease_seconds=600,
        clock=clock,
    )
    return service, trail


def ask(service: DeployService, sha: str, by: Requester = ANN, force: bool = False) -> str:
    deploy, _ = service.request(
        app="shop", environment="production", requester=by, sha=sha, force=force
    )
    return deploy.deploy_id


def test_a_deploy_requested_and_started_is_two_events_with_who_and_where_from() -> None:
    service, trail = make()
    deploy_id = ask(service, A)
    assert trail.actions() == ["deploy.requested", "deploy.started"]
    for event in trail.events:
        assert (event.app, event.environment, event.deploy_id) == ("shop", "production", deploy_id)
        assert (event.principal, event.source) == ("ann", "api")
        assert event.detail["sha"] == A and event.at.startswith("2024-05-01T12:00:00")


def test_queued_superseded_cancelled_and_lock_each_leave_their_event() -> None:
    service, trail = make()
    ask(service, A)
    second = ask(service, B)
    third = ask(service, C, by=BOB)
    service.cancel(third, BOB)
    service.freeze("shop", "production", "release freeze", ANN)
    service.unfreeze("shop", "production", BOB)
    by_action = {(e.action, e.deploy_id): e for e in trail.events}
    assert by_action[("deploy.superseded", second)].detail["superseded_by"] == third
    cancelled = by_action[("deploy.cancelled", third)]
    assert (cancelled.principal, cancelled.detail["outcome"]) == ("bob", "cancelled")
    assert by_action[("deploy.cancel_requested", third)].principal == "bob"
    lock = by_action[("environment.lock", None)]
    assert (lock.principal, lock.source, lock.detail["reason"]) == ("ann", "api", "release freeze")
    assert by_action[("environment.unlock", None)].principal == "bob"


def end(service: DeployService, deploy_id: str, status: DeployStatus) -> None:
    from chalicelib.domain import lifecycle

    ended = service.deploys.mutate(
        deploy_id, lambda d: lifecycle.end(d, status, "2024-05-01T12:01:00.000Z")
    )
    service.launcher.end(ended)


def test_a_forced_deploy_and_a_rollback_say_so() -> None:
    service, trail = make()
    good = ask(service, A, force=True)
    assert "deploy.forced" in trail.actions()
    end(service, good, DeployStatus.SUCCEEDED)
    assert isinstance(service.clock, FixedClock)
    service.clock.advance(5)
    bad = ask(service, B)
    end(service, bad, DeployStatus.FAILED)
    rollback, _ = service.rollback(bad, BOB)
    requested = [e for e in trail.events if e.action == "deploy.rollback_requested"]
    assert [(e.deploy_id, e.source, e.principal) for e in requested] == [
        (rollback.deploy_id, "rollback", "bob")
    ]
    assert requested[0].detail["rollback_of"] == bad
    outcomes = [e.detail["outcome"] for e in trail.events if e.action == "deploy.finished"]
    assert outcomes == ["succeeded", "failed"]


def test_a_finished_deploy_is_one_event_with_its_outcome_and_one_status_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from chalicelib.domain import lifecycle

    service, trail = make()
    deploy_id = ask(service, A)
    caplog.set_level(logging.INFO, logger="roadie")
    with correlation.bound(source="schedule"):
        service.deploys.mutate(
            deploy_id, lambda d: lifecycle.end(d, DeployStatus.FAILED, "2024-05-01T12:01:00.000Z")
        )
    finished = trail.events[-1]
    assert (finished.action, finished.detail["outcome"], finished.source) == (
        "deploy.finished",
        "failed",
        "schedule",
    )
    lines = [r for r in caplog.records if "status" in r.getMessage()]
    assert [r.getMessage() for r in lines] == [f"deploy {deploy_id} status running -> failed"]
    assert lines[0].__dict__["previous_status"] == "running"


def test_a_change_that_keeps_the_status_writes_no_event() -> None:
    service, trail = make()
    deploy_id = ask(service, A)
    before = len(trail.events)
    service.deploys.mutate(deploy_id, lambda d: setattr(d, "reason", "more words"))
    assert len(trail.events) == before


class DownAuditLog(FakeAuditLog):
    def append(self, event: object) -> None:
        raise UnavailableError("audit table unavailable")


def test_an_audit_store_that_is_down_never_fails_the_deploy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, _ = make(DownAuditLog())
    deploy_id = ask(service, A)
    assert service.deploys.get(deploy_id).status is DeployStatus.RUNNING
    assert any("audit event not stored" in r.getMessage() for r in caplog.records)


def test_the_audit_query_checks_the_environment_and_since() -> None:
    from chalicelib.domain.errors import NotFoundError

    service, trail = make()
    ask(service, A)
    queries = AuditQueries(service.pipeline, trail)
    events, cursor = queries.page("shop", "production", since="2024-05-01", limit=10, cursor=None)
    # both at the same instant: newest first is by the event id then
    assert sorted(e.action for e in events) == ["deploy.requested", "deploy.started"]
    assert cursor is None
    with pytest.raises(NotFoundError):
        queries.page("shop", "nowhere", since=None, limit=10, cursor=None)
    for bad in ("yesterday", "2024-05-01 12:00", "2024-13", "\uff12\uff10\uff12\uff14-05-01"):
        with pytest.raises(ValidationError):
            queries.page("shop", "production", since=bad, limit=10, cursor=None)
