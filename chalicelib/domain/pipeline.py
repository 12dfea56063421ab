"""The pipeline as configured: apps, their environments and sources (value objects).

Parsed and validated from TOML by ``chalicelib.config``; used by services and adapters alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import NotFoundError
from .rollout import RolloutPolicy


@dataclass(frozen=True)
class Source:
    kind: str  # "git" or "s3"
    url: str


@dataclass(frozen=True)
class ScmConfig:
    """Where an app's refs resolve to SHAs without a git binary: an SCM's REST API."""

    provider: str  # "github", "gitlab" or "bitbucket"
    api_url: str  # no trailing slash, e.g. https://api.github.com
    token: str | None = None  # "/ssm/parameter/name" or "secretsmanager:<secret id>"; None: public


@dataclass(frozen=True)
class NotifyConfig:
    """Where an app's deploys are reported (``[apps.<name>.notify]``): ``scm_status`` puts a
    push- or CI-triggered deploy on its commit through the app's ``scm`` (a GitHub Deployment
    with statuses, a GitLab or Bitbucket commit status); ``slack_webhook`` names the secret
    holding a Slack incoming webhook URL, told when any deploy ends."""

    scm_status: bool = False
    slack_webhook: str | None = None  # "/ssm/parameter/name" or "secretsmanager:<secret id>"
    # the link on each status: "{deploy_id}" is replaced; "" links the execution's console page
    log_url: str = ""
    environment_urls: dict[str, str] = field(default_factory=dict)  # environment -> its URL

    @property
    def enabled(self) -> bool:
        return self.scm_status or self.slack_webhook is not None


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    branch: str
    host_tags: dict[str, str]
    policy: RolloutPolicy
    trigger: str = "push"
    tag_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppConfig:
    name: str
    repository: str
    source: Source
    deploy_root: str
    commands: dict[str, str]
    environments: dict[str, EnvironmentConfig] = field(default_factory=dict)
    keep_releases: int = 5
    scm: ScmConfig | None = None
    notify: NotifyConfig = field(default_factory=NotifyConfig)


@dataclass(frozen=True)
class PipelineConfig:
    apps: dict[str, AppConfig]

    def app(self, name: str) -> AppConfig:
        try:
            return self.apps[name]
        except KeyError:
            raise NotFoundError(f"unknown app {name!r}") from None

    def environment(self, app: str, environment: str) -> tuple[AppConfig, EnvironmentConfig]:
        app_config = self.app(app)
        try:
            return app_config, app_config.environments[environment]
        except KeyError:
            raise NotFoundError(f"app {app!r} has no environment {environment!r}") from None
