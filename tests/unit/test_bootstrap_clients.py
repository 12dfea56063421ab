"""The composition root builds a boto3 client only when a function first calls that service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.bootstrap import Container
from chalicelib.config import Settings


class FakeEc2:
    def get_paginator(self, operation: str) -> FakeEc2:
        assert operation == "describe_instances"
        return self

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield {"Reservations": []}


class FakeSfn:
    def describe_execution(self, executionArn: str) -> dict[str, str]:
        return {"status": "RUNNING"}


class RecordingContainer(Container):
    """A container whose client factory records the services asked for (no boto3, no AWS)."""

    fakes: dict[str, Any] = {"ec2": FakeEc2(), "stepfunctions": FakeSfn()}

    def __init__(self) -> None:
        super().__init__(Settings.from_env({}))
        self.asked: list[str] = []

    def client(self, service: str) -> Any:
        self.asked.append(service)
        return self.fakes.get(service, object())


@pytest.fixture
def container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RecordingContainer:
    monkeypatch.setenv("ROADIE_STATE_DIR", str(tmp_path))  # the bundled config names it
    monkeypatch.setenv("ROADIE_MIRROR_METRICS", "1")  # the rollout's optional cloudwatch client
    return RecordingContainer()


def test_building_every_service_builds_no_client(container: RecordingContainer) -> None:
    for service in ("deploys", "reconciler", "webhooks", "rollout"):
        getattr(container, service)
    assert container.asked == []


def test_a_call_builds_only_its_own_client_and_only_once(container: RecordingContainer) -> None:
    deploys = container.deploys
    assert deploys.fleet.hosts({"App": "shop"}) == []
    assert deploys.fleet.hosts({"App": "shop"}) == []
    assert container.asked == ["ec2"]
    assert deploys.executions.status("arn:aws:states:::execution:x:y") == "RUNNING"
    assert container.reconciler.executions.status("arn:aws:states:::execution:x:y") == "RUNNING"
    assert container.asked == ["ec2", "stepfunctions"]
