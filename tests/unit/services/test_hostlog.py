"""HostLogService: a deploy's full host output per host and phase, paged, from the host rows
and the log streams SSM writes (with the in-memory fakes)."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib.domain.errors import InvalidCursorError, NotFoundError
from chalicelib.domain.hostlog import host_log_group, output_stream
from chalicelib.domain.model import Deploy, Host, HostCommand, HostResult, HostStatus
from chalicelib.domain.rollout import BatchSize, RolloutPolicy, plan_rollout
from chalicelib.services.hostlog import HostLogService

from .fakes import FakeCommandLogs, FakeDeployStore, FakeHostResultStore

PREFIX = "/roadie/test/hosts"
GROUP = host_log_group(PREFIX, "shop")
# i-b is "web-1": the plan orders hosts by name, so it stages and migrates first
HOSTS = [Host("i-a", "web-2"), Host("i-b", "web-1")]
SENT = {  # step label -> (cursor, command id, hosts) of the steps dispatched so far
    "stage": (0, "cmd-stage", ["i-b", "i-a"]),
    "migrate": (1, "cmd-migrate", ["i-b"]),
    "batch-1.switch": (2, "cmd-switch-1", ["i-b"]),
}


@pytest.fixture
def world() -> tuple[HostLogService, FakeCommandLogs]:
    deploys, rows, logs = FakeDeployStore(), FakeHostResultStore(), FakeCommandLogs()
    plan = plan_rollout(HOSTS, RolloutPolicy(batch_size=BatchSize(1)))
    deploy = Deploy("d-1", "shop", "production", "a" * 40, "ann", "api", "2026-12-01T08:00:00Z")
    deploy.plan = plan.to_json()
    for label, (cursor, command_id, hosts) in SENT.items():
        deploy.phases[label] = {"cursor": cursor, "command_ids": [command_id]}
        command = HostCommand(label.rsplit(".", 1)[-1])
        rows.put_many(
            HostResult("d-1", h, cursor, command, HostStatus.SUCCEEDED, command_id=command_id)
            for h in hosts
        )
        for host in hosts:
            out = [f"{label} on {host}: line {i}" for i in range(3 if label == "stage" else 2)]
            logs.write(GROUP, output_stream(command_id, host, "stdout"), out)
    logs.write(GROUP, output_stream("cmd-migrate", "i-b", "stderr"), ["migrate warning"])
    deploys.deploys["d-1"] = deploy
    return HostLogService(deploys, rows, logs, PREFIX), logs


def flat(page_json: dict[str, object]) -> list[tuple[str, str, str, str]]:
    output = page_json["output"]
    assert isinstance(output, list)
    return [(b["host"], b["phase"], b["stream"], line) for b in output for line in b["lines"]]


def test_returns_every_hosts_whole_output_in_rollout_order_per_host_phase_and_stream(
    world: tuple[HostLogService, FakeCommandLogs],
) -> None:
    service, _ = world
    page = service.page("d-1").to_json()
    assert page["log_group"] == GROUP and page["next_cursor"] is None
    blocks = [(b["host"], b["name"], b["phase"], b["stream"]) for b in page["output"]]
    assert blocks == [
        ("i-b", "web-1", "stage", "stdout"),
        ("i-a", "web-2", "stage", "stdout"),
        ("i-b", "web-1", "migrate", "stdout"),
        ("i-b", "web-1", "migrate", "stderr"),
        ("i-b", "web-1", "batch-1.switch", "stdout"),
    ]
    assert page["output"][0]["lines"] == [f"stage on i-b: line {i}" for i in range(3)]
    assert page["output"][0]["command_id"] == "cmd-stage"


def test_pages_through_the_same_lines_with_the_cursor(
    world: tuple[HostLogService, FakeCommandLogs],
) -> None:
    service, _ = world
    whole = flat(service.page("d-1").to_json())
    seen, cursor, pages = [], None, 0
    while True:
        page = service.page("d-1", cursor=cursor, limit=2).to_json()
        assert len(flat(page)) <= 2
        seen += flat(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole and len(whole) == 11 and pages >= 6


def test_filters_by_host_and_by_phase_label_or_command(
    world: tuple[HostLogService, FakeCommandLogs],
) -> None:
    service, _ = world
    only_a = flat(service.page("d-1", host="i-a").to_json())
    assert {h for h, *_ in only_a} == {"i-a"} and len(only_a) == 3
    migrate = flat(service.page("d-1", phase="migrate", host="i-b").to_json())
    assert migrate[-1] == ("i-b", "migrate", "stderr", "migrate warning")
    switch = service.page("d-1", phase="switch").to_json()
    assert [b["phase"] for b in switch["output"]] == ["batch-1.switch"]
    assert flat(service.page("d-1", phase="batch-1.switch").to_json()) == flat(switch)


def test_a_step_that_has_not_run_yet_has_no_output_but_an_unknown_one_is_not_found(
    world: tuple[HostLogService, FakeCommandLogs],
) -> None:
    service, _ = world
    assert service.page("d-1", phase="batch-2.switch").to_json()["output"] == []
    assert service.page("d-1", host="i-a", phase="migrate").to_json()["output"] == []
    with pytest.raises(NotFoundError):
        service.page("d-1", phase="batch-9.switch")
    with pytest.raises(NotFoundError):
        service.page("d-1", host="i-zzz")
    with pytest.raises(NotFoundError):
        service.page("d-404")


def test_a_cursor_is_refused_when_tampered_or_used_for_another_query(
    world: tuple[HostLogService, FakeCommandLogs],
) -> None:
    service, _ = world
    cursor = service.page("d-1", limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursorError):
        service.page("d-1", host="i-a", cursor=cursor)
    raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for bad in ([99, None, *raw[2:]], [0, "stage-x:1", *raw[2:]], [-1, None, *raw[2:]], "x"):
        forged = base64.urlsafe_b64encode(json.dumps(bad).encode()).decode()
        with pytest.raises(InvalidCursorError):
            service.page("d-1", cursor=forged)
    for junk in ("!!!", "", "e30"):
        with pytest.raises(InvalidCursorError):
            service.page("d-1", cursor=junk)
