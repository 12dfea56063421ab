"""A rollout that leaves hosts on different releases: recorded from the hosts' own reports,
ended ``diverged``, kept locked to new deploys, and converged by the reconciler's retried
rollback (with backoff); a failed contract migration says the new release is live everywhere.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.contract import DispatchTask, FinishTask, PollTask
from chalicelib.domain.fleet import FleetState
from chalicelib.domain.model import DeployStatus, HostStatus, Phase, Requester
from chalicelib.services.clock import iso
from chalicelib.services.reconcile import Reconciler

from .test_rollout_service import OLD_SHA, SHA, World, cursor_of, make_world

NEXT_SHA = "e" * 40


def says(sha: str) -> str:
    return f"roadie: did the phase\nCURRENT_REVISION={sha}\n"


def run(world: World, cursor: int, answers: dict[str, tuple[HostStatus, str]]) -> dict[str, Any]:
    """Dispatch the step at ``cursor``; each host answers ``(status, release it reports)``
    (default: succeeded on what it ran before); returns the poll's route."""
    wave = world.dispatch(cursor)
    step = world.steps[cursor] if cursor < len(world.steps) else world.event["plan"]["rollback"]
    for command_id in wave["command_ids"]:
        for host in world.commands.command(command_id).instance_ids:
            status, sha = answers.get(host, (HostStatus.SUCCEEDED, ""))
            stdout = says(sha) if sha else ""
            if step["command"] == "verify" and status is HostStatus.SUCCEEDED:
                stdout += f"REVISION={SHA}\n"
            code = 0 if status is HostStatus.SUCCEEDED else 11
            world.commands.answer(command_id, host, status, exit_code=code, stdout=stdout)
    world.clock.advance(5)
    return world.poll(wave)


def diverge(world: World) -> None:
    """Stage everywhere (all on OLD_SHA), batch 1 switches, batch 2's switch fails on its
    first host, and the rollback fails on host 0, which stays on SHA."""
    hosts = world.event["plan"]["hosts"]
    assert run(world, 0, {h: (HostStatus.SUCCEEDED, OLD_SHA) for h in hosts})["state"] == "next"
    assert run(world, cursor_of(world, "migrate"), {})["state"] == "next"
    batch1 = world.steps[cursor_of(world, "switch", 1)]["hosts"]
    ok = {h: (HostStatus.SUCCEEDED, SHA) for h in batch1}
    assert run(world, cursor_of(world, "switch", 1), ok)["state"] == "next"
    assert run(world, cursor_of(world, "verify", 1), ok)["state"] == "next"
    broken = world.steps[cursor_of(world, "switch", 2)]["hosts"][0]
    bad = {broken: (HostStatus.FAILED, OLD_SHA)}
    assert run(world, cursor_of(world, "switch", 2), bad)["state"] == "rollback"
    back = {h: (HostStatus.SUCCEEDED, OLD_SHA) for h in hosts}
    back[hosts[0]] = (HostStatus.FAILED, SHA)
    assert run(world, len(world.steps), back)["state"] == "failed"
    world.finish("failed")


@pytest.fixture
def world() -> World:
    return make_world()


def reconciler(world: World) -> Reconciler:
    return Reconciler(
        pipeline=world.lifecycle.pipeline,
        deploys=world.deploys,
        handover=world.lifecycle.launcher,
        executions=world.executions,
        poll_seconds=5,
        clock=world.clock,
    )


def test_each_step_records_the_release_each_host_reports(world: World) -> None:
    hosts = world.event["plan"]["hosts"]
    run(world, 0, {h: (HostStatus.SUCCEEDED, OLD_SHA) for h in hosts[1:]})
    fleet = world.env().fleet
    assert [(r.instance_id, r.sha, r.name) for r in fleet] == [
        (h, OLD_SHA, f"web-{h[2:]}") for h in hosts[1:]
    ]  # a host that said nothing is not guessed
    assert {r.deploy_id for r in fleet} == {world.deploy_id}
    assert all(r.reported_at for r in fleet)
    assert world.env().fleet_state is FleetState.CONVERGED


def test_a_rollback_that_leaves_a_host_on_the_new_release_ends_diverged(world: World) -> None:
    diverge(world)
    deploy, env = world.deploy(), world.env()
    hosts = world.event["plan"]["hosts"]
    assert deploy.status is DeployStatus.DIVERGED and deploy.phase is Phase.ROLLING_BACK
    assert deploy.error is not None and deploy.error["kind"] == "diverged"
    assert [h["instance_id"] for h in deploy.error["diverged_hosts"]] == [hosts[0]]  # type: ignore[union-attr]
    assert deploy.error["host"] == hosts[0]
    cause = deploy.error["cause"]
    assert isinstance(cause, dict) and cause["host"] == world.steps[4]["hosts"][0]
    assert cause["rollback"]["host"] == hosts[0]
    assert deploy.fleet["state"] == "mixed" and deploy.fleet["attempts"] == 0
    assert env.fleet_state is FleetState.MIXED and env.diverged_deploy_id == world.deploy_id
    assert env.lock_deploy_id is None and env.current_sha == OLD_SHA
    assert env.audit[-1]["action"] == "diverged"
    assert world.metrics.finished[-1][:2] == (world.deploy_id, "diverged")


def test_a_failed_rollback_with_every_host_back_on_the_release_ends_failed(world: World) -> None:
    hosts = world.event["plan"]["hosts"]
    run(world, 0, {h: (HostStatus.SUCCEEDED, OLD_SHA) for h in hosts})
    cursor = cursor_of(world, "switch", 1)
    bad = {world.steps[cursor]["hosts"][0]: (HostStatus.FAILED, OLD_SHA)}
    assert run(world, cursor, bad)["state"] == "rollback"
    back = {h: (HostStatus.SUCCEEDED, OLD_SHA) for h in hosts}
    back[hosts[4]] = (HostStatus.FAILED, OLD_SHA)  # its restart failed, but it runs OLD_SHA
    assert run(world, len(world.steps), back)["state"] == "failed"
    world.finish("failed")
    assert world.deploy().status is DeployStatus.FAILED
    assert world.env().diverged_deploy_id is None


def test_a_failed_contract_migration_says_the_release_is_live_and_names_the_migration(
    world: World,
) -> None:
    wave = world.dispatch(cursor_of(world, "post_migrate"))
    (command_id,) = wave["command_ids"]
    (host,) = world.commands.command(command_id).instance_ids
    world.commands.answer(
        command_id,
        host,
        HostStatus.FAILED,
        exit_code=7,
        stdout=f"roadie: post_migrate: bin/post_migrate\n{says(SHA)}",
        stderr="migrate: failed: 003_drop_legacy_sku.sql: no such column: legacy_sku\n"
        "roadie: error: post_migrate failed (exit 1): bin/post_migrate\n",
    )
    assert world.poll(wave)["state"] == "failed"
    world.finish("failed")
    deploy = world.deploy()
    assert deploy.status is DeployStatus.FAILED and deploy.error is not None
    assert deploy.error["live_on_every_host"] is True
    assert deploy.error["migration"] == "003_drop_legacy_sku.sql"
    message = str(deploy.error["message"])
    assert message.startswith(f"the new release {SHA[:12]} is live on every host")
    assert message.endswith(
        "003_drop_legacy_sku.sql failed: "
        "migrate: failed: 003_drop_legacy_sku.sql: no such column: legacy_sku"
    )
    assert world.env().current_sha == SHA


def test_a_mixed_fleet_queues_new_deploys_but_a_forced_one_runs(world: World) -> None:
    diverge(world)
    asker = Requester("ann", "api")
    queued, _ = world.lifecycle.request(
        app="shop", environment="production", requester=asker, sha=NEXT_SHA
    )
    assert queued.status is DeployStatus.QUEUED
    forced, _ = world.lifecycle.request(
        app="shop", environment="production", requester=asker, sha="f" * 40, force=True
    )
    assert forced.status is DeployStatus.RUNNING
    assert world.env().lock_deploy_id == forced.deploy_id


def test_the_reconciler_retries_the_rollback_with_backoff_until_the_fleet_converges(
    world: World,
) -> None:
    diverge(world)
    queued, _ = world.lifecycle.request(
        app="shop", environment="production", requester=Requester("ann", "api"), sha=NEXT_SHA
    )
    hosts = world.event["plan"]["hosts"]
    fixer = reconciler(world)

    def attempt(n: int, host0: tuple[HostStatus, str]) -> None:
        (action,) = fixer.run()
        assert action == {
            "deploy_id": world.deploy_id,
            "action": f"converging (attempt {n}): rolling every host back to {OLD_SHA[:12]}",
        }
        assert world.env().lock_deploy_id == world.deploy_id  # the attempt holds the lock
        assert fixer.run() == []  # its execution is running
        payload = world.executions.started[f"{world.deploy_id}-converge-{n}"]
        wave = world.service.dispatch_step(DispatchTask.from_json({**payload, "cursor": 0}))
        (command_id,) = wave.command_ids
        assert world.commands.command(command_id).parameters["previousSha"] == OLD_SHA
        for host in hosts:
            status, sha = host0 if host == hosts[0] else (HostStatus.SUCCEEDED, OLD_SHA)
            world.commands.answer(command_id, host, status, exit_code=0, stdout=says(sha))
        route = world.service.poll_step(PollTask.from_json({**payload, "wave": wave.to_json()}))
        outcome = "succeeded" if route.state.value == "done" else "failed"
        task = FinishTask.from_json({"deploy_id": world.deploy_id, "outcome": outcome})
        world.service.finish_step(task)
        assert world.deploy().status is DeployStatus.DIVERGED  # the record stays true
        assert f"converge-{n}.rollback" in world.deploy().phases

    first_try = world.clock.now
    attempt(1, (HostStatus.FAILED, SHA))
    note = world.deploy().fleet
    assert (note["attempts"], note["state"], note["last_outcome"]) == (1, "mixed", "failed")
    assert [h["instance_id"] for h in note["off_release"]] == [hosts[0]]  # type: ignore[union-attr]
    # backoff: 5 s poll interval * 2**attempts
    assert note["next_try_at"] == iso(first_try + timedelta(seconds=10))
    assert world.env().diverged_deploy_id == world.deploy_id
    assert world.deploys.get(queued.deploy_id).status is DeployStatus.QUEUED
    world.clock.advance(9)
    assert fixer.run() == []  # not due yet
    world.clock.advance(1)
    attempt(2, (HostStatus.SUCCEEDED, OLD_SHA))
    assert world.deploy().fleet["next_try_at"] is None  # converged: nothing more to try

    env, deploy = world.env(), world.deploy()
    assert env.diverged_deploy_id is None and env.fleet_state is FleetState.CONVERGED
    assert env.audit[-1]["action"] == "converged" and env.audit[-1]["sha"] == OLD_SHA
    assert deploy.fleet["state"] == "converged" and deploy.fleet["converged_on"] == OLD_SHA
    assert deploy.fleet["attempts"] == 2 and deploy.fleet["off_release"] == []
    # the lock went to the deploy that waited
    assert env.lock_deploy_id == queued.deploy_id
    assert world.deploys.get(queued.deploy_id).status is DeployStatus.RUNNING
