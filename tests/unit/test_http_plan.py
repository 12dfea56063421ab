"""The API shows a deploy's recorded plan (``RolloutPlan.to_json``) as the summary it always
has: hosts, migration host, batch size, switch batches, steps with host counts."""

from __future__ import annotations

from chalicelib.domain.model import Deploy, Host, HostCommand, HostResult, HostStatus
from chalicelib.domain.rollout import BatchSize, RolloutPolicy, plan_rollout
from chalicelib.http import deploy_detail, plan_view

HOSTS = [Host(f"i-{n:04d}", f"web-{n}") for n in range(3)]
PLAN = plan_rollout(HOSTS, RolloutPolicy(batch_size=BatchSize(2)))
SUMMARY = {
    "hosts": ["i-0000", "i-0001", "i-0002"],
    "migration_host": "i-0000",
    "batch_size": 2,
    "batches": [["i-0000", "i-0001"], ["i-0002"]],
    "steps": [
        {"command": "stage", "batch": 0, "hosts": 3},
        {"command": "migrate", "batch": 0, "hosts": 1},
        {"command": "switch", "batch": 1, "hosts": 2},
        {"command": "verify", "batch": 1, "hosts": 2},
        {"command": "switch", "batch": 2, "hosts": 1},
        {"command": "verify", "batch": 2, "hosts": 1},
    ],
}
NAMES = {"i-0000": "web-0", "i-0001": "web-1", "i-0002": "web-2"}


def deploy(plan: dict[str, object]) -> Deploy:
    return Deploy(
        deploy_id="d-20240501t120000-0000abcd",
        app="shop",
        environment="production",
        sha="a" * 40,
        requested_by="ann",
        requested_via="api",
        created_at="2024-05-01T12:00:00.000Z",
        plan=plan,
    )


def test_the_recorded_plan_shows_as_the_summary_with_the_host_names() -> None:
    assert plan_view(PLAN.to_json()) == (SUMMARY, NAMES)


def test_a_summary_recorded_by_the_first_version_shows_as_it_was() -> None:
    assert plan_view({**SUMMARY, "host_names": NAMES}) == (SUMMARY, NAMES)
    assert plan_view({}) == ({}, {})


def test_the_detail_names_each_host_and_its_batch() -> None:
    result = HostResult("d-1", "i-0002", 0, HostCommand.STAGE, HostStatus.SUCCEEDED, exit_code=0)
    detail = deploy_detail(deploy(PLAN.to_json()), [result])
    assert detail["plan"] == SUMMARY
    hosts = {h["instance_id"]: h for h in detail["hosts"]}
    assert [(h["name"], h["batch"]) for h in hosts.values()] == [
        ("web-0", 1),
        ("web-1", 1),
        ("web-2", 2),
    ]
    assert hosts["i-0002"]["status"] == "stage:succeeded"
    assert hosts["i-0000"]["status"] == "pending"
