"""Cancel of a running deploy: the step in flight is cancelled on its hosts (never a rollback),
poll routes a cancelled step to ``cancelled`` or to the rollback, and the record says so."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.errors import UnavailableError
from chalicelib.domain.model import Deploy, DeployStatus, HostStatus, Phase, Requester
from chalicelib.domain.rollout import RolloutPlan
from chalicelib.services.clock import iso

from .fakes import FakeHostCommands
from .test_rollout_service import OLD_SHA, SHA, World, cursor_of, make_world

BOB = Requester("bob", "api")


@pytest.fixture
def world() -> World:
    w = make_world()
    w.lifecycle.commands = w.commands  # as bootstrap wires it: cancel reaches SSM
    return w


def plan(world: World) -> RolloutPlan:
    return RolloutPlan.from_json(world.event["plan"])


def cancel(world: World, by: Requester = BOB) -> Deploy:
    return world.lifecycle.cancel(world.deploy_id, by)


def cancels_in_audit(world: World) -> list[dict[str, str]]:
    return [e for e in world.env().audit if e["action"] == "cancel"]


def test_cancel_stops_the_step_in_flight_and_it_ends_cancelled(world: World) -> None:
    wave = world.dispatch(cursor_of(world, "migrate"))
    world.clock.advance(3)
    asked = cancel(world)

    assert (asked.status, asked.cancel_requested_by) == (DeployStatus.RUNNING, "bob")
    assert world.commands.cancels == wave["command_ids"]
    assert asked.phases["migrate"]["cancel_requested_at"] == iso(world.clock.now)
    world.clock.advance(1)
    assert world.poll(wave)["state"] == "cancelled"

    deploy = world.deploy()
    step = deploy.phases["migrate"]
    assert (step["status"], step["cancelled_by"]) == ("cancelled", "bob")
    assert deploy.error is None  # a cancel is not a failure
    rows = [r for r in world.results.for_deploy(world.deploy_id) if r.step == wave["cursor"]]
    assert rows and all(r.status is HostStatus.CANCELLED for r in rows)
    world.finish("cancelled")
    assert world.deploy().status is DeployStatus.CANCELLED
    assert (world.env().lock_deploy_id, world.env().current_sha) == (None, OLD_SHA)


def test_cancel_of_a_switch_in_flight_rolls_every_host_back_and_ends_cancelled(
    world: World,
) -> None:
    cursor = cursor_of(world, "switch", batch=2)
    wave = world.dispatch(cursor)
    some = world.steps[cursor]["hosts"][0]
    world.commands.answer(wave["command_ids"][0], some)  # one host switched before the cancel
    cancel(world)
    assert world.poll(wave) == {"state": "rollback", "next": plan(world).rollback_cursor, "bake": 0}
    assert world.results.row(world.deploy_id, some, cursor).status is HostStatus.SUCCEEDED

    rollback = world.dispatch(plan(world).rollback_cursor)
    assert world.commands.cancels == wave["command_ids"]  # the rollback was not cancelled
    world.commands.answer_all(rollback["command_ids"])
    assert world.poll(rollback)["state"] == "done"
    world.finish("succeeded")
    deploy = world.deploy()
    assert deploy.status is DeployStatus.CANCELLED
    assert deploy.phases["rollback"]["status"] == "succeeded"


def test_a_cancel_never_cancels_a_rollback(world: World) -> None:
    rollback = world.dispatch(plan(world).rollback_cursor)
    asked = cancel(world)
    assert asked.phase is Phase.ROLLING_BACK
    assert world.commands.cancels == []
    assert world.poll(rollback)["state"] == "running"  # nor does poll's backstop
    assert world.commands.cancels == []
    world.commands.answer_all(rollback["command_ids"])
    assert world.poll(rollback)["state"] == "done"


def test_poll_cancels_a_step_sent_while_the_cancel_was_recorded(world: World) -> None:
    wave = world.dispatch(0)

    def asked_without_seeing_the_step(d: Deploy) -> None:
        d.cancel_requested_by = "bob"

    world.deploys.mutate(world.deploy_id, asked_without_seeing_the_step)
    assert world.commands.cancels == []
    assert world.poll(wave)["state"] == "running"
    assert world.commands.cancels == wave["command_ids"]
    assert world.poll(wave)["state"] == "cancelled"


def test_a_second_cancel_changes_nothing_and_is_audited_once(world: World) -> None:
    wave = world.dispatch(0)
    first = cancel(world)
    again = cancel(world, Requester("carol", "api"))
    assert again.cancel_requested_by == "bob"
    assert (
        again.phases["stage"]["cancel_requested_at"] == first.phases["stage"]["cancel_requested_at"]
    )
    assert [(e["by"], e["deploy_id"]) for e in cancels_in_audit(world)] == [
        ("bob", world.deploy_id)
    ]
    assert set(world.commands.cancels) == set(wave["command_ids"])  # asking SSM twice is harmless


def test_cancel_between_steps_sends_no_cancel_command(world: World) -> None:
    wave = world.dispatch(0)
    world.answer_ok(wave)
    assert world.poll(wave)["state"] == "next"
    cancel(world)
    assert world.commands.cancels == []  # nothing in flight; dispatch refuses the next step
    assert len(cancels_in_audit(world)) == 1


def test_a_host_that_really_failed_is_not_hidden_by_the_cancel(world: World) -> None:
    wave = world.dispatch(0)
    (command_id,) = wave["command_ids"]
    broken = world.steps[0]["hosts"][1]
    world.commands.answer(command_id, broken, HostStatus.FAILED, exit_code=4)
    cancel(world)
    assert world.poll(wave)["state"] == "failed"
    error: Any = world.deploy().error
    assert (error["host"], error["hosts"]) == (broken, [broken])


def test_a_cancelled_host_without_a_cancel_request_still_fails_the_step(world: World) -> None:
    wave = world.dispatch(0)
    world.commands.answer_all(wave["command_ids"], status=HostStatus.CANCELLED)
    assert world.poll(wave)["state"] == "failed"


class BrokenCancel(FakeHostCommands):
    def cancel(self, command_id: str) -> None:
        raise UnavailableError("SSM is down")


def test_a_cancel_command_error_leaves_the_cancel_recorded_for_poll_to_retry() -> None:
    world = make_world()
    broken = BrokenCancel()
    world.lifecycle.commands = broken
    world.dispatch(0)
    asked = cancel(world)
    assert asked.cancel_requested_by == "bob" and asked.status is DeployStatus.RUNNING


def test_a_cancelled_contract_migration_ends_cancelled_with_the_new_release_live(
    world: World,
) -> None:
    wave = world.dispatch(cursor_of(world, "post_migrate"))
    cancel(world)
    assert world.commands.cancels == wave["command_ids"]
    assert world.poll(wave)["state"] == "cancelled"  # every host runs SHA: nothing to roll back
    world.finish("cancelled")
    assert world.deploy().status is DeployStatus.CANCELLED
    assert (world.env().current_sha, world.env().lock_deploy_id) == (SHA, None)
