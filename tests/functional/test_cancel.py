"""Cancel aborts, on the embedded stack: the step in flight is cancelled on its hosts (SSM
CancelCommand, the host agent stops the script), switched hosts go back, and the deploy ends
``cancelled`` within seconds, not at the step's timeout.

Uses the bundled config (migrate times out after 900 s, switch after 120 s), so only a cancel
that really stops the hung step can end these deploys in time. The module deploys v1 once; each
test starts and ends with v1 live on every host and production free.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.stack import LocalStack

from .conftest import ROOT, auth, wait_for
from .test_faults import environment, fault, migrations, ordered, post, releases

GOAL_SECONDS = 10  # the goal: cancelled within 10 s of the call, with a hung step


@pytest.fixture(scope="module")
def v1_deploy(stack: LocalStack) -> dict[str, Any]:
    """The bundled config, v1 deployed (once per module): its finished record."""
    from chalice.test import Client

    import app as chalice_app

    stack.reset()
    with Client(chalice_app.app, stage_name="dev", project_dir=str(ROOT)) as client:
        finished = wait_for(client, deploy(client, stack, stack.sources.v1))
    assert finished["status"] == "succeeded"
    return finished


@pytest.fixture
def on_v1(stack: LocalStack, v1_deploy: dict[str, Any], client: Any) -> Iterator[LocalStack]:
    """v1 live and production free, before and after the test; its fault switches removed."""
    assert releases(stack) == {stack.sources.v1}
    assert environment(client)["running_deploy_id"] is None
    yield stack
    for switch in stack.options.hosts_dir.glob("*/fault.*"):
        switch.unlink()


def record(client: Any, deploy_id: str) -> dict[str, Any]:
    response = client.http.get(f"/deploys/{deploy_id}", headers=auth())
    assert response.status_code == 200, response.body
    return dict(response.json_body)


def wait_until(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def deploy(client: Any, stack: LocalStack, sha: str) -> str:
    response = post(client, {"app": "shop", "environment": "production", "sha": sha})
    assert response.status_code == 202, response.body
    return str(response.json_body["deploy_id"])


def cancel_and_time(client: Any, deploy_id: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    response = client.http.post(f"/deploys/{deploy_id}/cancel", headers=auth())
    assert response.status_code == 202, response.body
    assert response.json_body["status"] == "running"
    ended = wait_for(client, deploy_id, timeout=60)
    return ended, time.monotonic() - started


def host_step(detail: dict[str, Any], instance_id: str, command: str) -> dict[str, Any]:
    (host,) = (h for h in detail["hosts"] if h["instance_id"] == instance_id)
    (step,) = (s for s in host["steps"] if s["command"] == command)
    return dict(step)


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is inside ``directory`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if cwd == directory or directory in cwd.parents:
            found.append(int(entry.name))
    return found


def test_cancel_of_a_hung_migration_ends_cancelled_in_seconds_and_switches_nothing(
    client: Any, on_v1: LocalStack
) -> None:
    stack = on_v1
    v1, v2 = stack.sources.v1, stack.sources.v2
    before = migrations(stack)
    migration_host = ordered(stack)[0]
    fault(stack, migration_host, "migrate", "hang")  # hangs for the bundled 900 s timeout
    deploy_id = deploy(client, stack, v2)
    assert record(client, deploy_id)["plan"]["migration_host"] == migration_host
    wait_until(lambda: record(client, deploy_id)["phase"] == "migrating")

    ended, seconds = cancel_and_time(client, deploy_id)
    print(f"\ncancel of a hung migration: ended {ended['status']} {seconds:.2f} s after the call")
    assert ended["status"] == "cancelled", ended.get("error")
    assert seconds < GOAL_SECONDS
    assert ended["cancel_requested_by"] == "local-admin"
    migrate = ended["phases"]["migrate"]
    assert (migrate["status"], migrate["cancelled_by"]) == ("cancelled", "local-admin")
    assert "cancel_requested_at" in migrate
    assert not any(label.startswith("batch") for label in ended["phases"])
    assert "rollback" not in ended["phases"]
    assert ended["error"] is None

    # the hang really ended: the agent wrote the invocation's end, as cancelled
    step = host_step(ended, migration_host, "migrate")
    assert step["status"] == "cancelled" and step["finished_at"]
    ssm = boto3.client("ssm")
    invocation = ssm.get_command_invocation(CommandId=step["command_id"], InstanceId=migration_host)
    assert invocation["Status"] == "Cancelled" and invocation["ExecutionEndDateTime"]
    assert "hung until cancelled" in invocation["StandardErrorContent"]

    # production is free, on v1 everywhere, and v2's migration never ran
    assert releases(stack) == {v1}
    env = environment(client)
    assert (env["running_deploy_id"], env["current_sha"]) == (None, v1)
    assert migrations(stack) == before
    audit = [e for e in env["audit"] if e["action"] == "cancel"]
    assert [(e["by"], e["deploy_id"]) for e in audit] == [("local-admin", deploy_id)]
    again = client.http.post(f"/deploys/{deploy_id}/cancel", headers=auth())
    assert again.status_code == 409


def test_cancel_stops_a_running_script_and_kills_its_process_group(
    on_v1: LocalStack, v1_deploy: dict[str, Any]
) -> None:
    """The adapter's CancelCommand through moto to the host agent: a real script (here a
    migrate command that sleeps) is killed with everything it started."""
    from chalicelib import bootstrap
    from chalicelib.domain.model import HostStatus

    stack = on_v1
    execution = boto3.client("stepfunctions").describe_execution(
        executionArn=v1_deploy["links"]["execution"]
    )
    parameters = {
        **json.loads(execution["input"])["parameters"],
        "phase": "migrate",
        "migrateCommand": "sleep 900",
        "executionTimeout": "900",
    }
    host = ordered(stack)[0]
    host_dir = stack.options.hosts_dir / host
    commands = bootstrap.container().host_commands
    command_id = commands.run([host], parameters, timeout_seconds=900, comment="cancel test")
    wait_until(lambda: len(processes_in(host_dir)) >= 2, timeout=30)  # bash and its sleep
    assert not commands.is_finished(command_id)

    commands.cancel(command_id)
    wait_until(lambda: commands.is_finished(command_id), timeout=GOAL_SECONDS)
    invocation = commands.invocation(command_id, host)
    assert invocation.status is HostStatus.CANCELLED
    assert "execution cancelled" in invocation.stderr
    assert processes_in(host_dir) == []
    commands.cancel(command_id)  # a finished command: harmless, and it stays as it was
    assert commands.invocation(command_id, host).status is HostStatus.CANCELLED


def test_cancel_after_the_first_batch_switched_rolls_it_back_and_ends_cancelled(
    client: Any, on_v1: LocalStack
) -> None:
    stack = on_v1
    v1, v2 = stack.sources.v1, stack.sources.v2
    hung = ordered(stack)[2]  # the first host of batch 2
    fault(stack, hung, "switch", "hang")  # hangs for the bundled 120 s timeout
    deploy_id = deploy(client, stack, v2)
    wait_until(lambda: "batch-2.switch" in record(client, deploy_id)["phases"])
    assert len(releases(stack)) == 2  # batch 1 runs v2, the rest v1

    ended, seconds = cancel_and_time(client, deploy_id)
    print(f"\ncancel after the first switch: ended {ended['status']} {seconds:.2f} s after it")
    assert ended["status"] == "cancelled", ended.get("error")
    assert seconds < GOAL_SECONDS
    phases = ended["phases"]
    assert phases["batch-1.verify"]["status"] == "succeeded"
    assert phases["batch-2.switch"]["status"] == "cancelled"
    assert phases["rollback"]["status"] == "succeeded"
    assert "cancelled_by" not in phases["rollback"]
    assert host_step(ended, hung, "switch")["status"] == "cancelled"
    assert releases(stack) == {v1}
    env = environment(client)
    assert (env["running_deploy_id"], env["current_sha"]) == (None, v1)
