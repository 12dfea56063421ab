"""The template keeps each app's host output: one log group per app of the bundled config, with
the stack's retention, named as every function's settings and the stack's outputs say."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.config import BUNDLED_CONFIG, Settings, load_pipeline
from chalicelib.domain.hostlog import host_log_group
from infra import template

DEMO = load_pipeline(BUNDLED_CONFIG, {"ROADIE_STATE_DIR": "/srv/roadie-state"})


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    return template.build_merge_template("prod", DEMO)


def test_one_log_group_per_app_with_the_stacks_retention(merged: dict[str, Any]) -> None:
    groups = {
        r["Properties"]["LogGroupName"]: r
        for r in merged["Resources"].values()
        if r.get("Type") == "AWS::Logs::LogGroup" and "/hosts/" in r["Properties"]["LogGroupName"]
    }
    assert set(groups) == {f"/roadie/prod/hosts/{app}" for app in DEMO.apps} != set()
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == template.LOG_RETENTION_DAYS
        assert group["DeletionPolicy"] == "Delete"


def test_every_function_reads_and_sends_to_those_groups(merged: dict[str, Any]) -> None:
    prefix = merged["Outputs"]["HostOutputLogGroupPrefix"]["Value"]
    assert prefix == "/roadie/prod/hosts"
    for logical_id in template.all_functions():
        env = merged["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        settings = Settings.from_env({k: v for k, v in env.items() if isinstance(v, str)})
        assert settings.host_log_group_prefix == prefix
        assert host_log_group(settings.host_log_group_prefix, "shop") in {
            r["Properties"]["LogGroupName"]
            for r in merged["Resources"].values()
            if r.get("Type") == "AWS::Logs::LogGroup"
        }


def test_log_group_ids_are_distinct_for_dashed_app_names() -> None:
    assert template.host_log_group_id("web-api") == "HostOutputWebApiLogGroup"
    assert template.host_log_group_id("shop") == "HostOutputShopLogGroup"
