"""The rollout's steps (dispatch, poll, finish) against in-memory fakes and a hand-driven clock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from chalicelib.config import parse_pipeline
from chalicelib.domain.contract import DispatchTask, FinishTask, PollTask
from chalicelib.domain.environment import EnvironmentState
from chalicelib.domain.errors import NotFoundError
from chalicelib.domain.model import (
    Deploy,
    DeployStatus,
    Host,
    HostCommand,
    HostStatus,
    Phase,
    Requester,
)
from chalicelib.services.clock import iso, parse_iso
from chalicelib.services.deploys import DeployService
from chalicelib.services.errors import LeaseLostError
from chalicelib.services.rollout import DELIVERY_GRACE_SECONDS, RolloutService, step_label

from .fakes import (
    FakeDeployStore,
    FakeExecutions,
    FakeFleet,
    FakeHostCommands,
    FakeHostResultStore,
    FakeMetrics,
    FakeRefs,
    FakeStaleStateError,
    FixedClock,
)

SHA = "a" * 40
OLD_SHA = "b" * 40
OTHER_SHA = "c" * 40
NEXT_SHA = "d" * 40
LEASE = 3600
TIMEOUTS = {"stage": 600, "migrate": 900, "switch": 120, "verify": 120, "post_migrate": 900}
PIPELINE = """
[apps.shop]
repository = "roadie-demo/shop"
source = {{ kind = "git", url = "/x/sources/shop" }}
commands = {{ build = "bin/build", migrate = "bin/migrate", post_migrate = "bin/post_migrate", \
health = "bin/health", restart = "bin/restart" }}

[apps.shop.environments.production]
branch = "main"
hosts = {{ tags = {{ App = "shop", Environment = "production" }} }}
batch_size = {batch}
timeouts = {{ stage = 600, migrate = 900, switch = 120, verify = 120, post_migrate = 900 }}
"""
PARAMETERS = {
    "app": "shop",
    "sha": SHA,
    "previousSha": OLD_SHA,
    "sourceKind": "git",
    "sourceUrl": "/x/sources/shop",
    "deployRoot": "/srv/roadie",
    "buildCommand": "bin/build",
    "migrateCommand": "bin/migrate",
    "postMigrateCommand": "bin/post_migrate",
    "healthCommand": "bin/health",
    "restartCommand": "bin/restart",
    "keepReleases": "5",
}
REQUESTER = Requester("local-admin", "api")


def fleet(n: int) -> list[Host]:
    return [Host(f"i-{i:04d}", f"web-{i:04d}", "us-east-1a") for i in range(n)]


@dataclass
class World:
    clock: FixedClock
    deploys: FakeDeployStore
    results: FakeHostResultStore
    commands: FakeHostCommands
    metrics: FakeMetrics
    executions: FakeExecutions
    lifecycle: DeployService
    service: RolloutService
    deploy_id: str
    event: dict[str, Any]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.event["plan"]["steps"]

    def deploy(self, deploy_id: str | None = None) -> Deploy:
        return self.deploys.get(deploy_id or self.deploy_id)

    def dispatch(self, cursor: int) -> dict[str, Any]:
        task = DispatchTask.from_json({**self.event, "cursor": cursor})
        return self.service.dispatch_step(task).to_json()

    def poll(self, wave: dict[str, Any]) -> dict[str, Any]:
        return self.service.poll_step(PollTask.from_json({**self.event, "wave": wave})).to_json()

    def finish(self, outcome: str, **extra: Any) -> dict[str, Any]:
        task = FinishTask.from_json({"deploy_id": self.deploy_id, "outcome": outcome, **extra})
        return self.service.finish_step(task).to_json()

    def answer_ok(self, wave: dict[str, Any]) -> None:
        """Every host of the wave exits 0; verify hosts print the expected revision."""
        is_verify = self.steps[wave["cursor"]]["command"] == "verify"
        stdout = f"roadie: checking\nREVISION={SHA}\nroadie: verified\n" if is_verify else "ok\n"
        self.commands.answer_all(wave["command_ids"], stdout=stdout)

    def env(self) -> EnvironmentState:
        return self.deploys.environment("shop", "production")

    def take_lock(self, deploy_id: str) -> None:
        """Someone else now holds the environment (our lease ran out and was taken)."""
        seen = self.env()
        expires = int(self.clock.epoch()) + LEASE
        self.deploys.write_environment(
            seen,
            replace(seen, lock_deploy_id=deploy_id, lock_sha=NEXT_SHA, lock_expires_at=expires),
        )


def make_world(hosts: int = 5, batch: int = 2) -> World:
    """A running deploy of SHA (live: OLD_SHA), requested through the real DeployService."""
    clock = FixedClock()
    deploys = FakeDeployStore()
    results = FakeHostResultStore()
    commands = FakeHostCommands()
    metrics = FakeMetrics()
    executions = FakeExecutions()
    lifecycle = DeployService.from_ports(
        pipeline=parse_pipeline(PIPELINE.format(batch=batch), {}),
        deploys=deploys,
        host_results=results,
        fleet=FakeFleet(fleet(hosts)),
        executions=executions,
        refs=FakeRefs({"main": SHA}),
        poll_seconds=5,
        lease_seconds=LEASE,
        clock=clock,
    )
    seen = deploys.environment("shop", "production")
    deploys.write_environment(seen, replace(seen, current_sha=OLD_SHA, current_deploy_id="d-0"))
    deploy, created = lifecycle.request(
        app="shop", environment="production", requester=REQUESTER, sha=SHA
    )
    assert created and deploy.status is DeployStatus.RUNNING
    service = RolloutService(
        deploys,
        results,
        commands,
        metrics,
        lease=lifecycle.environments,
        handover=lifecycle.launcher,
        clock=clock,
        fleet=lifecycle.environments,
    )
    event = executions.started[deploy.deploy_id]
    return World(
        clock,
        deploys,
        results,
        commands,
        metrics,
        executions,
        lifecycle,
        service,
        deploy.deploy_id,
        event,
    )


@pytest.fixture
def world() -> World:
    return make_world()


def cursor_of(world: World, command: str, batch: int = 0) -> int:
    for index, step in enumerate(world.steps):
        if step["command"] == command and step["batch"] == batch:
            return index
    raise AssertionError(f"no {command} step for batch {batch}")


# --- dispatch ---------------------------------------------------------------------------------


def test_dispatch_sends_one_command_per_chunk_of_at_most_50_hosts() -> None:
    world = make_world(hosts=120, batch=10)
    wave = world.dispatch(0)
    sent = world.commands.sent
    assert [len(c.instance_ids) for c in sent] == [50, 50, 20]
    assert [h for c in sent for h in c.instance_ids] == world.steps[0]["hosts"]
    assert wave["command_ids"] == [c.command_id for c in sent]
    assert len(set(wave["command_ids"])) == 3
    for command in sent:
        assert command.parameters["phase"] == "stage"
        assert command.parameters["executionTimeout"] == "600"


def test_dispatch_adds_the_phase_and_its_execution_timeout_to_the_parameters(
    world: World,
) -> None:
    world.dispatch(cursor_of(world, "migrate"))
    (sent,) = world.commands.sent
    assert sent.parameters == {**PARAMETERS, "phase": "migrate", "executionTimeout": "900"}
    assert sent.timeout_seconds == 900
    assert sent.comment == f"roadie {world.deploy_id} migrate"
    assert world.event["parameters"] == PARAMETERS  # the execution input is not modified


def test_dispatch_of_a_switch_batch_labels_it_by_batch(world: World) -> None:
    cursor = cursor_of(world, "switch", batch=2)
    world.dispatch(cursor)
    (sent,) = world.commands.sent
    assert sent.parameters["phase"] == "switch"
    assert sent.parameters["executionTimeout"] == "120"
    assert sent.comment == f"roadie {world.deploy_id} batch-2.switch"
    assert sent.instance_ids == tuple(world.steps[cursor]["hosts"])
    assert world.deploy().phase is Phase.SWITCHING
    assert "batch-2.switch" in world.deploy().phases


def test_dispatch_records_a_pending_row_per_host(world: World) -> None:
    wave = world.dispatch(0)
    rows = list(world.results.for_deploy(world.deploy_id))
    assert sorted(r.instance_id for r in rows) == sorted(world.steps[0]["hosts"])
    for row in rows:
        assert row.status is HostStatus.PENDING
        assert row.command is HostCommand.STAGE
        assert (row.step, row.batch) == (0, 0)
        assert row.command_id == wave["command_ids"][0]
        assert row.started_at == iso(world.clock.now)
        assert row.exit_code is None


def test_dispatch_rows_name_the_chunk_command_that_reaches_each_host() -> None:
    world = make_world(hosts=60, batch=10)
    wave = world.dispatch(0)
    first, second = wave["command_ids"]
    by_host = {r.instance_id: r.command_id for r in world.results.for_deploy(world.deploy_id)}
    assert {by_host[h] for h in world.steps[0]["chunks"][0]} == {first}
    assert {by_host[h] for h in world.steps[0]["chunks"][1]} == {second}


def test_dispatch_records_the_phase_and_step_on_the_deploy(world: World) -> None:
    world.clock.advance(3)
    cursor = cursor_of(world, "stage")
    wave = world.dispatch(cursor)
    deploy = world.deploy()
    assert deploy.phase is Phase.STAGING
    assert deploy.step == cursor
    assert deploy.updated_at == iso(world.clock.now)
    assert deploy.phases["stage"] == {
        "command": "stage",
        "batch": 0,
        "hosts": 5,
        "status": "running",
        "started_at": iso(world.clock.now),
        "cursor": cursor,
        "command_ids": wave["command_ids"],
        "deadline": wave["deadline"],
    }
    assert deploy.status is DeployStatus.RUNNING


def test_dispatch_returns_cursor_commands_and_a_deadline_with_delivery_grace(
    world: World,
) -> None:
    wave = world.dispatch(0)
    assert wave["cursor"] == 0
    seconds = (parse_iso(wave["deadline"]) - world.clock.now).total_seconds()
    assert seconds == TIMEOUTS["stage"] + DELIVERY_GRACE_SECONDS


def test_dispatch_renews_the_lease(world: World) -> None:
    world.clock.advance(LEASE - 10)
    world.dispatch(0)
    assert world.env().lock_expires_at == int(world.clock.epoch()) + LEASE


def test_dispatch_after_losing_the_lease_sends_nothing(world: World) -> None:
    world.take_lock("d-other")
    with pytest.raises(LeaseLostError):
        world.dispatch(0)
    assert world.commands.sent == []
    assert world.env().lock_deploy_id == "d-other"


def test_dispatch_of_an_unknown_deploy_raises_not_found(world: World) -> None:
    with pytest.raises(NotFoundError):
        task = DispatchTask.from_json({**world.event, "deploy_id": "d-missing", "cursor": 0})
        world.service.dispatch_step(task)
    assert world.commands.sent == []


def test_dispatch_retried_for_the_same_step_does_not_send_the_commands_again(
    world: World,
) -> None:
    cursor = cursor_of(world, "migrate")
    first = world.dispatch(cursor)
    again = world.dispatch(cursor)
    assert len(world.commands.sent) == 1
    assert again["command_ids"] == first["command_ids"]


# --- poll -------------------------------------------------------------------------------------


def test_poll_is_running_while_no_host_has_answered(world: World) -> None:
    wave = world.dispatch(0)
    world.clock.advance(5)
    assert world.poll(wave) == {"state": "running", "next": 0, "bake": 0}
    assert world.deploy().phases["stage"]["status"] == "running"


def test_poll_is_running_while_some_hosts_are_unfinished(world: World) -> None:
    wave = world.dispatch(0)
    (command_id,) = wave["command_ids"]
    hosts = world.steps[0]["hosts"]
    for host in hosts[:-1]:
        world.commands.answer(command_id, host)
    world.commands.answer(command_id, hosts[-1], HostStatus.PENDING)
    world.clock.advance(30)
    assert world.poll(wave)["state"] == "running"
    rows = list(world.results.for_deploy(world.deploy_id))
    assert all(r.status is HostStatus.PENDING for r in rows)


def test_poll_is_still_running_exactly_at_the_deadline(world: World) -> None:
    wave = world.dispatch(0)
    world.clock.now = parse_iso(wave["deadline"])
    assert world.poll(wave)["state"] == "running"


def test_poll_renews_the_lease_while_hosts_work(world: World) -> None:
    wave = world.dispatch(0)
    for _ in range(3):
        world.clock.advance(LEASE - 1)
        world.clock.now = min(world.clock.now, parse_iso(wave["deadline"]))
        world.poll(wave)
        assert world.env().lock_expires_at == int(world.clock.epoch()) + LEASE


def test_poll_after_losing_the_lease_raises(world: World) -> None:
    wave = world.dispatch(0)
    world.take_lock("d-other")
    with pytest.raises(LeaseLostError):
        world.poll(wave)


def test_poll_after_the_deadline_times_out_hosts_that_never_answered(world: World) -> None:
    wave = world.dispatch(0)
    (command_id,) = wave["command_ids"]
    hosts = world.steps[0]["hosts"]
    for host in hosts[:3]:
        world.commands.answer(command_id, host)
    world.clock.now = parse_iso(wave["deadline"])
    world.clock.advance(0.001)
    assert world.poll(wave) == {"state": "timed_out", "next": 0, "bake": 0}
    rows = {r.instance_id: r for r in world.results.for_deploy(world.deploy_id)}
    assert [rows[h].status for h in hosts] == [HostStatus.SUCCEEDED] * 3 + [
        HostStatus.TIMED_OUT
    ] * 2
    assert rows[hosts[3]].detail == "no answer before the phase timeout"
    assert rows[hosts[0]].detail == ""
    deploy = world.deploy()
    assert deploy.phases["stage"]["status"] == "timed_out"
    assert deploy.error is not None
    assert deploy.error["host"] == hosts[3]
    assert deploy.error["hosts"] == hosts[3:]
    assert deploy.error["message"] == "no answer before the phase timeout"
    assert deploy.status is DeployStatus.RUNNING  # finish decides the status


def test_a_host_that_ssm_reports_timed_out_times_the_step_out(world: World) -> None:
    wave = world.dispatch(0)
    (command_id,) = wave["command_ids"]
    world.commands.answer_all(wave["command_ids"])
    host = world.steps[0]["hosts"][1]
    world.commands.answer(command_id, host, HostStatus.TIMED_OUT, detail="ExecutionTimedOut")
    assert world.poll(wave)["state"] == "timed_out"
    assert world.deploy().error["message"] == "ExecutionTimedOut"  # type: ignore[index]


def test_verify_host_exiting_0_with_another_revision_fails_with_a_detail(world: World) -> None:
    cursor = cursor_of(world, "verify", batch=1)
    wave = world.dispatch(cursor)
    world.answer_ok(wave)
    (command_id,) = wave["command_ids"]
    liar = world.steps[cursor]["hosts"][1]
    world.commands.answer(command_id, liar, stdout=f"REVISION={OTHER_SHA}\n", exit_code=0)
    world.clock.advance(5)
    # a batch that switched and failed verification rolls every host back
    assert world.poll(wave) == {"state": "rollback", "next": len(world.steps), "bake": 0}
    row = world.results.row(world.deploy_id, liar, cursor)
    assert row.status is HostStatus.FAILED
    assert row.exit_code == 0
    assert row.detail == f"host did not report REVISION={SHA}"
    error = world.deploy().error
    assert error is not None
    assert error["host"] == liar
    assert error["hosts"] == [liar]
    assert error["phase"] == "verifying"
    assert error["step"] == "batch-1.verify"
    assert error["exit_code"] == 0
    assert error["message"] == f"host did not report REVISION={SHA}"


@pytest.mark.parametrize(
    "stdout",
    ["", f"XREVISION={SHA}\n", f"REVISION={SHA}0\n", f"revision={SHA}\n", f" REVISION={SHA}\n"],
)
def test_verify_needs_the_revision_as_a_whole_line(world: World, stdout: str) -> None:
    cursor = cursor_of(world, "verify", batch=1)
    wave = world.dispatch(cursor)
    world.commands.answer_all(wave["command_ids"], stdout=stdout)
    assert world.poll(wave)["state"] == "rollback"  # the batch switched, so it rolls back
    assert world.deploy().error["kind"] == "failed"  # type: ignore[index]


def test_verify_accepts_the_revision_line_among_other_output(world: World) -> None:
    cursor = cursor_of(world, "verify", batch=1)
    wave = world.dispatch(cursor)
    world.commands.answer_all(
        wave["command_ids"], stdout=f"roadie: health\r\nREVISION={SHA}\r\nok\r\n"
    )
    assert world.poll(wave)["state"] == "next"


def test_verify_passes_when_health_output_pushes_the_revision_line_out_of_the_tail(
    world: World,
) -> None:
    cursor = cursor_of(world, "verify", batch=1)
    wave = world.dispatch(cursor)
    chatty = f"REVISION={SHA}\n" + "health: GET /up 200 OK\n" * 200
    world.commands.answer_all(wave["command_ids"], stdout=chatty)
    assert world.poll(wave)["state"] == "next"


def test_revision_is_only_checked_by_verify(world: World) -> None:
    cursor = cursor_of(world, "switch", batch=1)
    wave = world.dispatch(cursor)
    world.commands.answer_all(wave["command_ids"], stdout="switched\n")
    assert world.poll(wave)["state"] == "next"


def test_a_failed_host_records_the_error_evidence(world: World) -> None:
    wave = world.dispatch(0)
    (command_id,) = wave["command_ids"]
    world.commands.answer_all(wave["command_ids"])
    hosts = world.steps[0]["hosts"]
    world.commands.answer(
        command_id,
        hosts[2],
        HostStatus.FAILED,
        exit_code=4,
        stdout="roadie: build: bin/build\n",
        stderr="x" * 1500 + "roadie: error: build failed (exit 1): bin/build\n",
    )
    world.commands.answer(command_id, hosts[4], HostStatus.FAILED, exit_code=3)
    world.clock.advance(42)
    assert world.poll(wave) == {"state": "failed", "next": 0, "bake": 0}
    error = world.deploy().error
    assert error is not None
    assert error["phase"] == "staging"
    assert error["step"] == "stage"
    assert error["host"] == hosts[2]
    assert error["hosts"] == [hosts[2], hosts[4]]
    assert error["exit_code"] == 4
    assert len(error["stderr_tail"]) == 1000
    assert error["stderr_tail"].endswith("build failed (exit 1): bin/build\n")
    assert error["stdout_tail"] == "roadie: build: bin/build\n"
    assert error["message"] == "exit code 4"
    row = world.results.row(world.deploy_id, hosts[4], 0)
    assert (row.status, row.exit_code, row.detail) == (HostStatus.FAILED, 3, "exit code 3")
    phase = world.deploy().phases["stage"]
    assert phase["status"] == "failed"
    assert phase["finished_at"] == iso(world.clock.now)
    assert phase["duration_s"] == 42


def test_a_failed_host_keeps_what_ssm_said_as_the_detail(world: World) -> None:
    wave = world.dispatch(0)
    (command_id,) = wave["command_ids"]
    world.commands.answer_all(wave["command_ids"])
    host = world.steps[0]["hosts"][0]
    world.commands.answer(command_id, host, HostStatus.FAILED, detail="Undeliverable")
    world.poll(wave)
    assert world.results.row(world.deploy_id, host, 0).detail == "Undeliverable"
    assert world.deploy().error["message"] == "Undeliverable"  # type: ignore[index]


def test_a_cancelled_host_fails_the_step(world: World) -> None:
    wave = world.dispatch(0)
    world.commands.answer_all(wave["command_ids"], status=HostStatus.CANCELLED)
    assert world.poll(wave)["state"] == "failed"


def test_ok_on_a_middle_step_returns_next_with_the_cursor_plus_one(world: World) -> None:
    cursor = cursor_of(world, "switch", batch=1)
    wave = world.dispatch(cursor)
    world.answer_ok(wave)
    world.clock.advance(7.5)
    assert world.poll(wave) == {"state": "next", "next": cursor + 1, "bake": 0}
    deploy = world.deploy()
    assert deploy.error is None
    assert deploy.phases["batch-1.switch"]["status"] == "succeeded"
    assert deploy.phases["batch-1.switch"]["duration_s"] == 7.5
    rows = [r for r in world.results.for_deploy(world.deploy_id) if r.step == cursor]
    assert rows and all(r.status is HostStatus.SUCCEEDED and r.exit_code == 0 for r in rows)
    assert all(r.batch == 1 and r.command is HostCommand.SWITCH for r in rows)


def test_ok_on_the_last_step_returns_done(world: World) -> None:
    last = len(world.steps) - 1
    assert world.steps[last]["command"] == "post_migrate"
    wave = world.dispatch(last)
    world.answer_ok(wave)
    assert world.poll(wave) == {"state": "done", "next": last + 1, "bake": 0}


def test_poll_finishing_before_the_deadline_need_not_wait_for_it(world: World) -> None:
    wave = world.dispatch(0)
    world.answer_ok(wave)
    assert world.poll(wave)["state"] == "next"


def test_poll_after_the_deadline_with_every_host_done_is_judged_on_results(
    world: World,
) -> None:
    wave = world.dispatch(0)
    world.answer_ok(wave)
    world.clock.advance(10_000)
    assert world.poll(wave)["state"] == "next"


def test_poll_retried_after_an_answer_overwrites_the_host_rows(world: World) -> None:
    wave = world.dispatch(0)
    world.answer_ok(wave)
    first = world.poll(wave)
    second = world.poll(wave)
    assert first == second == {"state": "next", "next": 1, "bake": 0}
    assert len(list(world.results.for_deploy(world.deploy_id))) == 5


def test_a_whole_rollout_runs_every_step_once_and_succeeds(world: World) -> None:
    cursor, labels = 0, []
    while True:
        wave = world.dispatch(cursor)
        labels.append(step_label(world.steps[cursor]))
        world.clock.advance(5)
        assert world.poll(wave)["state"] == "running"
        world.answer_ok(wave)
        world.clock.advance(5)
        result = world.poll(wave)
        if result["state"] != "next":
            break
        cursor = result["next"]
    assert result == {"state": "done", "next": len(world.steps), "bake": 0}
    assert labels == [
        "stage",
        "migrate",
        "batch-1.switch",
        "batch-1.verify",
        "batch-2.switch",
        "batch-2.verify",
        "batch-3.switch",
        "batch-3.verify",
        "post_migrate",
    ]
    assert len(world.commands.sent) == len(labels)
    assert world.finish("succeeded") == {"deploy_id": world.deploy_id, "status": "succeeded"}
    deploy = world.deploy()
    assert deploy.phase is Phase.DONE
    assert all(p["status"] == "succeeded" for p in deploy.phases.values())
    assert (world.env().current_sha, world.env().lock_deploy_id) == (SHA, None)


# --- finish -----------------------------------------------------------------------------------


def test_finish_succeeded_releases_the_lock_and_sets_the_current_sha(world: World) -> None:
    assert world.env().lock_deploy_id == world.deploy_id
    world.clock.advance(90)
    assert world.finish("succeeded") == {"deploy_id": world.deploy_id, "status": "succeeded"}
    deploy = world.deploy()
    assert deploy.status is DeployStatus.SUCCEEDED
    assert deploy.phase is Phase.DONE
    assert deploy.finished_at == deploy.updated_at == iso(world.clock.now)
    env = world.env()
    assert (env.lock_deploy_id, env.lock_sha, env.lock_expires_at) == (None, None, None)
    assert (env.current_sha, env.current_deploy_id) == (SHA, world.deploy_id)
    assert world.metrics.finished == [(world.deploy_id, "succeeded", 90.0)]


@pytest.mark.parametrize("outcome", ["failed", "timed_out", "errored"])
def test_finish_unsuccessful_releases_the_lock_but_keeps_the_current_sha(
    world: World, outcome: str
) -> None:
    world.dispatch(0)
    world.finish(outcome)
    deploy = world.deploy()
    assert deploy.status.value == outcome
    assert deploy.phase is Phase.STAGING  # where it stopped
    assert world.env().lock_deploy_id is None
    assert (world.env().current_sha, world.env().current_deploy_id) == (OLD_SHA, "d-0")
    assert world.metrics.finished[0][:2] == (world.deploy_id, outcome)


def test_finish_failed_in_post_migrate_records_the_new_live_release(world: World) -> None:
    # Every host switched before post_migrate ran, so the fleet is on SHA whatever happens.
    wave = world.dispatch(cursor_of(world, "post_migrate"))
    world.commands.answer_all(wave["command_ids"], status=HostStatus.FAILED, exit_code=7)
    assert world.poll(wave)["state"] == "failed"
    world.finish("failed")
    assert world.deploy().status is DeployStatus.FAILED
    assert world.env().current_sha == SHA


def test_finish_is_a_no_op_on_a_deploy_already_finished(world: World) -> None:
    world.finish("failed")
    before = world.deploy()
    writes = world.deploys.environment_writes
    world.clock.advance(60)
    assert world.finish("succeeded") == {"deploy_id": world.deploy_id, "status": "failed"}
    assert world.finish("failed") == {"deploy_id": world.deploy_id, "status": "failed"}
    after = world.deploy()
    assert after.status is DeployStatus.FAILED
    assert after.finished_at == before.finished_at
    assert world.deploys.environment_writes == writes
    assert len(world.metrics.finished) == 1
    assert world.env().current_sha == OLD_SHA


def test_finish_does_not_touch_an_environment_another_deploy_now_holds(world: World) -> None:
    world.take_lock("d-other")
    before = world.env()
    world.finish("succeeded")
    assert world.env() == before  # neither the lock nor the live release changed
    assert world.deploy().status is DeployStatus.SUCCEEDED


def test_finish_hands_the_lock_to_the_queued_deploy_and_starts_it(world: World) -> None:
    queued, created = world.lifecycle.request(
        app="shop", environment="production", requester=REQUESTER, sha=NEXT_SHA
    )
    assert created and queued.status is DeployStatus.QUEUED
    assert world.env().queued_deploy_id == queued.deploy_id
    world.clock.advance(1)
    world.finish("succeeded")
    env = world.env()
    assert (env.lock_deploy_id, env.lock_sha) == (queued.deploy_id, NEXT_SHA)
    assert env.queued_deploy_id is None
    assert world.deploy(queued.deploy_id).status is DeployStatus.RUNNING
    started = world.executions.started[queued.deploy_id]
    assert started["parameters"]["sha"] == NEXT_SHA
    assert started["parameters"]["previousSha"] == SHA


def test_finish_errored_records_the_cause(world: World) -> None:
    world.dispatch(0)
    cause = '{"errorMessage": "SSM SendCommand failed: throttled", "errorType": "AwsError"}'
    world.finish("errored", error={"Error": "AwsError", "Cause": cause})
    deploy = world.deploy()
    assert deploy.status is DeployStatus.ERRORED
    assert deploy.error == {
        "kind": "errored",
        "phase": "staging",
        "message": cause,
        "error": "AwsError",
    }


def test_finish_errored_keeps_only_the_end_of_a_long_cause(world: World) -> None:
    cause = "x" * 3000 + "the end"
    world.finish("errored", error={"Error": "States.TaskFailed", "Cause": cause})
    message = world.deploy().error["message"]  # type: ignore[index]
    assert len(message) == 1000 and message.endswith("the end")


def test_finish_errored_without_an_error_says_so(world: World) -> None:
    world.finish("errored")
    assert world.deploy().error == {
        "kind": "errored",
        "phase": "pending",
        "message": "rollout errored",
        "error": "",
    }


def test_finish_errored_keeps_a_host_failure_already_recorded(world: World) -> None:
    wave = world.dispatch(0)
    world.commands.answer_all(wave["command_ids"], status=HostStatus.FAILED, exit_code=2)
    world.poll(wave)
    recorded = world.deploy().error
    world.finish("errored", error={"Error": "Lambda.Unknown", "Cause": "boom"})
    error = world.deploy().error
    assert error is not None
    assert (error["kind"], error["message"]) == ("errored", "boom")
    assert error["earlier"] == recorded


def test_finish_of_an_unknown_outcome_is_rejected(world: World) -> None:
    with pytest.raises(ValueError, match="paused"):
        world.finish("paused")
    with pytest.raises(ValueError, match="not a rollout outcome"):
        world.finish("rolled_back")  # a status, but not one the state machine reports
    assert world.deploy().status is DeployStatus.RUNNING


def test_finish_retried_after_a_failed_release_still_releases_the_lock(world: World) -> None:
    world.deploys.write_errors.append(RuntimeError("DynamoDB throttled"))
    with pytest.raises(RuntimeError):
        world.finish("succeeded")
    world.finish("succeeded")  # Step Functions retries the task
    assert world.env().lock_deploy_id is None
    assert world.env().current_sha == SHA


# --- the fakes behave like the DynamoDB adapter -----------------------------------------------


def test_fake_mutate_is_a_read_modify_write_on_copies(world: World) -> None:
    seen: list[Deploy] = []
    version = world.deploy().version

    def change(d: Deploy) -> None:
        seen.append(d)
        d.reason = "edited"

    result = world.deploys.mutate(world.deploy_id, change)
    result.reason = "not stored"
    seen[0].reason = "not stored either"
    assert world.deploy().reason == "edited"
    assert world.deploy().version == (version or 0) + 1


def test_fake_mutate_retries_on_a_concurrent_write(world: World) -> None:
    calls: list[str] = []

    def concurrent() -> None:
        world.deploys.mutate(world.deploy_id, lambda d: setattr(d, "ref", "main"))

    def change(d: Deploy) -> None:
        calls.append(d.ref)
        d.reason = "r"

    world.deploys.between_read_and_write = concurrent
    world.deploys.mutate(world.deploy_id, change)
    deploy = world.deploy()
    assert calls == ["", "main"]  # the change was applied again to the fresh record
    assert (deploy.ref, deploy.reason) == ("main", "r")


def test_fake_mutate_writes_nothing_when_the_change_raises(world: World) -> None:
    def bad(d: Deploy) -> None:
        d.reason = "half done"
        raise ValueError("no")

    with pytest.raises(ValueError):
        world.deploys.mutate(world.deploy_id, bad)
    assert world.deploy().reason == ""


def test_fake_environment_write_is_conditional_on_the_version_seen(world: World) -> None:
    stale = world.env()
    world.take_lock("d-other")
    with pytest.raises(FakeStaleStateError):
        world.deploys.write_environment(stale, replace(stale, lock_deploy_id=None))
    assert world.env().lock_deploy_id == "d-other"


def test_fake_environment_write_refuses_an_existing_new_deploy(world: World) -> None:
    seen = world.env()
    with pytest.raises(FakeStaleStateError):
        world.deploys.write_environment(seen, seen, new_deploy=world.deploy())


def test_fake_runner_refuses_more_than_50_hosts() -> None:
    runner = FakeHostCommands()
    with pytest.raises(ValueError):
        runner.run([f"i-{i}" for i in range(51)], {}, timeout_seconds=1, comment="")
    with pytest.raises(ValueError):
        runner.run([], {}, timeout_seconds=1, comment="")
