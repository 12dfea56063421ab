"""The metrics adapter: EMF on stdout with app/environment dimensions, mirrored locally."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.adapters.metrics import LOCK_AGE, NAMESPACE, DeployMetricsPublisher
from chalicelib.domain.model import Deploy, DeployStatus


class RecordingCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def emf_documents(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def value(doc: dict[str, Any], name: str) -> float:
    """A metric's value in an EMF document (Powertools writes each as a list of values)."""
    (found,) = doc[name] if isinstance(doc[name], list) else [doc[name]]
    return float(found)


@pytest.fixture(autouse=True)
def _metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)


def test_lock_age_is_one_emf_metric_per_app_and_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mirror = RecordingCloudWatch()
    DeployMetricsPublisher(lambda: mirror).lock_age("shop", "production", 42.0)
    (doc,) = emf_documents(capsys.readouterr().out)
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    assert [m["Name"] for m in directive["Metrics"]] == [LOCK_AGE]
    assert set(directive["Dimensions"][0]) == {"service", "app", "environment"}
    assert (doc["app"], doc["environment"], value(doc, LOCK_AGE)) == ("shop", "production", 42)
    (call,) = mirror.calls
    assert call["MetricData"][0]["MetricName"] == LOCK_AGE
    assert call["MetricData"][0]["Dimensions"][1] == {"Name": "app", "Value": "shop"}


@pytest.mark.parametrize(
    ("status", "failed", "cancelled"),
    [
        (DeployStatus.SUCCEEDED, 0, 0),
        (DeployStatus.FAILED, 1, 0),
        (DeployStatus.ROLLED_BACK, 1, 0),
        (DeployStatus.CANCELLED, 1, 1),
        (DeployStatus.DIVERGED, 1, 0),
    ],
)
def test_a_cancel_counts_as_not_succeeded_and_as_cancelled(
    capsys: pytest.CaptureFixture[str], status: DeployStatus, failed: int, cancelled: int
) -> None:
    deploy = Deploy(
        deploy_id="d-1",
        app="shop",
        environment="production",
        sha="a" * 40,
        requested_by="ann",
        requested_via="api",
        created_at="2024-05-01T12:00:00.000Z",
        status=status,
    )
    DeployMetricsPublisher().deploy_finished(deploy, 12.5)
    (doc,) = emf_documents(capsys.readouterr().out)
    assert (value(doc, "DeployFailed"), value(doc, "DeployCancelled")) == (failed, cancelled)
    assert value(doc, "DeployFinished") == 1
    assert value(doc, "DeployDiverged") == (1 if status is DeployStatus.DIVERGED else 0)
