"""Fault injection on the embedded stack: after any single fault every host's `current` points
at the same release, the record tells the truth, and the environment's lock is released.

Uses tests/functional/pipeline-fast.toml (the bundled config with short timeouts and a bake
between batches); hosts are broken with the local stack's fault switches.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.ssm.models import SimpleSystemManagerBackend

from devstack.stack import LocalStack

from .conftest import auth, hosts, wait_for

FAST_CONFIG = str(Path(__file__).parent / "pipeline-fast.toml")


@pytest.fixture
def fast(stack: LocalStack) -> LocalStack:
    stack.reset(config=FAST_CONFIG)
    return stack


def post(client: Any, body: dict[str, Any]) -> Any:
    return client.http.post("/deploys", headers=auth(), body=json.dumps(body))


def releases(stack: LocalStack) -> set[str]:
    """The release each production host's `current` points at ("" for none)."""
    out = set()
    for host in hosts(stack):
        link = stack.options.hosts_dir / host["instance_id"] / "shop" / "current"
        out.add(Path(os.readlink(link)).name if link.is_symlink() else "")
    return out


def migrations(stack: LocalStack) -> dict[str, int]:
    db = stack.options.state_dir / "db" / "shop-production.sqlite3"
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute(
                "SELECT version, COUNT(*) FROM roadie_migration_log GROUP BY version"
            )
        except sqlite3.OperationalError:
            return {}
        return dict(rows.fetchall())


def environment(client: Any) -> dict[str, Any]:
    response = client.http.get("/environments/shop/production", headers=auth())
    assert response.status_code == 200
    return dict(response.json_body)


def ordered(stack: LocalStack) -> list[str]:
    """Production hosts in plan order (migration host first, then by name)."""
    return [h["instance_id"] for h in sorted(hosts(stack), key=lambda h: h["name"])]


def fault(stack: LocalStack, instance_id: str, phase: str, kind: str = "fail") -> Path:
    path = stack.options.hosts_dir / instance_id / f"fault.{phase}"
    path.write_text(kind + "\n")
    return path


def deploy_v1(client: Any, stack: LocalStack) -> None:
    response = post(client, {"app": "shop", "environment": "production", "sha": stack.sources.v1})
    assert wait_for(client, response.json_body["deploy_id"])["status"] == "succeeded"
    assert releases(stack) == {stack.sources.v1}


def assert_settled_on(client: Any, stack: LocalStack, sha: str) -> None:
    assert releases(stack) == {sha}
    # the record ends first and the finish hands the environment on in a second write: wait
    # (briefly) for that hand-over instead of reading between the two
    deadline = time.monotonic() + 10
    env = environment(client)
    while env["running_deploy_id"] is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        env = environment(client)
    assert env["running_deploy_id"] is None and env["queued_deploy_id"] is None
    assert env["current_sha"] == sha
    assert set(migrations(stack).values()) <= {1}


def test_a_host_failing_staging_switches_nothing_and_runs_no_migration(
    client: Any, fast: LocalStack
) -> None:
    deploy_v1(client, fast)
    before = migrations(fast)
    fault(fast, ordered(fast)[3], "stage")
    response = post(client, {"app": "shop", "environment": "production", "sha": fast.sources.v2})
    record = wait_for(client, response.json_body["deploy_id"])

    assert record["status"] == "failed"
    assert (record["phase"], record["error"]["phase"]) == ("staging", "staging")
    assert record["error"]["host"] == ordered(fast)[3]
    assert set(record["phases"]) == {"stage"}
    assert migrations(fast) == before  # v2's migration never ran
    assert_settled_on(client, fast, fast.sources.v1)


def test_a_failed_migration_switches_nothing(client: Any, fast: LocalStack) -> None:
    deploy_v1(client, fast)
    fault(fast, ordered(fast)[0], "migrate")
    response = post(client, {"app": "shop", "environment": "production", "sha": fast.sources.v2})
    record = wait_for(client, response.json_body["deploy_id"])
    assert record["status"] == "failed" and record["error"]["phase"] == "migrating"
    assert not any(key.startswith("batch") for key in record["phases"])
    assert_settled_on(client, fast, fast.sources.v1)


def test_a_host_failing_its_switch_in_the_second_batch_rolls_everyone_back(
    client: Any, fast: LocalStack
) -> None:
    deploy_v1(client, fast)
    broken = ordered(fast)[2]
    fault(fast, broken, "switch")
    response = post(client, {"app": "shop", "environment": "production", "sha": fast.sources.v2})
    record = wait_for(client, response.json_body["deploy_id"])

    assert record["status"] == "rolled_back"
    assert record["error"]["kind"] == "failed" and record["error"]["host"] == broken
    assert record["phases"]["batch-1.verify"]["status"] == "succeeded"
    assert record["phases"]["rollback"]["status"] == "succeeded"
    assert_settled_on(client, fast, fast.sources.v1)


def test_a_hanging_host_times_out_and_the_fleet_rolls_back(client: Any, fast: LocalStack) -> None:
    deploy_v1(client, fast)
    hung = ordered(fast)[1]
    fault(fast, hung, "verify", "hang")
    response = post(client, {"app": "shop", "environment": "production", "sha": fast.sources.v2})
    record = wait_for(client, response.json_body["deploy_id"])

    assert record["status"] == "rolled_back"
    assert record["error"]["kind"] == "timed_out"
    assert record["error"]["host"] == hung and record["error"]["phase"] == "verifying"
    assert_settled_on(client, fast, fast.sources.v1)


def test_a_host_hanging_while_staging_ends_timed_out(client: Any, fast: LocalStack) -> None:
    deploy_v1(client, fast)
    fault(fast, ordered(fast)[4], "stage", "hang")
    response = post(client, {"app": "shop", "environment": "production", "sha": fast.sources.v2})
    record = wait_for(client, response.json_body["deploy_id"])
    assert record["status"] == "timed_out" and record["error"]["kind"] == "timed_out"
    assert_settled_on(client, fast, fast.sources.v1)


class Outage:
    """Once armed, SSM's API refuses to send the switch to the second batch."""

    def __init__(self) -> None:
        self.armed = False
        self.refused: list[str] = []


@pytest.fixture
def ssm_outage(fast: LocalStack) -> Iterator[Outage]:
    from moto.ssm.exceptions import SSMException

    outage = Outage()
    batch_two = set(ordered(fast)[2:4])
    original = SimpleSystemManagerBackend.send_command

    def send_command(backend: Any, *args: Any, **kwargs: Any) -> Any:
        phase = (kwargs.get("parameters") or {}).get("phase", [""])[0]
        if outage.armed and phase == "switch" and batch_two & set(kwargs.get("instance_ids") or []):
            outage.refused.append(phase)
            raise SSMException("InternalServerError", "SSM is having a bad day")
        return original(backend, *args, **kwargs)

    SimpleSystemManagerBackend.send_command = send_command  # type: ignore[method-assign]
    try:
        yield outage
    finally:
        SimpleSystemManagerBackend.send_command = original  # type: ignore[method-assign]


def test_an_ssm_api_error_after_the_first_switch_ends_errored_and_rolled_back(
    client: Any, fast: LocalStack, ssm_outage: Outage
) -> None:
    deploy_v1(client, fast)
    ssm_outage.armed = True
    response = post(client, {"app": "shop", "environment": "production", "sha": fast.sources.v2})
    record = wait_for(client, response.json_body["deploy_id"])

    assert len(ssm_outage.refused) == 3  # tried, then retried twice
    assert record["status"] == "rolled_back"
    assert record["error"]["kind"] == "errored"
    assert "SendCommand" in record["error"]["message"]
    assert_settled_on(client, fast, fast.sources.v1)


def test_a_stopped_execution_is_reconciled_by_rolling_back(client: Any, fast: LocalStack) -> None:
    import boto3

    deploy_v1(client, fast)
    fault(fast, ordered(fast)[2], "switch", "hang")  # holds the rollout inside batch 2
    response = post(client, {"app": "shop", "environment": "production", "sha": fast.sources.v2})
    deploy_id = response.json_body["deploy_id"]
    deadline = time.monotonic() + 30
    while (
        "batch-2.switch"
        not in client.http.get(f"/deploys/{deploy_id}", headers=auth()).json_body["phases"]
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    sfn = boto3.client("stepfunctions")
    arn = client.http.get(f"/deploys/{deploy_id}", headers=auth()).json_body["links"]["execution"]
    sfn.stop_execution(executionArn=arn, cause="operator pressed stop")
    deadline = time.monotonic() + 30  # moto's interpreter notices the stop asynchronously
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert len(releases(fast)) == 2  # the fleet is mixed right now

    # what EventBridge does: invoke the template's schedule function, with its environment
    actions = fast.run_schedule("Reconcile")
    assert actions == [{"deploy_id": deploy_id, "action": "rolling back: its execution is ABORTED"}]
    record = wait_for(client, deploy_id)
    assert record["status"] == "rolled_back"
    assert "ABORTED" in record["error"]["message"]
    assert_settled_on(client, fast, fast.sources.v1)
    assert fast.run_schedule("Reconcile") == []  # nothing left to fix


def test_twenty_concurrent_triggers_run_one_rollout_at_a_time_and_each_migration_once(
    client: Any, fast: LocalStack
) -> None:
    repo = fast.sources
    shas = [repo.v1, repo.staging, repo.v2]
    answers: list[Any] = []

    def trigger(n: int) -> None:
        answers.append(
            post(client, {"app": "shop", "environment": "production", "sha": shas[n % 3]})
        )

    threads = [threading.Thread(target=trigger, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {a.status_code for a in answers} <= {200, 202}, [
        a.body for a in answers if a.status_code not in (200, 202)
    ]
    ids = {a.json_body["deploy_id"] for a in answers}
    records = [wait_for(client, i, timeout=120) for i in ids]
    # the newest queued may have started after the others finished: wait for the queue to drain
    deadline = time.monotonic() + 120
    while environment(client)["running_deploy_id"] or environment(client)["queued_deploy_id"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    listing = client.http.get("/deploys?limit=100", headers=auth()).json_body["deploys"]
    records = [wait_for(client, d["deploy_id"]) for d in listing]
    ran = sorted((r for r in records if r["started_at"]), key=lambda r: r["started_at"])
    for earlier, later in itertools.pairwise(ran):
        assert earlier["finished_at"] <= later["started_at"], "two rollouts overlapped"
    assert {r["status"] for r in records} <= {"succeeded", "superseded"}
    assert set(migrations(fast).values()) == {1}
    assert len(releases(fast)) == 1
