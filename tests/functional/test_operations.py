"""Queue, freeze, cancel and rollback through the HTTP API (Chalice test client)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import LocalStack

from .conftest import CORPUS_SECRETS, auth, hosts, wait_for

FAST_CONFIG = str(Path(__file__).parent / "pipeline-fast.toml")


@pytest.fixture
def fast(stack: LocalStack) -> LocalStack:
    stack.reset(config=FAST_CONFIG)
    return stack


def post(client: Any, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    raw = "" if body is None else json.dumps(body)
    return client.http.post(path, headers=headers or auth(), body=raw)


def deploy(client: Any, sha: str, **extra: Any) -> Any:
    return post(
        client, "/deploys", {"app": "shop", "environment": "production", "sha": sha, **extra}
    )


def releases(stack: LocalStack) -> set[str]:
    import os

    out = set()
    for host in hosts(stack):
        link = stack.options.hosts_dir / host["instance_id"] / "shop" / "current"
        out.add(Path(os.readlink(link)).name if link.is_symlink() else "")
    return out


def env_state(client: Any) -> dict[str, Any]:
    return dict(client.http.get("/environments/shop/production", headers=auth()).json_body)


def wait_until(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


def test_freeze_queues_deploys_until_unfrozen_and_is_audited(client: Any, fast: LocalStack) -> None:
    frozen = client.http.put(
        "/environments/shop/production/lock",
        headers=auth(),
        body=json.dumps({"reason": "Black Friday"}),
    )
    assert frozen.status_code == 200, frozen.body
    assert frozen.json_body["frozen"] is True and frozen.json_body["frozen_by"] == "local-admin"

    waiting = deploy(client, fast.sources.v1)
    assert waiting.status_code == 202 and waiting.json_body["status"] == "queued"
    time.sleep(1)
    assert (
        client.http.get(f"/deploys/{waiting.json_body['deploy_id']}", headers=auth()).json_body[
            "status"
        ]
        == "queued"
    )
    assert releases(fast) == {""}

    thawed = client.http.delete("/environments/shop/production/lock", headers=auth())
    assert thawed.status_code == 200 and thawed.json_body["frozen"] is False
    assert wait_for(client, waiting.json_body["deploy_id"])["status"] == "succeeded"
    actions = [(e["action"], e["by"]) for e in env_state(client)["audit"]]
    assert actions == [("freeze", "local-admin"), ("unfreeze", "local-admin")]
    assert env_state(client)["audit"][0]["reason"] == "Black Friday"


def test_a_forced_deploy_overrides_a_freeze_and_says_so(client: Any, fast: LocalStack) -> None:
    client.http.put(
        "/environments/shop/production/lock",
        headers=auth(),
        body=json.dumps({"reason": "incident"}),
    )
    forced = deploy(client, fast.sources.v1, force=True, reason="hotfix during incident")
    assert forced.status_code == 202 and forced.json_body["status"] == "running"
    record = wait_for(client, forced.json_body["deploy_id"])
    assert record["status"] == "succeeded" and record["force"] is True
    assert env_state(client)["frozen"] is True  # the freeze stays


def test_a_push_while_frozen_is_recorded_and_queued(client: Any, stack: LocalStack) -> None:
    from .conftest import CORPUS_CONFIG
    from .test_webhooks import case

    stack.reset(config=CORPUS_CONFIG, host_counts={"production": 1, "staging": 1})
    client.http.put(
        "/environments/woodpecker/production/lock",
        headers=auth(),
        body=json.dumps({"reason": "freeze"}),
    )
    body, headers = case("github/push/2")
    response = client.http.post("/webhooks/github", body=body, headers=headers)
    assert response.status_code == 202
    assert response.json_body["deploys"][0]["status"] == "queued"
    record = client.http.get(
        f"/deploys/{response.json_body['deploy_id']}", headers=auth()
    ).json_body
    assert record["status"] == "queued" and record["requested_via"] == "github"
    assert CORPUS_SECRETS  # the corpus' own signature was accepted


def test_cancelling_a_queued_deploy_ends_it_at_once(client: Any, fast: LocalStack) -> None:
    running = deploy(client, fast.sources.v1)
    queued = deploy(client, fast.sources.v2)
    response = post(client, f"/deploys/{queued.json_body['deploy_id']}/cancel")
    assert response.status_code == 200 and response.json_body["status"] == "cancelled"
    assert response.json_body["cancel_requested_by"] == "local-admin"
    assert wait_for(client, running.json_body["deploy_id"])["status"] == "succeeded"
    assert env_state(client)["queued_deploy_id"] is None
    assert releases(fast) == {fast.sources.v1}
    again = post(client, f"/deploys/{queued.json_body['deploy_id']}/cancel")
    assert again.status_code == 409 and "already ended as cancelled" in again.json_body["message"]


def test_cancelling_a_running_deploy_after_its_first_switch_rolls_it_back(
    client: Any, fast: LocalStack
) -> None:
    first = deploy(client, fast.sources.v1)
    wait_for(client, first.json_body["deploy_id"])
    second = deploy(client, fast.sources.v2).json_body["deploy_id"]
    # the fast config bakes between batches: cancel while batch 1 runs v2
    wait_until(
        lambda: (
            "batch-1.verify"
            in client.http.get(f"/deploys/{second}", headers=auth()).json_body["phases"]
        )
    )
    response = post(client, f"/deploys/{second}/cancel")
    assert response.status_code == 202 and response.json_body["status"] == "running"

    record = wait_for(client, second)
    assert record["status"] == "cancelled"
    assert record["cancel_requested_by"] == "local-admin"
    assert record["phases"]["rollback"]["status"] == "succeeded"
    assert releases(fast) == {fast.sources.v1}
    assert env_state(client)["current_sha"] == fast.sources.v1


def test_rollback_deploys_the_previous_good_release_and_links_it(
    client: Any, fast: LocalStack
) -> None:
    repo = fast.sources
    v1 = deploy(client, repo.v1).json_body["deploy_id"]
    wait_for(client, v1)
    v2 = deploy(client, repo.v2).json_body["deploy_id"]
    wait_for(client, v2)
    response = post(client, f"/deploys/{v2}/rollback", {"reason": "checkout is broken"})
    assert response.status_code == 202, response.body
    record = wait_for(client, response.json_body["deploy_id"])
    assert record["status"] == "succeeded"
    assert record["sha"] == repo.v1 and record["rollback_of"] == v2
    assert "checkout is broken" in record["reason"] and v2 in record["reason"]
    assert releases(fast) == {repo.v1}

    nothing_before = post(client, f"/deploys/{v1}/rollback")
    assert nothing_before.status_code == 409
    assert "no successful release" in nothing_before.json_body["message"]


@pytest.mark.parametrize(
    "method,path,body,status",
    [
        ("post", "/deploys/d-20260101t000000-00000000/cancel", None, 404),
        ("post", "/deploys/nope/cancel", None, 404),
        ("post", "/deploys/d-20260101t000000-00000000/rollback", None, 404),
        ("post", "/deploys/nope/rollback", {"force": "yes"}, 404),
        ("put", "/environments/shop/production/lock", {}, 422),
        ("put", "/environments/shop/production/lock", {"reason": ""}, 422),
        ("put", "/environments/shop/production/lock", {"reason": 5}, 422),
        ("put", "/environments/shop/production/lock", "not json", 400),
        ("put", "/environments/shop/qa/lock", {"reason": "x"}, 404),
        ("delete", "/environments/nope/production/lock", None, 404),
        ("get", "/environments/shop/qa", None, 404),
    ],
)
def test_operations_reject_bad_input_clearly(
    client: Any, fast: LocalStack, method: str, path: str, body: Any, status: int
) -> None:
    raw = "" if body is None else body if isinstance(body, str) else json.dumps(body)
    response = getattr(client.http, method)(path, headers=auth(), body=raw)
    assert response.status_code == status, response.body
    assert response.json_body["message"]


def test_a_forced_flag_must_be_a_boolean(client: Any, fast: LocalStack) -> None:
    response = deploy(client, fast.sources.v1, force="yes")
    assert response.status_code == 422 and "true or false" in response.json_body["message"]


def test_operations_need_a_token(client: Any, fast: LocalStack) -> None:
    plain = {"Content-Type": "application/json"}
    assert (
        client.http.put(
            "/environments/shop/production/lock", headers=plain, body='{"reason":"x"}'
        ).status_code
        == 401
    )
    assert (
        client.http.delete("/environments/shop/production/lock", headers=plain).status_code == 401
    )
    assert (
        post(client, "/deploys/d-20260101t000000-00000000/cancel", headers=plain).status_code == 401
    )
