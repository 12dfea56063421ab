"""Composition root: builds clients, adapters and services lazily, never at import time.

In Lambda one process runs one function, configured by its environment: ``container()``.
The local stack runs every function of the template in one process, each with the environment
its template gives it: it binds that function's container around each invocation
(``running(environ)``) and sets the API handler's as the default (``use_default``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import boto3

from .adapters import dynamo
from .adapters.aws import Executions, Fleet, HostCommands
from .adapters.hostlogs import CommandLogs
from .adapters.metrics import DeployMetricsPublisher
from .adapters.observability import invocation, request_scope
from .adapters.secrets import ApiTokens, WebhookSecrets
from .config import load_pipeline
from .domain.pipeline import PipelineConfig
from .services.audit import AuditQueries, ObservedDeploys, Observer
from .services.deploys import DeployService
from .services.environments import EnvironmentService
from .services.hostlog import HostLogService
from .services.launch import Launcher
from .services.reconcile import Reconciler
from .services.rollout import RolloutService
from .settings import Settings

if TYPE_CHECKING:
    from .services.notify import Notifier
    from .services.webhooks import WebhookService

__all__ = ["Container", "container", "invocation", "request_scope", "running"]

# Imported where first used, not here: a function only pays for what it runs (the rollout
# tasks never load the webhook parsers, Powertools idempotency or the SCM clients).


class Container:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()

    @cached_property
    def session(self) -> boto3.session.Session:
        return boto3.session.Session(region_name=self.settings.region)

    def client(self, service: str) -> Any:
        return self.session.client(service)  # type: ignore[call-overload]

    @cached_property
    def pipeline(self) -> PipelineConfig:
        return load_pipeline(self.settings.pipeline_config)

    @cached_property
    def deploy_repository(self) -> ObservedDeploys:
        """The deploy records, every status change logged and audited on its way through."""
        return ObservedDeploys(dynamo.DeployRepository(), self.observer)

    @cached_property
    def audit_trail(self) -> dynamo.AuditRepository:
        return dynamo.AuditRepository()

    @cached_property
    def observer(self) -> Observer:
        return Observer(self.audit_trail)

    @cached_property
    def audit(self) -> AuditQueries:
        return AuditQueries(self.pipeline, self.audit_trail)

    @cached_property
    def host_results(self) -> dynamo.HostResultRepository:
        return dynamo.HostResultRepository()

    @cached_property
    def api_tokens(self) -> ApiTokens:
        return ApiTokens(self.settings.api_tokens_param, self.settings.parameters_max_age)

    @cached_property
    def executions(self) -> Executions:
        return Executions(partial(self.client, "stepfunctions"), self.settings.state_machine_arn)

    @cached_property
    def environments(self) -> EnvironmentService:
        return EnvironmentService(self.deploy_repository, self.settings.lease_seconds)

    @cached_property
    def launcher(self) -> Launcher:
        return Launcher(
            pipeline=self.pipeline,
            deploys=self.deploy_repository,
            fleet=Fleet(partial(self.client, "ec2")),
            executions=self.executions,
            environments=self.environments,
            poll_seconds=self.settings.poll_seconds,
            notifier=self.notifier,
        )

    @cached_property
    def notifier(self) -> Notifier | None:
        """Reports deploys to their commits and chat; None when no app asks for it (so no
        function loads the HTTP adapter for nothing)."""
        if not any(app.notify.enabled for app in self.pipeline.apps.values()):
            return None
        from .adapters.notify import ProviderBoard
        from .adapters.secrets import ScmTokens
        from .services.notify import Notifier

        board = ProviderBoard(ScmTokens(self.settings.parameters_max_age))
        return Notifier(self.pipeline, self.deploy_repository, board, self.settings.region)

    @cached_property
    def deploys(self) -> DeployService:
        from .adapters.refs import Refs

        return DeployService(
            pipeline=self.pipeline,
            deploys=self.deploy_repository,
            host_results=self.host_results,
            refs=Refs.standard(
                s3_client=partial(self.client, "s3"),
                max_age=self.settings.parameters_max_age,
            ),
            environments=self.environments,
            launcher=self.launcher,
            commands=self.host_commands,
        )

    @cached_property
    def reconciler(self) -> Reconciler:
        return Reconciler(
            pipeline=self.pipeline,
            deploys=self.deploy_repository,
            handover=self.launcher,
            executions=self.executions,
            poll_seconds=self.settings.poll_seconds,
            metrics=self.metrics,
            notifier=self.notifier,
        )

    @cached_property
    def metrics(self) -> DeployMetricsPublisher:
        mirror = partial(self.client, "cloudwatch") if self.settings.mirror_metrics else None
        return DeployMetricsPublisher(mirror)

    @cached_property
    def webhooks(self) -> WebhookService:
        from .adapters.idempotency import Deliveries
        from .services.webhooks import WebhookService

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
            heads=dynamo.BranchHeadRepository(),
            allow_github_sha1=s.allow_github_sha1,
            observer=self.observer,
        )

    @cached_property
    def host_commands(self) -> HostCommands:
        return HostCommands(
            partial(self.client, "ssm"),
            self.settings.ssm_document,
            output_log_group_prefix=self.settings.host_log_group_prefix,
        )

    @cached_property
    def host_logs(self) -> HostLogService:
        return HostLogService(
            deploys=self.deploy_repository,
            host_results=self.host_results,
            logs=CommandLogs(partial(self.client, "logs")),
            log_group_prefix=self.settings.host_log_group_prefix,
        )

    @cached_property
    def rollout(self) -> RolloutService:
        return RolloutService(
            deploys=self.deploy_repository,
            host_results=self.host_results,
            commands=self.host_commands,
            metrics=self.metrics,
            lease=self.environments,
            handover=self.launcher,
            fleet=self.environments,
            notifier=self.notifier,
        )


_container: Container | None = None
_default_environ: Mapping[str, str] | None = None  # None: os.environ, as in Lambda
_bound: ContextVar[Container | None] = ContextVar("roadie_container", default=None)
_by_environ: dict[frozenset[tuple[str, str]], Container] = {}


def bind_tables(settings: Settings) -> None:
    """Point the PynamoDB models at the tables ``settings`` names (one table set per process:
    every function of a stack, the local stack's included, uses the same tables)."""
    dynamo.configure(
        {
            dynamo.DeployModel: settings.deploys_table,
            dynamo.HostResultModel: settings.hosts_table,
            dynamo.EnvironmentModel: settings.environments_table,
            # branch heads are items of the environments table (see dynamo.BranchHeadModel)
            dynamo.BranchHeadModel: settings.environments_table,
            dynamo.AuditModel: settings.audit_table,
        },
        settings.region,
    )


def _build(settings: Settings) -> Container:
    bind_tables(settings)
    return Container(settings)


def container() -> Container:
    """The container of the function running now (the process's own, outside the stack)."""
    bound = _bound.get()
    if bound is not None:
        return bound
    global _container
    if _container is None:
        _container = _build(Settings.from_env(_default_environ))
    return _container


def for_environment(environ: Mapping[str, str]) -> Container:
    """One container per distinct function environment (built once, reused)."""
    key = frozenset(environ.items())
    found = _by_environ.get(key)
    if found is None:
        found = _by_environ.setdefault(key, _build(Settings.from_env(environ)))
    return found


@contextmanager
def running(environ: Mapping[str, str]) -> Iterator[Container]:
    """Run the enclosed code as the function whose environment is ``environ``."""
    bound = for_environment(environ)
    token = _bound.set(bound)
    try:
        yield bound
    finally:
        _bound.reset(token)


def use_default(environ: Mapping[str, str] | None) -> None:
    """The environment ``container()`` uses outside ``running`` (None: ``os.environ``)."""
    global _default_environ
    _default_environ = dict(environ) if environ is not None else None
    reset()


def reset() -> None:
    """Forget every built object (tests and the local stack call this after changing env)."""
    global _container
    _container = None
    _by_environ.clear()
