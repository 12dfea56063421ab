"""The deploy API end to end: HTTP -> DynamoDB record -> real state machine on moto -> SSM ->
the host script in bash on simulated hosts -> the record again."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import LocalStack

from .conftest import TOKEN, auth, hosts, wait_for


@pytest.fixture(autouse=True)
def _fresh(fresh_stack: LocalStack) -> None:
    """Every test here starts from a freshly provisioned stack with the bundled config."""


def post(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.http.post("/deploys", headers=headers or auth(), body=raw)


def current_release(stack: LocalStack, instance_id: str) -> str:
    link = stack.options.hosts_dir / instance_id / "shop" / "current"
    return Path(os.readlink(link)).name if link.is_symlink() else ""


def test_deploys_a_sha_to_every_host_and_records_who_what_when(
    client: Any, fresh_stack: LocalStack
) -> None:
    v1 = fresh_stack.sources.v1
    response = post(
        client, {"app": "shop", "environment": "production", "sha": v1, "reason": "first"}
    )
    assert response.status_code == 202, response.body
    accepted = response.json_body
    assert accepted["status"] == "running"
    assert response.headers["Location"] == f"/deploys/{accepted['deploy_id']}"

    record = wait_for(client, accepted["deploy_id"])

    assert record["status"] == "succeeded", record["error"]
    assert record["phase"] == "done"
    assert record["requested_by"] == "local-admin"
    assert record["requested_via"] == "api"
    assert record["sha"] == v1 and record["reason"] == "first"
    assert record["created_at"] <= record["started_at"] <= record["finished_at"]
    assert record["duration_s"] > 0
    assert [h["batch"] for h in record["hosts"]] == [1, 1, 2, 2, 3]
    assert set(record["phases"]) == {
        "stage",
        "migrate",
        "batch-1.switch",
        "batch-1.verify",
        "batch-2.switch",
        "batch-2.verify",
        "batch-3.switch",
        "batch-3.verify",
        "post_migrate",
    }
    assert all(p["status"] == "succeeded" for p in record["phases"].values())
    for host in record["hosts"]:
        cmds = [s["command"] for s in host["steps"]]
        assert (cmds[0] == "stage" and cmds[-2:] == ["switch", "verify"]) or cmds[
            -1
        ] == "post_migrate"
        assert all(s["exit_code"] == 0 for s in host["steps"])
        verify = next(s for s in host["steps"] if s["command"] == "verify")
        assert f"REVISION={v1}" in verify["stdout_tail"]
        assert current_release(fresh_stack, host["instance_id"]) == v1
    migrating = [h for h in record["hosts"] if any(s["command"] == "migrate" for s in h["steps"])]
    assert [h["instance_id"] for h in migrating] == [record["plan"]["migration_host"]]


def test_deploys_a_ref_resolved_to_its_sha_and_runs_each_migration_once(
    client: Any, fresh_stack: LocalStack
) -> None:
    repo = fresh_stack.sources
    first = post(client, {"app": "shop", "environment": "production", "sha": repo.v1})
    assert wait_for(client, first.json_body["deploy_id"])["status"] == "succeeded"

    second = post(client, {"app": "shop", "environment": "production", "ref": "main"})
    record = wait_for(client, second.json_body["deploy_id"])

    assert record["status"] == "succeeded"
    assert record["sha"] == repo.v2 and record["ref"] == "main"
    assert record["previous_sha"] == repo.v1
    assert {current_release(fresh_stack, h["instance_id"]) for h in hosts(fresh_stack)} == {repo.v2}
    db = fresh_stack.options.state_dir / "db" / "shop-production.sqlite3"
    with sqlite3.connect(db) as conn:
        counts = dict(
            conn.execute("SELECT version, COUNT(*) FROM roadie_migration_log GROUP BY version")
        )
    assert counts and set(counts.values()) == {1}

    # DORA from these two records: both shipped, each with its commit's time from the source
    assert record["commit_at"] and record["commit_at"] <= record["finished_at"]
    answer = client.http.get("/metrics/dora?app=shop&environment=production&days=1", headers=auth())
    assert answer.status_code == 200, answer.body
    dora = answer.json_body
    assert dora["deploys_read"] == 2
    assert dora["deployment_frequency"] == {"successful_deploys": 2, "per_day": 2.0}
    assert (dora["lead_time"]["measured"], dora["lead_time"]["unknown_commit_time"]) == (2, 0)
    assert dora["lead_time"]["median_seconds"] > 0
    assert dora["change_failure_rate"]["rate"] == 0.0
    assert dora["time_to_restore"]["incidents"] == []
    dora_refuses_bad_queries_with_the_one_error_shape(client)  # here: a test resets the stack


def test_a_host_failing_its_switch_rolls_the_fleet_back_and_records_the_evidence(
    client: Any, fresh_stack: LocalStack
) -> None:
    repo = fresh_stack.sources
    first = post(client, {"app": "shop", "environment": "production", "sha": repo.v1})
    assert wait_for(client, first.json_body["deploy_id"])["status"] == "succeeded"
    # batch 2 is the third and fourth host in plan order (migration host first, then by name)
    fleet = sorted(hosts(fresh_stack), key=lambda h: h["name"])
    broken = fleet[2]["instance_id"]
    fault = fresh_stack.options.hosts_dir / broken / "fault.switch"
    fault.write_text("fail\n")

    response = post(client, {"app": "shop", "environment": "production", "sha": repo.v2})
    record = wait_for(client, response.json_body["deploy_id"])

    assert record["status"] == "rolled_back"
    assert record["phase"] == "rolling_back"
    error = record["error"]
    assert error["kind"] == "failed" and error["phase"] == "switching"
    assert error["host"] == broken and error["hosts"] == [broken]
    assert error["step"] == "batch-2.switch"
    assert error["exit_code"] == 1
    assert "injected fault" in error["stderr_tail"]
    assert record["phases"]["batch-2.switch"]["status"] == "failed"
    assert record["phases"]["rollback"]["status"] == "succeeded"
    assert "batch-3.switch" not in record["phases"]  # later batches never started
    # every host is back on v1, the one that never switched included
    assert {current_release(fresh_stack, h["instance_id"]) for h in fleet} == {repo.v1}

    # the lock was released: the environment takes the next deploy
    fault.unlink()
    again = post(client, {"app": "shop", "environment": "production", "sha": repo.v2})
    assert again.status_code == 202
    assert wait_for(client, again.json_body["deploy_id"])["status"] == "succeeded"
    assert {current_release(fresh_stack, h["instance_id"]) for h in fleet} == {repo.v2}


def test_a_deploy_while_one_runs_is_queued_and_starts_when_the_first_ends(
    client: Any, fresh_stack: LocalStack
) -> None:
    repo = fresh_stack.sources
    first = post(client, {"app": "shop", "environment": "production", "sha": repo.v1})
    second = post(client, {"app": "shop", "environment": "production", "sha": repo.v2})
    assert first.status_code == 202 and second.status_code == 202
    assert second.json_body["status"] == "queued"
    other_env = post(client, {"app": "shop", "environment": "staging", "sha": repo.v1})
    assert other_env.json_body["status"] == "running"  # locks are per app + environment

    assert wait_for(client, first.json_body["deploy_id"])["status"] == "succeeded"
    record = wait_for(client, second.json_body["deploy_id"])
    assert record["status"] == "succeeded"
    assert record["previous_sha"] == repo.v1  # planned when it started, not when it queued
    assert {current_release(fresh_stack, h["instance_id"]) for h in hosts(fresh_stack)} == {repo.v2}
    wait_for(client, other_env.json_body["deploy_id"])


def test_a_newer_request_supersedes_the_queued_one(client: Any, fresh_stack: LocalStack) -> None:
    repo = fresh_stack.sources
    running = post(client, {"app": "shop", "environment": "production", "sha": repo.v1})
    older = post(client, {"app": "shop", "environment": "production", "sha": repo.staging})
    newer = post(client, {"app": "shop", "environment": "production", "sha": repo.v2})
    assert older.json_body["status"] == newer.json_body["status"] == "queued"

    wait_for(client, running.json_body["deploy_id"])
    assert wait_for(client, newer.json_body["deploy_id"])["status"] == "succeeded"
    superseded = wait_for(client, older.json_body["deploy_id"])
    assert superseded["status"] == "superseded"
    assert superseded["hosts"] == [] or all(not h["steps"] for h in superseded["hosts"])


def test_the_same_sha_while_it_deploys_returns_that_deploy(
    client: Any, fresh_stack: LocalStack
) -> None:
    v1 = fresh_stack.sources.v1
    first = post(client, {"app": "shop", "environment": "production", "sha": v1})
    again = post(client, {"app": "shop", "environment": "production", "ref": "v1.0.0"})
    assert again.status_code == 200
    assert again.json_body["existing"] is True
    assert again.json_body["deploy_id"] == first.json_body["deploy_id"]
    wait_for(client, first.json_body["deploy_id"])
    listing = client.http.get("/deploys", headers=auth()).json_body
    assert len(listing["deploys"]) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json", "Authorization": "Bearer wrong"},
        {"Content-Type": "application/json", "Authorization": f"Basic {TOKEN}"},
        {"Content-Type": "application/json", "Authorization": "Bearer "},
    ],
)
def test_requests_without_a_valid_token_get_401(client: Any, headers: dict[str, str]) -> None:
    response = post(client, {"app": "shop", "environment": "production", "ref": "main"}, headers)
    assert response.status_code == 401
    assert response.json_body["error"] == "unauthorized"
    assert client.http.get("/deploys", headers=headers).status_code == 401


@pytest.mark.parametrize(
    "body,status,says",
    [
        ("{not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "JSON object"),
        ("", 400, "JSON object"),
        (b"\xff\xfe", 400, "not valid JSON"),
        ({"environment": "production", "ref": "main"}, 422, "'app' is required"),
        ({"app": "shop", "environment": "production"}, 422, "exactly one"),
        (
            {"app": "shop", "environment": "production", "ref": "main", "sha": "a" * 40},
            422,
            "exactly one",
        ),
        ({"app": "shop", "environment": "production", "sha": "abc"}, 422, "40"),
        ({"app": "shop", "environment": "production", "sha": "A" * 40}, 422, "40"),
        ({"app": 7, "environment": "production", "ref": "main"}, 422, "must be a string"),
        (
            {"app": "shop", "environment": "production", "ref": "main", "enviroment": "x"},
            422,
            "unknown field",
        ),
        ({"app": "shop", "environment": "production", "ref": "main;rm -rf /"}, 422, "not a valid"),
        (
            {"app": "shop", "environment": "production", "ref": "--upload-pack=x"},
            422,
            "not a valid",
        ),
        (
            {"app": "shop", "environment": "production", "ref": "no-such-branch"},
            404,
            "does not exist",
        ),
        ({"app": "nope", "environment": "production", "ref": "main"}, 404, "unknown app"),
        ({"app": "shop", "environment": "qa", "ref": "main"}, 404, "no environment"),
        (
            {"app": "shop", "environment": "production", "ref": "main", "reason": "x" * 501},
            422,
            "reason",
        ),
    ],
)
def test_bad_input_gets_a_clear_json_error_and_starts_nothing(
    client: Any, body: Any, status: int, says: str
) -> None:
    response = post(client, body)
    assert response.status_code == status, response.body
    assert says in response.json_body["message"]
    listing = client.http.get("/deploys", headers=auth()).json_body
    assert listing["deploys"] == []


def test_lists_deploys_newest_first_with_filters_and_a_cursor(
    client: Any, fresh_stack: LocalStack
) -> None:
    v1 = fresh_stack.sources.v1
    ids = []
    for env in ("staging", "production", "staging"):
        response = post(client, {"app": "shop", "environment": env, "sha": v1})
        assert response.status_code == 202, response.body
        ids.append(response.json_body["deploy_id"])
        wait_for(client, ids[-1])

    page1 = client.http.get("/deploys?limit=2", headers=auth()).json_body
    assert [d["deploy_id"] for d in page1["deploys"]] == [ids[2], ids[1]]
    page2 = client.http.get(
        f"/deploys?limit=2&cursor={page1['next_cursor']}", headers=auth()
    ).json_body
    assert [d["deploy_id"] for d in page2["deploys"]] == [ids[0]]
    assert page2["next_cursor"] is None

    staging = client.http.get("/deploys?app=shop&environment=staging", headers=auth()).json_body
    assert [d["deploy_id"] for d in staging["deploys"]] == [ids[2], ids[0]]
    ok = client.http.get(
        "/deploys?status=succeeded&environment=production", headers=auth()
    ).json_body
    assert [d["deploy_id"] for d in ok["deploys"]] == [ids[1]]

    for query, status in [
        ("limit=0", 400),
        ("limit=x", 400),
        ("status=bogus", 422),
        ("cursor=%%%", 400),
        ("cursor=eyJhIjogMX0", 400),
        ("colour=red", 400),
        ("app=nope", 404),
    ]:
        response = client.http.get(f"/deploys?{query}", headers=auth())
        assert response.status_code == status, (query, response.body)
        assert response.json_body["message"]


DORA_REFUSALS = [
    ("app=shop&environment=production", {}, 401),
    ("environment=production", None, 400),
    ("app=shop", None, 400),
    ("app=shop&environment=production&days=0", None, 400),
    ("app=shop&environment=production&days=366", None, 400),
    ("app=shop&environment=production&days=%EF%BC%93", None, 400),  # a full-width 3
    ("app=shop&environment=production&days=1&days=2", None, 400),
    ("app=shop&environment=production&since=1", None, 400),
    ("app=nope&environment=production", None, 404),
    ("app=shop&environment=qa", None, 404),
]


def dora_refuses_bad_queries_with_the_one_error_shape(client: Any) -> None:
    for query, headers, status in DORA_REFUSALS:
        response = client.http.get(
            f"/metrics/dora?{query}", headers=auth() if headers is None else headers
        )
        assert response.status_code == status, (query, response.body)
        assert set(response.json_body) == {"error", "message"}, query


def test_unknown_deploy_ids_are_404(client: Any) -> None:
    for deploy_id in ("d-20260101t000000-00000000", "nope", "..%2F"):
        response = client.http.get(f"/deploys/{deploy_id}", headers=auth())
        assert response.status_code == 404
        assert response.json_body["error"] == "not_found"
