"""A diverged fleet on the embedded stack: named, kept locked, and converged by the reconciler.

The seen-in-the-wild double fault: the switch fails on a host of batch 2 and the rollback fails
on a host of batch 1, so one host stays on the new release and four on the old. The deploy
ends ``diverged``, the environment says ``mixed`` with each host's release (from the hosts'
own reports), new deploys wait, and once the broken host is fixed the reconciler's retried
rollback converges the fleet and frees the environment, where the waiting deploy runs: its
contract migration fails, and the record says the new release is live everywhere and which
migration failed. (One test: a second embedded rollout from scratch would cost ~20 s.)
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest

from devstack.stack import LocalStack

from .conftest import auth, wait_for
from .test_faults import (
    FAST_CONFIG,
    deploy_v1,
    environment,
    fault,
    ordered,
    post,
    releases,
)


@pytest.fixture
def fast(stack: LocalStack) -> LocalStack:
    stack.reset(config=FAST_CONFIG)
    return stack


def names(stack: LocalStack) -> dict[str, str]:
    from .conftest import hosts

    return {h["instance_id"]: h["name"] for h in hosts(stack)}


def wait_converged(client: Any, stack: LocalStack, timeout: float = 60) -> dict[str, Any]:
    """Run the reconciler (as its schedule would) until the environment is converged (its
    backoff, from the poll interval, is short on the local stack)."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        actions = stack.run_schedule("Reconcile")
        if actions:
            print(f"reconciler after {time.monotonic() - started:.1f}s: {actions}")
        env = environment(client)
        if env["diverged_deploy_id"] is None:
            return env
        assert time.monotonic() < deadline, env
        time.sleep(0.5)


def test_a_failed_rollback_ends_diverged_stays_locked_and_the_reconciler_converges_it(
    client: Any, fast: LocalStack
) -> None:
    deploy_v1(client, fast)
    v1, v2 = fast.sources.v1, fast.sources.v2
    first, third = ordered(fast)[0], ordered(fast)[2]
    assert names(fast)[first] == "shop-production-1" and names(fast)[third] == "shop-production-3"
    broken = fault(fast, third, "switch")
    stuck = fault(fast, first, "rollback")
    response = post(client, {"app": "shop", "environment": "production", "sha": v2})
    deploy_id = response.json_body["deploy_id"]
    record = wait_for(client, deploy_id)

    # the deploy record names the host off the environment's release, at the top level
    assert record["status"] == "diverged"
    assert record["error"]["kind"] == "diverged"
    assert [(h["instance_id"], h["sha"]) for h in record["error"]["diverged_hosts"]] == [
        (first, v2)
    ]
    assert "shop-production-1" in record["error"]["message"]
    assert record["error"]["cause"]["host"] == third  # what started it is kept
    assert record["fleet"]["state"] == "mixed" and record["fleet"]["attempts"] == 0
    assert releases(fast) == {v1, v2}

    env = environment(client)
    assert env["fleet_state"] == "mixed" and env["diverged_deploy_id"] == deploy_id
    assert env["current_sha"] == v1 and env["running_deploy_id"] is None
    by_host = {h["instance_id"]: h for h in env["hosts"]}
    assert by_host[first]["sha"] == v2 and by_host[first]["name"] == "shop-production-1"
    assert {by_host[h]["sha"] for h in ordered(fast)[1:]} == {v1}
    assert all(h["reported_at"] and h["deploy_id"] == deploy_id for h in env["hosts"])

    # a new deploy (not forced) waits: it does not run while the fleet is mixed. (v2 again,
    # over a database where someone already dropped the column v2's contract migration drops)
    db = fast.options.state_dir / "db" / "shop-production.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE products DROP COLUMN legacy_sku")
    waiting = post(client, {"app": "shop", "environment": "production", "sha": v2})
    assert waiting.status_code == 202 and waiting.json_body["status"] == "queued"
    assert environment(client)["queued_deploy_id"] == waiting.json_body["deploy_id"]

    # the reconciler retries the rollback at once; with host 1 still broken it stays mixed
    (action,) = fast.run_schedule("Reconcile")
    assert action["deploy_id"] == deploy_id and "attempt 1" in action["action"]
    deadline = time.monotonic() + 30
    while environment(client)["running_deploy_id"] is not None:  # the attempt holds the lock
        assert time.monotonic() < deadline
        time.sleep(0.2)
    note = client.http.get(f"/deploys/{deploy_id}", headers=auth()).json_body["fleet"]
    assert (note["state"], note["attempts"], note["last_outcome"]) == ("mixed", 1, "failed")
    assert [h["instance_id"] for h in note["off_release"]] == [first] and note["next_try_at"]
    env = environment(client)
    assert (
        env["fleet_state"] == "mixed" and env["queued_deploy_id"] == waiting.json_body["deploy_id"]
    )

    # the hosts are fixed; the reconciler retries the rollback until the fleet is one release
    stuck.unlink()
    broken.unlink()
    env = wait_converged(client, fast)
    assert env["current_sha"] == v1 and env["diverged_deploy_id"] is None
    assert [e["action"] for e in env["audit"]][-2:] == ["diverged", "converged"]
    # the environment converges first; the record's note is a second write: wait for it
    deadline = time.monotonic() + 10
    after = client.http.get(f"/deploys/{deploy_id}", headers=auth()).json_body
    while after["fleet"].get("state") != "converged" and time.monotonic() < deadline:
        time.sleep(0.1)
        after = client.http.get(f"/deploys/{deploy_id}", headers=auth()).json_body
    assert after["status"] == "diverged"  # what happened stays told
    assert after["fleet"]["state"] == "converged" and after["fleet"]["converged_on"] == v1
    assert after["fleet"]["attempts"] >= 1 and after["fleet"]["off_release"] == []

    # the lock is free: the waiting deploy ran. Its contract migration failed after every host
    # switched, and the record says so plainly, naming the migration
    record = wait_for(client, waiting.json_body["deploy_id"])
    assert record["status"] == "failed" and record["phase"] == "post_migrating"
    error = record["error"]
    assert error["live_on_every_host"] is True
    assert error["migration"] == "003_drop_legacy_sku_from_products.sql"
    assert f"the new release {v2[:12]} is live on every host" in error["message"]
    assert "003_drop_legacy_sku_from_products.sql" in error["message"]
    assert releases(fast) == {v2}
    env = environment(client)
    assert env["current_sha"] == v2 and env["fleet_state"] == "converged"
    assert {h["sha"] for h in env["hosts"]} == {v2}
    assert env["running_deploy_id"] is None and env["queued_deploy_id"] is None
