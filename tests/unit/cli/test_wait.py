"""``deploy --wait``: one line per phase change and per landed host step; the exit code is the
deploy's outcome (0 only for ``succeeded``), with the error summary otherwise."""

from __future__ import annotations

from .conftest import Run
from .fakeapi import DEPLOY_ID, FakeApi, accepted, detail, phase, step

I1, I2 = "i-0a655a15d043fe912", "i-0d4c1f8aa653c766f"
PATH = f"/deploys/{DEPLOY_ID}"


def _progress() -> list[dict[str, object]]:
    """A rollout seen by three polls: staging (one host done), migrating, switching."""
    return [
        detail(
            steps={I1: [step(0, "stage")], I2: [step(0, "stage", "pending", None)]},
            phases={"stage": phase("stage", "running", 0)},
            phase="staging",
        ),
        detail(
            steps={I1: [step(0, "stage"), step(1, "migrate")], I2: [step(0, "stage")]},
            phases={"stage": phase("stage", "succeeded", 0)},
            phase="migrating",
        ),
        detail(
            steps={I1: [step(0, "stage"), step(1, "migrate")], I2: [step(0, "stage")]},
            phases={"batch-1.switch": phase("switch", "running", 2, batch=1)},
            phase="switching",
        ),
    ]


def test_wait_prints_progress_once_and_exits_0_when_it_succeeds(api: FakeApi, run: Run) -> None:
    done = detail(
        steps={
            I1: [step(0, "stage"), step(1, "migrate"), step(2, "switch")],
            I2: [step(0, "stage"), step(3, "switch")],
        },
        status="succeeded",
        phase="done",
        finished_at="2026-11-27T23:02:08.000Z",
        duration_s=6.1,
    )
    api.on("POST", "/deploys", (202, accepted()))
    api.on("GET", PATH, *[(200, r) for r in [*_progress(), done]])
    result = run("deploy", "shop", "production", "--ref", "main", "--wait", "--interval", "0")
    assert result.code == 0, result.out + result.err
    assert [(r.method, r.path) for r in api.requests] == [("POST", "/deploys")] + [
        ("GET", PATH)
    ] * 4
    lines = [line.split("] ", 1)[1] for line in result.out.splitlines() if line.startswith("[")]
    assert lines == [
        "status running",
        "phase staging (stage)",
        "  shop-production-1    stage         succeeded  exit 0",
        "phase migrating",
        "  shop-production-2    stage         succeeded  exit 0",
        "  shop-production-1    migrate       succeeded  exit 0",
        "phase switching (batch-1.switch)",
        "phase done",
        "  shop-production-1    switch        succeeded  exit 0",
        "  shop-production-2    switch        succeeded  exit 0",
        f"{DEPLOY_ID} succeeded in 6.1s",
    ]


def test_wait_exits_1_with_the_error_summary_when_it_is_rolled_back(api: FakeApi, run: Run) -> None:
    failed_verify = step(3, "verify", "failed", 1, "checking\nhealth: 500 from /up\n", "Failed")
    rolled_back = detail(
        steps={
            I1: [step(0, "stage"), step(2, "switch"), failed_verify, step(7, "rollback")],
            I2: [step(0, "stage")],
        },
        status="rolled_back",
        phase="rolling_back",
        duration_s=9.5,
        error={
            "kind": "failed",
            "phase": "verifying",
            "step": "batch-1.verify",
            "host": I1,
            "hosts": [I1],
            "exit_code": 1,
            "stderr_tail": "checking\nhealth: 500 from /up\n",
            "stdout_tail": "",
            "message": "Failed",
        },
    )
    api.on("POST", "/deploys", (202, accepted()))
    api.on("GET", PATH, (200, _progress()[0]), (200, rolled_back))
    result = run("deploy", "shop", "production", "--ref", "main", "--wait", "--interval", "0")
    assert result.code == 1
    out = result.out
    assert "  shop-production-1    verify        failed     exit 1: Failed" in out
    assert "phase rolling_back" in out
    assert f"{DEPLOY_ID} rolled_back in 9.5s" in out
    assert f"failed in verifying (batch-1.verify) on shop-production-1 ({I1}), exit code 1" in out
    assert "stderr    health: 500 from /up" in out  # the last stderr line


def test_wait_exits_1_for_an_errored_deploy_without_a_host(api: FakeApi, run: Run) -> None:
    errored = detail(
        status="errored",
        phase="staging",
        error={
            "kind": "errored",
            "phase": "staging",
            "error": "Ssm.SsmException",
            "message": "SendCommand failed",
        },
    )
    api.on("POST", "/deploys", (202, accepted()))
    api.on("GET", PATH, (200, errored))
    result = run("deploy", "shop", "production", "--ref", "main", "--wait")
    assert result.code == 1
    assert "errored in staging [Ssm.SsmException]" in result.out
    assert "message   SendCommand failed" in result.out


def test_rollback_wait_follows_the_new_deploy(api: FakeApi, run: Run) -> None:
    new_id = "d-20261127t230900-abcdef12"
    api.on("POST", f"/deploys/{DEPLOY_ID}/rollback", (202, accepted(deploy_id=new_id)))
    api.on("GET", f"/deploys/{new_id}", (200, detail(deploy_id=new_id, status="succeeded")))
    result = run("rollback", DEPLOY_ID, "--wait")
    assert result.code == 0
    assert api.requests[-1].path == f"/deploys/{new_id}"


def test_without_wait_deploy_does_not_poll(api: FakeApi, run: Run) -> None:
    api.on("POST", "/deploys", (202, accepted()))
    assert run("deploy", "shop", "production", "--ref", "main").code == 0
    assert len(api.requests) == 1


def test_an_http_error_while_waiting_ends_with_its_exit_code(api: FakeApi, run: Run) -> None:
    api.on("POST", "/deploys", (202, accepted()))
    api.on("GET", PATH, (503, {"error": "aws_error", "message": "DynamoDB is unavailable"}))
    result = run("deploy", "shop", "production", "--ref", "main", "--wait")
    assert result.code == 3
    assert "DynamoDB is unavailable (HTTP 503 aws_error)" in result.err
