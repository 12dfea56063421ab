"""Logs and audit trail on the embedded stack: one push (refused once, then accepted) runs a
real deploy through the state machine, and an environment is locked and unlocked. Every line
the ``roadie`` logger writes meanwhile is JSON with its correlation keys, no configured secret
appears in any output, and ``GET /audit`` tells the same story (and refuses bad queries
with a 4xx)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.stack import LocalStack
from tests.unit.adapters.test_observability import json_lines

from .conftest import CORPUS_SECRETS, TOKEN, auth, wait_for
from .test_webhooks import case

APP, ENV = "hello-world", "production"


def test_a_push_and_its_deploy_are_logged_audited_and_leak_no_secret(
    corpus_stack: LocalStack, client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    body, headers = case("github/push/1")
    delivery = headers["X-GitHub-Delivery"]
    with json_lines() as lines:
        forged = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
        assert client.http.post("/webhooks/github", body=body, headers=forged).status_code == 401
        response = client.http.post("/webhooks/github", body=body, headers=headers)
        assert response.status_code == 202, response.body
        deploy_id = response.json_body["deploy_id"]
        record = wait_for(client, deploy_id)
        lock = json.dumps({"reason": "quiet please"})
        path = f"/environments/{APP}/{ENV}/lock"
        frozen = client.http.put(path, body=lock, headers=auth())
        assert frozen.status_code == 200
        assert client.http.delete(path, headers=auth()).status_code == 200
        trail = client.http.get(f"/audit?app={APP}&environment={ENV}&limit=50", headers=auth())
    assert record["status"] == "failed"  # the corpus SHA is not in the app's repository

    # (a) decisions and status changes, as JSON lines with their correlation keys
    decisions = [line for line in lines if "decision" in line]
    assert [(d["decision"], d.get("http_status")) for d in decisions] == [
        ("rejected", 401),
        ("accepted", None),
    ]
    assert decisions[1]["delivery_id"] == delivery
    assert decisions[1]["webhook_deploy_id"] == deploy_id
    changes = [line["message"] for line in lines if line.get("deploy_id") == deploy_id]
    assert f"deploy {deploy_id} requested: running" in changes
    assert f"deploy {deploy_id} status running -> failed" in changes
    ended = next(line for line in lines if line["message"].endswith("running -> failed"))
    assert (ended["app"], ended["environment"], ended["service"]) == (APP, ENV, "roadie")
    assert ended["phase"] and ended["execution"].endswith(deploy_id)
    who = frozen.json_body["frozen_by"]
    assert any(line["message"].endswith(f"environment.lock by {who}") for line in lines)

    # (b) no configured secret anywhere: log lines, stdout, stderr
    out = capsys.readouterr()
    everything = json.dumps(lines) + out.out + out.err
    for secret in (TOKEN, *CORPUS_SECRETS.values()):
        assert secret not in everything

    # the audit trail: newest first, the same deploy and delivery
    assert trail.status_code == 200, trail.body
    events = trail.json_body["events"]
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)
    actions = [e["action"] for e in reversed(events)]
    for expected in (
        "webhook.accepted",
        "deploy.requested",
        "deploy.started",
        "deploy.finished",
        "environment.lock",
        "environment.unlock",
    ):
        assert expected in actions
    by_action = {e["action"]: e for e in events}
    requested = by_action["deploy.requested"]
    assert (requested["deploy_id"], requested["delivery_id"], requested["source"]) == (
        deploy_id,
        delivery,
        "push",
    )
    assert requested["principal"] == "Codertocat"
    assert by_action["deploy.finished"]["detail"]["outcome"] == "failed"
    assert by_action["environment.lock"]["principal"] == who

    # bad queries: a 4xx in the one error shape (no second stack reset for these)
    for query, status in (
        ("", 400),
        (f"?app={APP}", 400),
        (f"?app={APP}&environment={ENV}&limit=0", 400),
        (f"?app={APP}&environment={ENV}&since=yesterday", 422),
        (f"?app={APP}&environment={ENV}&cursor=bm90LW91cnM", 400),
        (f"?app={APP}&environment={ENV}&what=1", 400),
        (f"?app={APP}&environment=nowhere", 404),
    ):
        response = client.http.get(f"/audit{query}", headers=auth())
        assert response.status_code == status, (query, response.body)
        assert set(response.json_body) == {"error", "message"}
    assert client.http.get(f"/audit?app={APP}&environment={ENV}").status_code == 401
