"""Reads hosts' command output back from CloudWatch Logs (where SSM Run Command writes it)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ..domain.errors import InvalidCursorError
from ..domain.hostlog import LogChunk
from .aws import AwsError, ClientFactory, LazyClient

# GetLogEvents answers at most 1 MB: a page under half of that, shorter than asked, has
# reached the end of what the stream holds (each event costs its message plus 26 bytes).
_SURELY_ALL_BYTES = 512 * 1024
_EVENT_OVERHEAD = 26


class CommandLogs:
    """One log stream at a time, from its head: ``read`` pages with GetLogEvents."""

    def __init__(self, logs_client_factory: ClientFactory) -> None:
        self._logs = LazyClient(logs_client_factory)

    def read(self, group: str, stream: str, token: str | None, limit: int) -> LogChunk:
        """At most ``limit`` lines of ``stream`` after ``token`` (None: from its start). A
        stream or group that does not exist reads as empty: SSM makes a stream only when the
        host wrote to it, and only once the host has run."""
        request: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "startFromHead": True,
            "limit": max(1, min(limit, 10_000)),
        }
        if token is not None:
            request["nextToken"] = token
        try:
            response = self._logs().get_log_events(**request)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ResourceNotFoundException":
                return LogChunk(())
            if code == "InvalidParameterException" and token is not None:
                raise InvalidCursorError("cursor is not one this API returned") from exc
            raise AwsError(f"CloudWatch Logs GetLogEvents failed: {exc}") from exc
        lines = tuple(str(e.get("message", "")) for e in response.get("events", []))
        forward = response.get("nextForwardToken")
        size = sum(len(line) + _EVENT_OVERHEAD for line in lines)
        ended = (
            not lines
            or forward is None
            or forward == token
            or (len(lines) < request["limit"] and size < _SURELY_ALL_BYTES)
        )
        return LogChunk(lines, None if ended else str(forward))
