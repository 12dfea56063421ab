"""Settings: names and ARNs of the resources Roadie uses, read once from the environment the
template gives each function (the only place Roadie reads its environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BUNDLED_CONFIG = Path(__file__).parent / "pipeline.toml"


@dataclass(frozen=True)
class Settings:
    """Names and ARNs of the resources Roadie uses; read from the environment once."""

    region: str
    deploys_table: str
    hosts_table: str
    environments_table: str
    idempotency_table: str
    audit_table: str
    state_machine_arn: str
    ssm_document: str
    api_tokens_param: str
    github_secret_param: str
    gitlab_secret_param: str
    bitbucket_secret_param: str
    pipeline_config: Path
    poll_seconds: int
    parameters_max_age: int
    lease_seconds: int
    allow_github_sha1: bool = False
    # hosts' SSM command output goes to "<prefix>/<app>" in CloudWatch Logs (domain/hostlog.py)
    host_log_group_prefix: str = "/roadie/hosts"
    # Local stack only: moto has no EMF ingestion, so its Lambda runtime asks for a mirror.
    mirror_metrics: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        prefix = env.get("ROADIE_RESOURCE_PREFIX", "roadie")
        return cls(
            region=region,
            deploys_table=env.get("ROADIE_DEPLOYS_TABLE", f"{prefix}-deploys"),
            hosts_table=env.get("ROADIE_HOSTS_TABLE", f"{prefix}-deploy-hosts"),
            environments_table=env.get("ROADIE_ENVIRONMENTS_TABLE", f"{prefix}-environments"),
            idempotency_table=env.get("ROADIE_IDEMPOTENCY_TABLE", f"{prefix}-idempotency"),
            audit_table=env.get("ROADIE_AUDIT_TABLE", f"{prefix}-audit"),
            state_machine_arn=env.get("ROADIE_STATE_MACHINE_ARN", ""),
            ssm_document=env.get("ROADIE_SSM_DOCUMENT", "Roadie-Deploy"),
            api_tokens_param=env.get("ROADIE_API_TOKENS_PARAM", f"/{prefix}/api-tokens"),
            github_secret_param=env.get("ROADIE_GITHUB_SECRET_PARAM", f"/{prefix}/webhooks/github"),
            gitlab_secret_param=env.get("ROADIE_GITLAB_SECRET_PARAM", f"/{prefix}/webhooks/gitlab"),
            bitbucket_secret_param=env.get(
                "ROADIE_BITBUCKET_SECRET_PARAM", f"/{prefix}/webhooks/bitbucket"
            ),
            pipeline_config=_pipeline_config_path(env),
            poll_seconds=int(env.get("ROADIE_POLL_SECONDS", "5")),
            parameters_max_age=int(env.get("ROADIE_PARAMETERS_MAX_AGE", "60")),
            lease_seconds=int(env.get("ROADIE_LEASE_SECONDS", "3600")),
            allow_github_sha1=env.get("ROADIE_GITHUB_ALLOW_SHA1") == "1",
            host_log_group_prefix=env.get("ROADIE_HOST_LOG_GROUP_PREFIX", f"/{prefix}/hosts"),
            mirror_metrics=env.get("ROADIE_MIRROR_METRICS") == "1",
        )


def _pipeline_config_path(env: Mapping[str, str]) -> Path:
    """``ROADIE_CONFIG`` when given; else the config the package bundles, in the function's
    task root (Lambda's ``LAMBDA_TASK_ROOT``; the source tree when run from it)."""
    if env.get("ROADIE_CONFIG"):
        return Path(env["ROADIE_CONFIG"])
    task_root = env.get("LAMBDA_TASK_ROOT")
    if task_root:
        return Path(task_root) / BUNDLED_CONFIG.relative_to(BUNDLED_CONFIG.parents[1])
    return BUNDLED_CONFIG
