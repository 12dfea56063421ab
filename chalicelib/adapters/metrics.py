"""CloudWatch metrics through Powertools (EMF); locally mirrored with PutMetricData.

Dimensions are a small fixed set (app, environment); never a SHA or a host id. In AWS the
functions only print EMF (their roles have no cloudwatch:PutMetricData); the mirror is the
local stack's.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from ..domain.model import Deploy, DeployStatus
from .aws import ClientFactory, LazyClient

NAMESPACE = "Roadie"
# The metric names, here once: the dashboard and the alarms (infra/) graph these.
FINISHED = "DeployFinished"
SUCCEEDED = "DeploySucceeded"
FAILED = "DeployFailed"
CANCELLED = "DeployCancelled"
DIVERGED = "DeployDiverged"  # a deploy ended with hosts on different releases
DURATION = "DeployDuration"
LOCK_AGE = "LockAgeSeconds"
DEPLOY_METRICS = (FINISHED, SUCCEEDED, FAILED, CANCELLED, DIVERGED, DURATION)


class DeployMetricsPublisher:
    def __init__(self, cloudwatch_client_factory: ClientFactory | None = None) -> None:
        self._mirror = LazyClient(cloudwatch_client_factory) if cloudwatch_client_factory else None

    def deploy_finished(self, deploy: Deploy, duration_seconds: float | None) -> None:
        values: list[tuple[str, float, str]] = [
            (FINISHED, 1, MetricUnit.Count.value),
            (SUCCEEDED, 1 if deploy.status is DeployStatus.SUCCEEDED else 0, "Count"),
            (FAILED, 0 if deploy.status is DeployStatus.SUCCEEDED else 1, "Count"),
            # a cancel is an operator's choice, not a fault: the alarm on failed deploys
            # subtracts it from DeployFailed (which the dashboard keeps counting as not-succeeded)
            (CANCELLED, 1 if deploy.status is DeployStatus.CANCELLED else 0, "Count"),
            (DIVERGED, 1 if deploy.status is DeployStatus.DIVERGED else 0, "Count"),
        ]
        if duration_seconds is not None:
            values.append((DURATION, duration_seconds, MetricUnit.Seconds.value))
        metadata = {"deploy_id": deploy.deploy_id, "status": deploy.status.value}
        self._publish(deploy.app, deploy.environment, values, metadata)

    def lock_age(self, app: str, environment: str, seconds: float) -> None:
        """How long the deploy holding the environment's lock has held it (the reconciler
        reports it every run; an alarm fires when it outlives every phase timeout)."""
        self._publish(app, environment, [(LOCK_AGE, seconds, MetricUnit.Seconds.value)], {})

    def _publish(
        self,
        app: str,
        environment: str,
        values: list[tuple[str, float, str]],
        metadata: dict[str, str],
    ) -> None:
        metrics = EphemeralMetrics(namespace=NAMESPACE, service="roadie")
        metrics.add_dimension("app", app)
        metrics.add_dimension("environment", environment)
        for name, value, unit in values:
            metrics.add_metric(name=name, unit=unit, value=value)
        for key, text in metadata.items():
            metrics.add_metadata(key, text)
        metrics.flush_metrics()
        if self._mirror is not None:
            dims = [  # the same dimensions Powertools gives the EMF metrics in AWS
                {"Name": "service", "Value": "roadie"},
                {"Name": "app", "Value": app},
                {"Name": "environment", "Value": environment},
            ]
            self._mirror().put_metric_data(
                Namespace=NAMESPACE,
                MetricData=[
                    {"MetricName": n, "Value": v, "Unit": u, "Dimensions": dims}
                    for n, v, u in values
                ],
            )
