"""CloudWatch metrics through Powertools (EMF); locally mirrored with PutMetricData.

Dimensions are a small fixed set (app, environment); never a SHA or a host id.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from ..domain.model import Deploy, DeployStatus
from .aws import ClientFactory, LazyClient

NAMESPACE = "Roadie"


class DeployMetricsPublisher:
    def __init__(self, cloudwatch_client_factory: ClientFactory | None = None) -> None:
        self._mirror = LazyClient(cloudwatch_client_factory) if cloudwatch_client_factory else None

    def deploy_finished(self, deploy: Deploy, duration_seconds: float | None) -> None:
        values: list[tuple[str, float, str]] = [
            ("DeployFinished", 1, MetricUnit.Count.value),
            ("DeploySucceeded", 1 if deploy.status is DeployStatus.SUCCEEDED else 0, "Count"),
            ("DeployFailed", 0 if deploy.status is DeployStatus.SUCCEEDED else 1, "Count"),
        ]
        if duration_seconds is not None:
            values.append(("DeployDuration", duration_seconds, MetricUnit.Seconds.value))
        metrics = EphemeralMetrics(namespace=NAMESPACE, service="roadie")
        metrics.add_dimension("app", deploy.app)
        metrics.add_dimension("environment", deploy.environment)
        for name, value, unit in values:
            metrics.add_metric(name=name, unit=unit, value=value)
        metrics.add_metadata("deploy_id", deploy.deploy_id)
        metrics.add_metadata("status", deploy.status.value)
        metrics.flush_metrics()
        if self._mirror is not None:
            dims = [  # the same dimensions Powertools gives the EMF metrics in AWS
                {"Name": "service", "Value": "roadie"},
                {"Name": "app", "Value": deploy.app},
                {"Name": "environment", "Value": deploy.environment},
            ]
            self._mirror().put_metric_data(
                Namespace=NAMESPACE,
                MetricData=[
                    {"MetricName": n, "Value": v, "Unit": u, "Dimensions": dims}
                    for n, v, u in values
                ],
            )
