"""The Slack webhook secret of ``[apps.<name>.notify]`` is readable by exactly the functions
that report deploys (those that launch or end one), and by nothing wider."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib.domain.errors import ConfigError
from chalicelib.domain.pipeline import NotifyConfig, PipelineConfig, ScmConfig
from infra import iam, template

from .test_policy import DEMO, REGION, allowed, arn, function_policies, violations

NOTIFIERS = {"APIHandler", "RolloutFinish", "Reconcile"}  # launch, expire, finish, recover


def notify_pipeline(slack: str) -> PipelineConfig:
    shop = DEMO.apps["shop"]
    app = replace(
        shop,
        scm=ScmConfig("github", "https://api.github.com", "/roadie/scm/shop"),
        notify=NotifyConfig(scm_status=True, slack_webhook=slack),
    )
    return PipelineConfig({"shop": app})


@pytest.mark.parametrize(
    ("slack", "action", "resource"),
    [
        ("/roadie/dev/slack-webhook", "ssm:GetParameter", "parameter/roadie/dev/slack-webhook"),
        ("secretsmanager:chat/slack", "secretsmanager:GetSecretValue", "secret:chat/slack-AbCdEf"),
    ],
)
def test_only_the_reporting_functions_read_the_slack_webhook(
    slack: str, action: str, resource: str
) -> None:
    merged = template.build_merge_template("dev", notify_pipeline(slack))
    policies: dict[str, list[dict[str, Any]]] = function_policies(merged)
    service = action.split(":", maxsplit=1)[0]
    target = arn(service, resource)
    for function, statements in policies.items():
        assert allowed(statements, action, target) is (function in NOTIFIERS), function
        assert violations(statements) == [], function
    api = policies["APIHandler"]
    assert not allowed(api, action, arn(service, resource.replace("slack", "other")))
    if service == "ssm":  # and decrypted through SSM only
        context = {
            "kms:ViaService": f"ssm.{REGION}.amazonaws.com",
            "kms:EncryptionContext:PARAMETER_ARN": target,
        }
    else:
        context = {
            "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
            "kms:EncryptionContext:SecretARN": target,
        }
    assert allowed(api, "kms:Decrypt", arn("kms", "key/k"), context)


def test_the_demo_config_grants_no_slack_access() -> None:
    assert iam.notify_grants(DEMO) == iam.ScmGrants()


def test_a_slack_reference_the_policy_cannot_name_is_refused() -> None:
    config = notify_pipeline("secretsmanager:arn:aws:secretsmanager:x")
    with pytest.raises(ConfigError, match=r"apps\.shop\.notify\.slack_webhook"):
        template.build_merge_template("dev", config)
