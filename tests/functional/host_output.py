"""Checks of per-host output kept (``GET /deploys/{id}/log``), run on a finished deploy of a
functional test (test_boot_template's first deploy: its hosts' build prints ``seq 1 1000``,
about 3,900 characters, twice what the record keeps, and one host warns on stderr)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3

from chalicelib.domain.hostlog import output_stream

Get = Callable[[str], Any]  # GET a path of the API (authenticated) -> the test client's answer
BUILD_LINES = 1000
WARNING = "roadie: warning: ignoring a malformed line"


def read_log(get: Get, deploy_id: str, query: str) -> tuple[list[dict[str, Any]], int]:
    """Every block of ``GET /deploys/{id}/log?<query>``, read page by page (and the pages)."""
    blocks: list[dict[str, Any]] = []
    cursor, pages = "", 0
    while True:
        response = get(f"/deploys/{deploy_id}/log?{query}" + (f"&cursor={cursor}" * bool(cursor)))
        assert response.status_code == 200, response.body
        blocks += response.json_body["output"]
        pages += 1
        cursor = response.json_body["next_cursor"]
        if cursor is None:
            return blocks, pages


def text(blocks: list[dict[str, Any]], stream: str) -> str:
    return "\n".join(line for b in blocks if b["stream"] == stream for line in b["lines"])


def assert_host_output_kept(get: Get, record: dict[str, Any], warned: str, log_group: str) -> None:
    """``record``'s hosts' whole output is in ``log_group`` where SSM puts it, and the API pages
    through it per host and phase; ``warned`` is the host whose script warned on stderr."""
    deploy_id = record["deploy_id"]
    assert record["links"]["log"] == f"/deploys/{deploy_id}/log"
    host = next(h for h in record["hosts"] if h["instance_id"] == warned)
    stage = next(s for s in host["steps"] if s["command"] == "stage")

    # one host's whole stage output, 250 lines a page: longer than the record's tail
    blocks, pages = read_log(get, deploy_id, f"host={warned}&phase=stage&limit=250")
    assert {(b["host"], b["name"], b["phase"]) for b in blocks} == {(warned, host["name"], "stage")}
    stdout, stderr = text(blocks, "stdout"), text(blocks, "stderr")
    numbers = [line for line in stdout.splitlines() if line.isdigit()]
    assert numbers == [str(n) for n in range(1, BUILD_LINES + 1)]
    assert stdout.endswith(stage["stdout_tail"].rstrip("\n"))
    assert len(stdout) > 2 * len(stage["stdout_tail"]) > 0
    assert pages >= len(stdout.splitlines()) // 250
    assert WARNING in stderr and WARNING in stage["stderr_tail"]
    print(
        f"stage stdout of {warned}: {len(stdout)} chars in {pages} pages "
        f"(the record keeps {len(stage['stdout_tail'])})"
    )

    # the streams are where SSM writes them: <command id>/<instance id>/<step>/stdout|stderr
    logs = boto3.client("logs")
    stream = output_stream(stage["command_id"], warned, "stderr")
    events = logs.get_log_events(logGroupName=log_group, logStreamName=stream, startFromHead=True)
    assert [e["message"] for e in events["events"]] == stderr.splitlines()
    (group,) = logs.describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    assert group["retentionInDays"] > 0  # made by the template, not by the host agent

    # every host and phase of the deploy, as the record lists them, and only those
    everything, _ = read_log(get, deploy_id, "limit=1000")
    assert {(b["host"], b["phase"]) for b in everything if b["stream"] == "stdout"} == {
        (h["instance_id"], label)
        for h in record["hosts"]
        for s in h["steps"]
        for label, phase in record["phases"].items()
        if phase["cursor"] == s["step"]
    }
    quiet = [b for b in everything if b["host"] != warned]
    assert quiet and WARNING not in text(quiet, "stderr")

    # filters and cursors a client gets wrong are told so, in the one error shape
    for query, status in [
        ("host=i-00000000000000000", 404),
        ("phase=batch-9.switch", 404),
        ("cursor=bm90LWEtY3Vyc29y", 400),
        ("limit=0", 400),
        ("colour=red", 400),
    ]:
        response = get(f"/deploys/{deploy_id}/log?{query}")
        assert response.status_code == status, (query, response.body)
        assert response.json_body["error"] and response.json_body["message"]
    assert get("/deploys/d-20260101t000000-00000000/log").status_code == 404
