"""The deploy record's DynamoDB mapping is derived from the two shapes, so they must match."""

from __future__ import annotations

from dataclasses import fields

from chalicelib.adapters.dynamo import DeployModel
from chalicelib.adapters.dynamo.deploys import _to_domain, _to_item
from chalicelib.domain.model import Deploy, DeployStatus, Phase


def test_every_field_of_the_record_has_an_attribute_of_the_same_name() -> None:
    assert {f.name for f in fields(Deploy)} <= set(DeployModel.get_attributes())


def test_a_record_survives_the_mapping_both_ways_without_dynamodb() -> None:
    deploy = Deploy(
        deploy_id="d-20261201t000000-0123abcd",
        app="shop",
        environment="production",
        sha="a" * 40,
        requested_by="alice",
        requested_via="api",
        created_at="2026-12-01T00:00:00Z",
        status=DeployStatus.RUNNING,
        phase=Phase.SWITCHING,
        step=3,
        step_count=9,
        plan={"steps": [{"command": "stage", "hosts": ["i-1"]}]},
        error={"phase": "switching", "exit_code": 1},
        trigger={"provider": "github"},
        force=True,
        version=4,
    )
    item = _to_item(deploy)
    assert (item.status, item.phase, item.env_key) == ("running", "switching", "shop#production")
    assert item.created_sort == "2026-12-01T00:00:00Z#d-20261201t000000-0123abcd"
    assert _to_domain(item) == deploy
