"""DeployService.dora and the commit time on the record (``commit_at``), against fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain import lifecycle
from chalicelib.domain.errors import NotFoundError, ValidationError
from chalicelib.domain.model import Deploy, DeployStatus
from chalicelib.services.clock import iso
from chalicelib.services.deploys import DeployService

from .fakes import FakeDeployStore
from .test_deploys import ANN, A, B, make


def end(service: DeployService, deploy_id: str, status: DeployStatus, when: str) -> Deploy:
    """End the deploy as its rollout would, releasing the environment's lock."""
    ended = service.deploys.mutate(deploy_id, lambda d: lifecycle.end(d, status, when))
    service.launcher.end(ended, live_sha=ended.sha if status is DeployStatus.SUCCEEDED else None)
    return ended


def test_a_pushed_commit_time_is_recorded_in_utc_and_gives_the_lead_time() -> None:
    service, clock = make()
    deploy, _ = service.request(
        app="shop",
        environment="production",
        requester=ANN,
        sha=A,
        commit_at="2024-05-01T06:30:00-05:00",  # as GitHub's head_commit.timestamp reads
    )
    assert deploy.commit_at == "2024-05-01T11:30:00.000Z"
    end(service, deploy.deploy_id, DeployStatus.SUCCEEDED, iso(clock.advance(1800)))
    body = service.dora("shop", "production").to_json()
    assert body["lead_time"] == {
        "median_seconds": 3600.0,
        "measured": 1,
        "unknown_commit_time": 0,
        "rollbacks": 0,
    }
    assert body["deployment_frequency"]["successful_deploys"] == 1


def test_a_commit_time_that_is_not_a_time_is_left_out() -> None:
    service, _ = make()
    deploy, _ = service.request(
        app="shop", environment="production", requester=ANN, sha=A, commit_at="soon"
    )
    assert deploy.commit_at is None


def test_a_rollback_carries_the_commit_time_of_the_release_it_restores() -> None:
    service, clock = make()
    good, _ = service.request(
        app="shop", environment="production", requester=ANN, sha=A, commit_at="2024-05-01T10:00Z"
    )
    end(service, good.deploy_id, DeployStatus.SUCCEEDED, iso(clock.advance(60)))
    bad, _ = service.request(app="shop", environment="production", requester=ANN, sha=B)
    back, created = service.rollback(bad.deploy_id, ANN)
    assert created and back.sha == A and back.rollback_of == bad.deploy_id
    assert back.commit_at == good.commit_at == "2024-05-01T10:00:00.000Z"


def test_dora_reads_only_the_window_of_that_environment() -> None:
    service, clock = make()
    store = service.deploys
    assert isinstance(store, FakeDeployStore)
    for n in range(60):  # one deploy every two days, the newest 2 days ago
        created = clock.now - timedelta(days=2 * (60 - n))
        record = Deploy(
            deploy_id=f"d-{n:03d}",
            app="shop",
            environment="production" if n % 2 else "staging",
            sha=A,
            requested_by="ann",
            requested_via="api",
            created_at=iso(created),
            status=DeployStatus.SUCCEEDED,
            finished_at=iso(created + timedelta(minutes=5)),
        )
        seen = store.environment(record.app, record.environment)
        store.write_environment(seen, replace(seen), new_deploy=record)
    report = service.dora("shop", "production", days=30)
    # days 30, 26, ..., 2 ago of production (odd n): 8 records; nothing older, no staging
    assert store.window_reads == report.deploys_read == report.successful == 8
    assert report.deploys_per_day == pytest.approx(8 / 30)


@pytest.mark.parametrize(("app", "environment"), [("nope", "production"), ("shop", "qa")])
def test_an_unknown_app_or_environment_is_not_found(app: str, environment: str) -> None:
    service, _ = make()
    with pytest.raises(NotFoundError):
        service.dora(app, environment)


@pytest.mark.parametrize("days", [0, 366])
def test_days_out_of_range_are_invalid(days: int) -> None:
    service, _ = make()
    with pytest.raises(ValidationError):
        service.dora("shop", "production", days)


def test_an_api_deploy_records_the_commit_time_its_source_tells() -> None:
    service, _ = make()
    service.refs.commit_times[A] = "2024-05-01T13:00:00+02:00"  # type: ignore[attr-defined]
    deploy, _ = service.request(app="shop", environment="production", requester=ANN, sha=A)
    assert deploy.commit_at == "2024-05-01T11:00:00.000Z"
    other, _ = service.request(app="shop", environment="production", requester=ANN, sha=B)
    assert other.commit_at is None  # the source could not tell: no lead time, nothing refused
