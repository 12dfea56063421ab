"""The CommandLogReader contract: ``FakeCommandLogs`` and ``CommandLogs`` on moto's CloudWatch
Logs (in process), written as the SSM agent writes a host's output: one stream per output
stream of each invocation, one event per line."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.domain.errors import InvalidCursorError
from chalicelib.domain.hostlog import output_stream
from chalicelib.services.ports import CommandLogReader
from tests.unit.services.fakes import FakeCommandLogs

from .conftest import REGION

GROUP = "/roadie/test/hosts/shop"
STREAM = output_stream("cmd-1", "i-0abc", "stdout")
Writer = Callable[[str, str, list[str]], None]


@pytest.fixture(scope="module")
def moto_logs() -> Iterator[Any]:
    import boto3
    import moto

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        with moto.mock_aws():
            yield boto3.client("logs", region_name=REGION)


@pytest.fixture(params=["fake", "moto"])
def logs(request: pytest.FixtureRequest) -> tuple[CommandLogReader, Writer]:
    if request.param == "fake":
        fake = FakeCommandLogs()
        return fake, fake.write
    from chalicelib.adapters.hostlogs import CommandLogs

    client = request.getfixturevalue("moto_logs")
    for group in client.describe_log_groups()["logGroups"]:
        client.delete_log_group(logGroupName=group["logGroupName"])
    client.create_log_group(logGroupName=GROUP)

    def write(group: str, stream: str, lines: list[str]) -> None:
        client.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)  # CloudWatch Logs drops events older than 14 days
        events = [{"timestamp": now, "message": line} for line in lines]
        client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    return CommandLogs(lambda: client), write


def read_all(reader: CommandLogReader, stream: str, limit: int) -> list[tuple[str, ...]]:
    chunks, token = [], None
    while True:
        chunk = reader.read(GROUP, stream, token, limit)
        chunks.append(chunk.lines)
        assert len(chunk.lines) <= limit
        if chunk.next_token is None:
            return chunks
        token = chunk.next_token


def test_a_stream_no_host_wrote_reads_as_empty(logs: tuple[CommandLogReader, Writer]) -> None:
    reader, _ = logs
    chunk = reader.read(GROUP, output_stream("cmd-1", "i-0abc", "stderr"), None, 10)
    assert chunk.lines == () and chunk.next_token is None


def test_a_group_that_does_not_exist_reads_as_empty(
    logs: tuple[CommandLogReader, Writer],
) -> None:
    reader, _ = logs
    assert reader.read("/roadie/test/hosts/nope", STREAM, None, 10).lines == ()


def test_reads_every_line_in_order_in_pages_of_at_most_limit(
    logs: tuple[CommandLogReader, Writer],
) -> None:
    reader, write = logs
    lines = [f"line {i:03d}" for i in range(23)]
    write(GROUP, STREAM, lines)
    chunks = read_all(reader, STREAM, 10)
    assert [line for chunk in chunks for line in chunk] == lines
    assert [len(c) for c in chunks[:3]] == [10, 10, 3]


def test_a_stream_read_to_its_exact_end_ends(logs: tuple[CommandLogReader, Writer]) -> None:
    reader, write = logs
    write(GROUP, STREAM, ["a", "b", "c", "d"])
    chunks = read_all(reader, STREAM, 2)
    assert [line for chunk in chunks for line in chunk] == ["a", "b", "c", "d"]
    assert len(chunks) <= 3  # at most one empty read past the end


def test_a_token_the_reader_never_gave_is_an_invalid_cursor(
    logs: tuple[CommandLogReader, Writer],
) -> None:
    reader, write = logs
    write(GROUP, STREAM, ["a", "b"])
    with pytest.raises(InvalidCursorError):
        reader.read(GROUP, STREAM, "not-a-token", 1)
