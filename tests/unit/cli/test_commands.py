"""Each subcommand sends the right request (method, path, body, token) and prints the answer."""

from __future__ import annotations

import json

import pytest

from .conftest import TOKEN, Run
from .fakeapi import (
    DEPLOY_ID,
    OLD_SHA,
    SHA,
    FakeApi,
    Seen,
    accepted,
    detail,
    environment,
    phase,
    step,
    summary,
)

I1, I2 = "i-0a655a15d043fe912", "i-0d4c1f8aa653c766f"


def test_deploy_by_ref_posts_the_request_and_prints_id_and_status(api: FakeApi, run: Run) -> None:
    api.on("POST", "/deploys", (202, accepted()))
    result = run("deploy", "shop", "production", "--ref", "main", "--reason", "ship it")
    assert result.code == 0, result.err
    [seen] = api.requests
    assert (seen.method, seen.path) == ("POST", "/deploys")
    assert seen.body == {
        "app": "shop",
        "environment": "production",
        "ref": "main",
        "reason": "ship it",
    }
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["content-type"] == "application/json"
    first = result.out.splitlines()[0]
    assert first.startswith(f"{DEPLOY_ID} running ")
    assert "shop/production" in first and SHA[:12] in first


def test_deploy_by_sha_with_force_sends_only_what_was_given(api: FakeApi, run: Run) -> None:
    api.on("POST", "/deploys", (202, accepted(status="queued", ref=None)))
    result = run("deploy", "shop", "production", "--sha", SHA, "--force")
    assert result.code == 0
    assert api.requests[0].body == {
        "app": "shop",
        "environment": "production",
        "sha": SHA,
        "force": True,
    }
    assert f"{DEPLOY_ID} queued" in result.out and "busy or frozen" in result.out


def test_deploy_answered_with_the_existing_deploy_says_so(api: FakeApi, run: Run) -> None:
    api.on("POST", "/deploys", (200, accepted(existing=True)))
    result = run("deploy", "shop", "production", "--ref", "main")
    assert result.code == 0 and "already deploying" in result.out


@pytest.mark.parametrize(
    "argv",
    [
        ("deploy", "shop", "production"),
        ("deploy", "shop", "production", "--sha", SHA, "--ref", "main"),
        ("deploy", "shop", "--ref", "main"),
        ("freeze", "shop", "production"),
        ("list", "--limit", "0"),
        ("deploy", "shop", "production", "--ref", "main", "--wait", "--interval", "soon"),
        (),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    api: FakeApi, run: Run, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*argv).code == 2
    assert api.requests == []
    assert "usage: roadie" in capsys.readouterr().err


def test_status_prints_who_what_when_phases_hosts_and_error(api: FakeApi, run: Run) -> None:
    record = detail(
        steps={
            I1: [step(0, "stage"), step(2, "rollback")],
            I2: [step(0, "stage"), step(3, "verify", "failed", 1, "boom\nverify: not healthy\n")],
        },
        phases={
            "stage": phase("stage", "succeeded", 0, took=1.25),
            "batch-1.verify": phase("verify", "failed", 3, batch=1, took=0.5),
        },
        status="rolled_back",
        phase="rolling_back",
        finished_at="2026-11-27T23:02:07.900Z",
        duration_s=6.0,
        error={
            "kind": "failed",
            "phase": "verifying",
            "step": "batch-1.verify",
            "host": I2,
            "hosts": [I2],
            "exit_code": 1,
            "stderr_tail": "boom\nverify: not healthy\n",
            "stdout_tail": "",
            "message": "Failed",
        },
    )
    api.on("GET", f"/deploys/{DEPLOY_ID}", (200, record))
    result = run("status", DEPLOY_ID)
    assert result.code == 0, result.err
    assert [(r.method, r.path) for r in api.requests] == [("GET", f"/deploys/{DEPLOY_ID}")]
    out = result.out
    assert f"deploy {DEPLOY_ID}  shop/production  rolled_back (phase rolling_back)" in out
    assert f"sha {SHA} (ref main), previously {OLD_SHA[:12]}" in out
    assert "local-admin via api: ship it" in out
    assert "created 2026-11-27T23:02:01.648Z" in out and "finished 2026-11-27T23:02:07.900Z" in out
    assert "duration  6.0s" in out
    assert "stage                succeeded   1.2s" in out
    assert "batch-1.verify       failed      0.5s" in out
    assert f"shop-production-1 ({I1})" in out and "rollback succeeded exit 0" in out
    assert "verify failed exit 1" in out
    assert f"failed in verifying (batch-1.verify) on shop-production-2 ({I2}), exit code 1" in out
    assert "stderr    verify: not healthy" in out


def test_status_json_prints_the_record_unchanged(api: FakeApi, run: Run) -> None:
    record = detail(steps={I1: [step(0, "stage")]})
    api.on("GET", f"/deploys/{DEPLOY_ID}", (200, record))
    result = run("status", DEPLOY_ID, "--json")
    assert result.code == 0
    assert json.loads(result.out) == record


def test_list_sends_filters_and_prints_one_line_per_deploy_newest_first(
    api: FakeApi, run: Run
) -> None:
    newer = summary(deploy_id="d-20261127t230300-00000002", status="failed", phase="staging")
    older = summary(deploy_id="d-20261127t230200-00000001", status="failed", phase="migrating")
    api.on("GET", "/deploys", (200, {"deploys": [newer, older], "next_cursor": "opaque-1"}))
    result = run(
        "list", "--app", "shop", "--env", "production", "--status", "failed", "--limit", "2"
    )
    assert result.code == 0, result.err
    [seen] = api.requests
    assert seen.query == {
        "app": "shop",
        "environment": "production",
        "status": "failed",
        "limit": "2",
    }
    lines = result.out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("d-20261127t230300-00000002  shop/production")
    assert lines[1].startswith("d-20261127t230200-00000001")
    assert "failed" in lines[0] and SHA[:12] in lines[0] and "ship it" in lines[0]
    assert "--all" in result.err  # there is more, and the user is told how to get it


def test_list_all_follows_next_cursor_to_the_end(api: FakeApi, run: Run) -> None:
    pages = {
        None: (["d-20261127t230500-00000005", "d-20261127t230400-00000004"], "c1"),
        "c1": (["d-20261127t230300-00000003", "d-20261127t230200-00000002"], "c2"),
        "c2": (["d-20261127t230100-00000001"], None),
    }

    def page(seen: Seen) -> tuple[int, object]:
        ids, cursor = pages[seen.query.get("cursor")]
        return 200, {"deploys": [summary(deploy_id=i) for i in ids], "next_cursor": cursor}

    api.on("GET", "/deploys", page)
    result = run("list", "--all", "--limit", "2")
    assert result.code == 0, result.err
    assert [r.query.get("cursor") for r in api.requests] == [None, "c1", "c2"]
    assert all(r.query["limit"] == "2" for r in api.requests)
    assert [line.split()[0] for line in result.out.splitlines()] == [
        f"d-20261127t230{n}00-0000000{n}" for n in (5, 4, 3, 2, 1)
    ]
    assert result.err == ""


def test_list_json_gathers_every_page(api: FakeApi, run: Run) -> None:
    api.on(
        "GET",
        "/deploys",
        (200, {"deploys": [summary(deploy_id="d-20261127t230500-00000005")], "next_cursor": "c"}),
        (200, {"deploys": [summary(deploy_id="d-20261127t230100-00000001")], "next_cursor": None}),
    )
    result = run("list", "--all", "--json")
    assert [d["deploy_id"] for d in json.loads(result.out)] == [
        "d-20261127t230500-00000005",
        "d-20261127t230100-00000001",
    ]


def test_cancel_posts_and_tells_a_stop_request_from_a_cancel(api: FakeApi, run: Run) -> None:
    path = f"/deploys/{DEPLOY_ID}/cancel"
    api.on(
        "POST",
        path,
        (202, summary(cancel_requested_by="local-admin", phase="switching")),
        (200, summary(status="cancelled")),
    )
    running = run("cancel", DEPLOY_ID)
    assert running.code == 0 and "cancel requested" in running.out
    assert "step in flight is stopped" in running.out and "rolled back" in running.out
    queued = run("cancel", DEPLOY_ID)
    assert queued.code == 0 and queued.out.strip() == f"{DEPLOY_ID} cancelled"
    assert [(r.method, r.path) for r in api.requests] == [("POST", path)] * 2
    assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_rollback_posts_reason_and_force(api: FakeApi, run: Run) -> None:
    new_id = "d-20261127t230900-abcdef12"
    answer = accepted(
        deploy_id=new_id,
        sha=OLD_SHA,
        ref=None,
        rollback_of=DEPLOY_ID,
        reason=f"rollback of {DEPLOY_ID} to {OLD_SHA[:12]}: bad release",
    )
    api.on("POST", f"/deploys/{DEPLOY_ID}/rollback", (202, answer))
    result = run("rollback", DEPLOY_ID, "--reason", "bad release", "--force")
    assert result.code == 0, result.err
    assert api.requests[0].body == {"reason": "bad release", "force": True}
    assert result.out.startswith(f"{new_id} running") and "bad release" in result.out


def test_rollback_without_options_sends_an_empty_object(api: FakeApi, run: Run) -> None:
    api.on("POST", f"/deploys/{DEPLOY_ID}/rollback", (202, accepted(rollback_of=DEPLOY_ID)))
    assert run("rollback", DEPLOY_ID).code == 0
    assert api.requests[0].body == {}


def test_freeze_unfreeze_and_env(api: FakeApi, run: Run) -> None:
    frozen = environment(
        frozen=True,
        frozen_reason="release freeze",
        frozen_by="local-admin",
        frozen_at="2026-11-27T23:02:21.405Z",
        queued_deploy_id="d-20261127t230221-96dec600",
        audit=[
            {
                "at": "2026-11-27T23:02:21.405Z",
                "by": "local-admin",
                "action": "freeze",
                "reason": "release freeze",
            }
        ],
    )
    lock = "/environments/shop/production/lock"
    api.on("PUT", lock, (200, frozen))
    api.on("DELETE", lock, (200, environment()))
    api.on("GET", "/environments/shop/production", (200, frozen))

    froze = run("freeze", "shop", "production", "--reason", "release freeze")
    assert froze.code == 0, froze.err
    assert "frozen    yes: release freeze (by local-admin" in froze.out
    shown = run("env", "shop", "production")
    assert f"live      {frozen['current_sha'][:12]} (deploy {DEPLOY_ID})" in shown.out
    assert "queued    d-20261127t230221-96dec600" in shown.out
    assert "local-admin    freeze    reason=release freeze" in shown.out
    assert json.loads(run("env", "shop", "production", "--json").out) == frozen
    thawed = run("unfreeze", "shop", "production")
    assert thawed.code == 0 and "frozen    no" in thawed.out

    assert [(r.method, r.path, r.body) for r in api.requests] == [
        ("PUT", lock, {"reason": "release freeze"}),
        ("GET", "/environments/shop/production", None),
        ("GET", "/environments/shop/production", None),
        ("DELETE", lock, None),
    ]
    assert {r.headers["authorization"] for r in api.requests} == {f"Bearer {TOKEN}"}


def test_path_segments_are_quoted(api: FakeApi, run: Run) -> None:
    result = run("env", "shop", "a/b c")
    assert result.code == 2  # the fake has no such route: a 404
    assert api.requests[0].path == "/environments/shop/a%2Fb%20c"
