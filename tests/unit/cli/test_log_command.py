"""``roadie log``: follows ``GET /deploys/{id}/log`` to its last page and prints each host's
output under a header whenever the host, phase or stream changes."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Run
from .fakeapi import DEPLOY_ID, FakeApi, Seen

I1 = "i-0a655a15d043fe912"


def block(phase: str, stream: str, *lines: str) -> dict[str, Any]:
    return {
        "host": I1,
        "name": "shop-production-1",
        "phase": phase,
        "stream": stream,
        "lines": list(lines),
    }


PAGES = {  # cursor -> (blocks, next cursor): the stage stdout is split across two pages
    None: ([block("stage", "stdout", "1", "2")], "c1"),
    "c1": ([block("stage", "stdout", "3"), block("stage", "stderr", "warned")], "c2"),
    "c2": ([block("migrate", "stdout", "migrated")], None),
}


def pages(seen: Seen) -> tuple[int, object]:
    blocks, cursor = PAGES[seen.query.get("cursor")]
    return 200, {"deploy_id": DEPLOY_ID, "output": blocks, "next_cursor": cursor}


def test_log_prints_every_page_with_a_header_per_host_phase_and_stream(
    api: FakeApi, run: Run
) -> None:
    api.on("GET", f"/deploys/{DEPLOY_ID}/log", pages)
    result = run("log", DEPLOY_ID, "--host", I1, "--phase", "stage")
    assert result.code == 0, result.err
    assert [r.query.get("cursor") for r in api.requests] == [None, "c1", "c2"]
    assert all(r.query["host"] == I1 and r.query["phase"] == "stage" for r in api.requests)
    header = f"== shop-production-1 ({I1})"
    assert result.out.splitlines() == [
        f"{header} stage stdout ==",
        "1",
        "2",
        "3",
        f"{header} stage stderr ==",
        "warned",
        f"{header} migrate stdout ==",
        "migrated",
    ]


def test_log_json_gathers_every_block_and_an_unknown_deploy_exits_2(api: FakeApi, run: Run) -> None:
    api.on("GET", f"/deploys/{DEPLOY_ID}/log", pages)
    result = run("log", DEPLOY_ID, "--json")
    assert result.code == 0, result.err
    assert [b["lines"] for b in json.loads(result.out)] == [
        ["1", "2"],
        ["3"],
        ["warned"],
        ["migrated"],
    ]
    assert "host" not in api.requests[0].query
    api.on("GET", "/deploys/d-x/log", (404, {"error": "not_found", "message": "no deploy 'd-x'"}))
    missing = run("log", "d-x")
    assert missing.code == 2 and "no deploy" in missing.err
