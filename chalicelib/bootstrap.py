"""Composition root: builds clients, adapters and services lazily, never at import time."""

from __future__ import annotations

import os
from functools import cached_property, partial
from typing import Any

import boto3

from .adapters import dynamo
from .adapters.aws import Executions, Fleet, HostCommands
from .adapters.git import GitRefs
from .adapters.idempotency import Deliveries
from .adapters.metrics import DeployMetricsPublisher
from .adapters.secrets import ApiTokens, WebhookSecrets
from .config import PipelineConfig, Settings, load_pipeline
from .services.deploys import DeployService
from .services.reconcile import Reconciler
from .services.rollout import RolloutService
from .services.webhooks import WebhookService


class Container:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        dynamo.configure(
            {
                dynamo.DeployModel: self.settings.deploys_table,
                dynamo.HostResultModel: self.settings.hosts_table,
                dynamo.EnvironmentModel: self.settings.environments_table,
            },
            self.settings.region,
        )

    @cached_property
    def session(self) -> boto3.session.Session:
        return boto3.session.Session(region_name=self.settings.region)

    def client(self, service: str) -> Any:
        return self.session.client(service)  # type: ignore[call-overload]

    @cached_property
    def pipeline(self) -> PipelineConfig:
        return load_pipeline(self.settings.pipeline_config)

    @cached_property
    def deploy_repository(self) -> dynamo.DeployRepository:
        return dynamo.DeployRepository()

    @cached_property
    def host_results(self) -> dynamo.HostResultRepository:
        return dynamo.HostResultRepository()

    @cached_property
    def api_tokens(self) -> ApiTokens:
        return ApiTokens(self.settings.api_tokens_param, self.settings.parameters_max_age)

    @cached_property
    def deploys(self) -> DeployService:
        return DeployService(
            pipeline=self.pipeline,
            deploys=self.deploy_repository,
            host_results=self.host_results,
            fleet=Fleet(partial(self.client, "ec2")),
            executions=Executions(
                partial(self.client, "stepfunctions"), self.settings.state_machine_arn
            ),
            refs=GitRefs(),
            poll_seconds=self.settings.poll_seconds,
            lease_seconds=self.settings.lease_seconds,
        )

    @cached_property
    def reconciler(self) -> Reconciler:
        return Reconciler(
            pipeline=self.pipeline,
            deploys=self.deploy_repository,
            lifecycle=self.deploys,
            executions=self.deploys.executions,
            poll_seconds=self.settings.poll_seconds,
        )

    @cached_property
    def webhooks(self) -> WebhookService:
        s = self.settings
        return WebhookService(
            pipeline=self.pipeline,
            secrets=WebhookSecrets(
                {
                    "github": s.github_secret_param,
                    "gitlab": s.gitlab_secret_param,
                    "bitbucket": s.bitbucket_secret_param,
                },
                s.parameters_max_age,
            ),
            deliveries=Deliveries(s.idempotency_table, partial(self.client, "dynamodb")),
            deploys=self.deploys,
            allow_github_sha1=os.environ.get("ROADIE_GITHUB_ALLOW_SHA1") == "1",
        )

    @cached_property
    def rollout(self) -> RolloutService:
        mirror = (
            partial(self.client, "cloudwatch") if os.environ.get("ROADIE_MIRROR_METRICS") else None
        )
        return RolloutService(
            deploys=self.deploy_repository,
            host_results=self.host_results,
            commands=HostCommands(partial(self.client, "ssm"), self.settings.ssm_document),
            metrics=DeployMetricsPublisher(mirror),
            lifecycle=self.deploys,
        )


_container: Container | None = None


def container() -> Container:
    global _container
    if _container is None:
        _container = Container()
    return _container


def reset() -> None:
    """Forget every built object (tests and the local stack call this after changing env)."""
    global _container
    _container = None
