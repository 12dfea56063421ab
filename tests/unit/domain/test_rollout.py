"""Rollout planning: order, migration host, batches, command size limits."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import PlanningError
from chalicelib.domain.model import Host, HostCommand
from chalicelib.domain.rollout import (
    MAX_TARGETS_PER_COMMAND,
    BatchSize,
    RolloutPlan,
    RolloutPolicy,
    plan_rollout,
)


def fleet(n: int) -> list[Host]:
    return [Host(f"i-{i:04d}", f"web-{i:04d}", "us-east-1a") for i in range(n)]


def commands(plan) -> list[HostCommand]:
    return [s.command for s in plan.steps]


def test_runs_migration_once_before_any_switch() -> None:
    plan = plan_rollout(fleet(5), RolloutPolicy(batch_size=BatchSize(2)))
    cmds = commands(plan)
    assert cmds.count(HostCommand.MIGRATE) == 1
    assert cmds.index(HostCommand.MIGRATE) < cmds.index(HostCommand.SWITCH)
    assert cmds[0] is HostCommand.STAGE
    migrate = plan.steps[cmds.index(HostCommand.MIGRATE)]
    assert migrate.hosts == (plan.migration_host.instance_id,)


def test_stages_every_host_before_migrating() -> None:
    plan = plan_rollout(fleet(7), RolloutPolicy(batch_size=BatchSize(3)))
    assert set(plan.steps[0].hosts) == {h.instance_id for h in fleet(7)}


def test_switches_in_batches_each_followed_by_verify() -> None:
    plan = plan_rollout(fleet(5), RolloutPolicy(batch_size=BatchSize(2)))
    waves = [s for s in plan.steps if s.command in (HostCommand.SWITCH, HostCommand.VERIFY)]
    assert [(s.command, len(s.hosts), s.batch) for s in waves] == [
        (HostCommand.SWITCH, 2, 1),
        (HostCommand.VERIFY, 2, 1),
        (HostCommand.SWITCH, 2, 2),
        (HostCommand.VERIFY, 2, 2),
        (HostCommand.SWITCH, 1, 3),
        (HostCommand.VERIFY, 1, 3),
    ]
    for switch, verify in zip(waves[::2], waves[1::2], strict=True):
        assert switch.hosts == verify.hosts
    switched = [h for batch in plan.switch_batches for h in batch]
    assert sorted(switched) == sorted(h.instance_id for h in fleet(5))


def test_migration_host_is_in_the_first_batch() -> None:
    hosts = fleet(6)
    plan = plan_rollout(hosts, RolloutPolicy(batch_size=BatchSize(2), migration_host="web-0004"))
    assert plan.migration_host == hosts[4]
    assert plan.switch_batches[0][0] == "i-0004"


def test_unknown_migration_host_is_a_planning_error() -> None:
    with pytest.raises(PlanningError, match="not in the fleet"):
        plan_rollout(fleet(3), RolloutPolicy(migration_host="nope"))


def test_percent_batch_sizes_round_up_and_never_reach_zero() -> None:
    assert BatchSize.parse("25%").hosts_per_batch(10) == 3
    assert BatchSize.parse("1%").hosts_per_batch(5) == 1
    assert BatchSize.parse("100%").hosts_per_batch(7) == 7
    assert BatchSize.parse(10).hosts_per_batch(3) == 3


@pytest.mark.parametrize("raw", ["0", "-1", "0%", "101%", "two", "", True])
def test_rejects_bad_batch_sizes(raw: object) -> None:
    with pytest.raises(PlanningError):
        BatchSize.parse(raw)  # type: ignore[arg-type]


def test_no_command_targets_more_than_fifty_hosts() -> None:
    plan = plan_rollout(fleet(237), RolloutPolicy(batch_size=BatchSize.parse("50%")))
    for step in plan.steps:
        assert all(1 <= len(chunk) <= MAX_TARGETS_PER_COMMAND for chunk in step.chunks)
        assert tuple(h for chunk in step.chunks for h in chunk) == step.hosts
    assert len(plan.steps[0].chunks) == 5  # 237 hosts staged in 50+50+50+50+37


def test_order_is_deterministic_whatever_the_listing_order() -> None:
    hosts = fleet(9)
    a = plan_rollout(hosts, RolloutPolicy(batch_size=BatchSize(4)))
    b = plan_rollout(list(reversed(hosts)), RolloutPolicy(batch_size=BatchSize(4)))
    assert a == b
    assert a.to_json() == b.to_json()


def test_duplicate_hosts_are_deployed_once() -> None:
    hosts = fleet(3)
    plan = plan_rollout(hosts + hosts[:1], RolloutPolicy())
    assert len(plan.steps[0].hosts) == 3


def test_without_migration_commands_there_is_no_migration_step() -> None:
    plan = plan_rollout(fleet(3), RolloutPolicy(run_migrations=False))
    assert HostCommand.MIGRATE not in commands(plan)
    assert plan.migration_host is None


def test_post_migrations_run_once_after_every_host_switched() -> None:
    plan = plan_rollout(fleet(4), RolloutPolicy(batch_size=BatchSize(2), run_post_migrations=True))
    cmds = commands(plan)
    assert cmds[-1] is HostCommand.POST_MIGRATE
    assert cmds.count(HostCommand.POST_MIGRATE) == 1


def test_an_empty_fleet_cannot_be_planned() -> None:
    with pytest.raises(PlanningError, match="no hosts"):
        plan_rollout([], RolloutPolicy())


def test_plan_serialises_chunks_for_the_state_machine() -> None:
    data = plan_rollout(fleet(2), RolloutPolicy()).to_json()
    assert data["steps"][0] == {
        "command": "stage",
        "hosts": ["i-0000", "i-0001"],
        "chunks": [["i-0000", "i-0001"]],
        "timeout": 900,
        "batch": 0,
        "bake": 0,
    }
    assert data["rollback"]["command"] == "rollback"
    assert data["rollback"]["hosts"] == ["i-0000", "i-0001"]


def test_bakes_between_batches_but_not_after_the_last() -> None:
    plan = plan_rollout(fleet(5), RolloutPolicy(batch_size=BatchSize(2), bake_seconds=30))
    verifies = [s for s in plan.steps if s.command is HostCommand.VERIFY]
    assert [s.bake_seconds for s in verifies] == [30, 30, 0]


def test_rollback_covers_every_targeted_host_in_plan_order() -> None:
    plan = plan_rollout(fleet(7), RolloutPolicy(batch_size=BatchSize(3)))
    assert plan.rollback.command is HostCommand.ROLLBACK
    assert plan.rollback.hosts == plan.steps[0].hosts
    assert HostCommand.ROLLBACK not in commands(plan)


def test_plan_reads_back_from_its_json_with_the_host_names() -> None:
    hosts = [Host(f"i-{n:04d}", f"web-{n}") for n in range(5)]
    plan = plan_rollout(hosts, RolloutPolicy(batch_size=BatchSize(2), bake_seconds=30))
    data = plan.to_json()
    assert data["host_names"] == {h.instance_id: h.name for h in hosts}
    assert RolloutPlan.from_json(data) == plan
    assert RolloutPlan.from_json(plan.to_json(names=False)).hosts == tuple(
        Host(h.instance_id) for h in plan.hosts
    )
    assert plan.to_dict() == plan.to_json(names=False)


def test_steps_are_labelled_by_command_and_batch() -> None:
    plan = plan_rollout(fleet(4), RolloutPolicy(batch_size=BatchSize(2)))
    assert [s.label for s in plan.steps] == [
        "stage",
        "migrate",
        "batch-1.switch",
        "batch-1.verify",
        "batch-2.switch",
        "batch-2.verify",
    ]
    assert plan.rollback.label == "rollback"


def test_cursors_past_the_last_step_are_the_rollback() -> None:
    plan = plan_rollout(fleet(4), RolloutPolicy(batch_size=BatchSize(2)))
    assert plan.first_switch == 2
    assert plan.step_at(plan.rollback_cursor) is plan.rollback
    assert plan.step_at(0) is plan.steps[0]
    recovery = plan.rollback_only()
    assert (recovery.steps, recovery.rollback_cursor, recovery.first_switch) == ((), 0, 0)
    assert recovery.step_at(0) == plan.rollback
