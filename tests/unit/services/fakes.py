"""In-memory fakes of the service ports (``chalicelib/services/ports.py``).

They behave like the adapters they stand in for: the deploy store reads and writes copies,
``mutate`` is a read-modify-write retried on a version conflict, and ``write_environment`` is
conditional on the environment item's version (and on a new deploy not existing yet), as in
``adapters/dynamo.py``; host rows are keyed ``<instance id>#<step:03d>`` and overwritten; the
command runner takes 1..50 hosts per command and keeps only the last 2,000 characters of each
output stream, as ``adapters/aws.py`` does.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.config import AppConfig
from chalicelib.domain.environment import EnvironmentState
from chalicelib.domain.errors import (
    ConflictError,
    InvalidCursorError,
    NotFoundError,
    StaleStateError,
    StorageRejectedError,
)
from chalicelib.domain.hostlog import LogChunk
from chalicelib.domain.jsontext import find_surrogate
from chalicelib.domain.model import Deploy, Host, HostResult, HostStatus, env_key

TAIL_CHARS = 2000  # what adapters/aws.py keeps of stdout and stderr


class FixedClock:
    """A clock that moves only when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()


class FakeStaleStateError(StaleStateError):
    """Like ``adapters.dynamo.StaleStateError``: a conditional write lost a race."""

    code = "busy"


def _storable(deploy: Deploy) -> None:
    """As DynamoDB: text that is not Unicode (a lone surrogate) is refused, as no race."""
    if find_surrogate(asdict(deploy)) is not None:
        raise StorageRejectedError("the datastore refused the write (ValidationException)")


class FakeDeployStore:
    """DeployStore in memory, with DynamoDB's conditional-write semantics."""

    def __init__(self, max_retries: int = 8) -> None:
        self._max_retries = max_retries
        self.deploys: dict[str, Deploy] = {}
        self.environments: dict[str, EnvironmentState] = {}
        self.environment_writes = 0
        self.window_reads = 0  # records ``window`` returned (the adapter's items read)
        # Test hooks: a function run once between the read and the write of ``mutate`` (a
        # concurrent writer), and errors ``write_environment`` raises before writing anything.
        self.between_read_and_write: Callable[[], None] | None = None
        self.write_errors: list[Exception] = []

    # -- deploys
    def get(self, deploy_id: str) -> Deploy:
        try:
            return copy.deepcopy(self.deploys[deploy_id])
        except KeyError:
            raise NotFoundError(f"no deploy {deploy_id!r}") from None

    def mutate(self, deploy_id: str, change: Callable[[Deploy], None]) -> Deploy:
        for _attempt in range(self._max_retries):
            deploy = self.get(deploy_id)
            read_version = deploy.version
            change(deploy)
            if self.between_read_and_write is not None:
                hook, self.between_read_and_write = self.between_read_and_write, None
                hook()
            if self.deploys[deploy_id].version != read_version:
                continue  # the version condition failed: read again and re-apply
            _storable(deploy)
            deploy.version = (read_version or 0) + 1
            self.deploys[deploy_id] = copy.deepcopy(deploy)
            return deploy
        raise FakeStaleStateError(f"deploy {deploy_id} is being changed concurrently")

    def list(
        self,
        *,
        app: str | None = None,
        environment: str | None = None,
        status: str | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> tuple[list[Deploy], str | None]:
        found = sorted(
            (
                d
                for d in self.deploys.values()
                if (app is None or d.app == app)
                and (environment is None or d.environment == environment)
                and (status is None or d.status.value == status)
            ),
            key=lambda d: f"{d.created_at}#{d.deploy_id}",
            reverse=True,
        )
        # as the adapter: a cursor holds its query's filters; any other cursor is a 400
        query = f"{app}|{environment}|{status}"
        start_text, _, made_for = ("0|" + query if cursor is None else cursor).partition("|")
        if not start_text.isascii() or not start_text.isdigit() or made_for != query:
            raise InvalidCursorError("cursor is not one this API returned for this query")
        start = int(start_text)
        page = found[start : start + limit]
        more = start + limit < len(found)
        return [copy.deepcopy(d) for d in page], f"{start + limit}|{query}" if more else None

    def window(self, app: str, environment: str, since: str) -> Sequence[Deploy]:
        """As the adapter's index range: this environment's deploys from ``since`` on
        (``created_at#deploy_id`` compared as text, as DynamoDB compares the sort key)."""
        found = sorted(
            (
                d
                for d in self.deploys.values()
                if d.app == app
                and d.environment == environment
                and f"{d.created_at}#{d.deploy_id}" >= since
            ),
            key=lambda d: f"{d.created_at}#{d.deploy_id}",
        )
        self.window_reads += len(found)
        return [copy.deepcopy(d) for d in found]

    # -- environments
    def environment(self, app: str, environment: str) -> EnvironmentState:
        return self.environments.get(env_key(app, environment)) or EnvironmentState(
            app, environment
        )

    def write_environment(
        self, seen: EnvironmentState, new: EnvironmentState, *, new_deploy: Deploy | None = None
    ) -> None:
        if self.write_errors:
            raise self.write_errors.pop(0)
        key = env_key(seen.app, seen.environment)
        stored = self.environments.get(key)
        stored_version = stored.version if stored else None
        if stored_version != seen.version:
            raise FakeStaleStateError(f"{seen.app}/{seen.environment} changed; retry")
        if new_deploy is not None and new_deploy.deploy_id in self.deploys:
            raise FakeStaleStateError(f"{seen.app}/{seen.environment} changed; retry")
        if new_deploy is not None:
            _storable(new_deploy)
        self.environments[key] = replace(new, version=(seen.version or 0) + 1)
        self.environment_writes += 1
        if new_deploy is not None:
            self.deploys[new_deploy.deploy_id] = replace(copy.deepcopy(new_deploy), version=1)

    def locked_environments(self) -> list[EnvironmentState]:
        return [
            state
            for state in self.environments.values()
            if state.lock_deploy_id or state.queued_deploy_id or state.diverged_deploy_id
        ]


class FakeHostResultStore:
    """HostResultStore in memory: one row per (deploy, host, step), last write wins."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], HostResult] = {}

    def put_many(self, results: Iterable[HostResult]) -> None:
        for result in results:
            self.rows[(result.deploy_id, f"{result.instance_id}#{result.step:03d}")] = result

    def for_deploy(self, deploy_id: str) -> Iterator[HostResult]:
        for key in sorted(k for k in self.rows if k[0] == deploy_id):
            yield self.rows[key]

    def row(self, deploy_id: str, instance_id: str, step: int) -> HostResult:
        return self.rows[(deploy_id, f"{instance_id}#{step:03d}")]


@dataclass(frozen=True)
class FakeInvocation:
    """Shaped like ``adapters.aws.Invocation``."""

    instance_id: str
    status: HostStatus
    exit_code: int | None
    stdout: str
    stderr: str
    started_at: str | None
    finished_at: str | None
    detail: str


@dataclass
class SentCommand:
    command_id: str
    instance_ids: tuple[str, ...]
    parameters: dict[str, str]
    timeout_seconds: int
    comment: str
    invocations: dict[str, FakeInvocation] = field(default_factory=dict)


class FakeHostCommands:
    """HostCommandRunner in memory; tests decide what each host answers."""

    def __init__(self) -> None:
        self.sent: list[SentCommand] = []
        self.cancels: list[str] = []  # every CancelCommand call, in order
        self._ids = itertools.count(1)

    def run(
        self,
        instance_ids: Sequence[str],
        parameters: Mapping[str, str],
        *,
        timeout_seconds: int,
        comment: str,
    ) -> str:
        if not 1 <= len(instance_ids) <= 50:
            raise ValueError("SSM takes 1..50 instance ids per command")
        command_id = f"cmd-{next(self._ids):04d}"
        self.sent.append(
            SentCommand(command_id, tuple(instance_ids), dict(parameters), timeout_seconds, comment)
        )
        return command_id

    def command(self, command_id: str) -> SentCommand:
        (found,) = (c for c in self.sent if c.command_id == command_id)
        return found

    def answer(
        self,
        command_id: str,
        instance_id: str,
        status: HostStatus = HostStatus.SUCCEEDED,
        *,
        exit_code: int | None = None,
        stdout: str = "",
        stderr: str = "",
        detail: str = "",
    ) -> None:
        sent = self.command(command_id)
        assert instance_id in sent.instance_ids, f"{instance_id} was not sent {command_id}"
        if exit_code is None and status is HostStatus.SUCCEEDED:
            exit_code = 0
        sent.invocations[instance_id] = FakeInvocation(
            instance_id,
            status,
            exit_code,
            stdout,
            stderr,
            "2024-05-01T12:00:01.000Z",
            "2024-05-01T12:00:09.000Z",
            detail,
        )

    def answer_all(self, command_ids: Iterable[str], **kwargs: Any) -> None:
        for command_id in command_ids:
            for host in self.command(command_id).instance_ids:
                self.answer(command_id, host, **kwargs)

    def is_finished(self, command_id: str) -> bool:
        sent = self.command(command_id)
        return all(
            host in sent.invocations and sent.invocations[host].status is not HostStatus.PENDING
            for host in sent.instance_ids
        )

    def cancel(self, command_id: str) -> None:
        """As SSM does: every host not done yet ends cancelled; finished ones keep their
        result."""
        sent = self.command(command_id)
        self.cancels.append(command_id)
        for host in sent.instance_ids:
            if self.invocation(command_id, host).status is HostStatus.PENDING:
                self.answer(command_id, host, HostStatus.CANCELLED, detail="Cancelled")

    def invocation(self, command_id: str, instance_id: str) -> FakeInvocation:
        sent = self.command(command_id)
        if instance_id in sent.invocations:
            return sent.invocations[instance_id]
        # GetCommandInvocation's InvocationDoesNotExist: the adapter reports it as pending.
        return FakeInvocation(instance_id, HostStatus.PENDING, None, "", "", None, None, "")


class FakeMetrics:
    def __init__(self) -> None:
        self.finished: list[tuple[str, str, float | None]] = []

    def deploy_finished(self, deploy: Deploy, duration_seconds: float | None) -> None:
        self.finished.append((deploy.deploy_id, deploy.status.value, duration_seconds))


class FakeFleet:
    def __init__(self, hosts: Sequence[Host]) -> None:
        self.fleet = list(hosts)

    def hosts(self, tags: Mapping[str, str]) -> list[Host]:
        return list(self.fleet)


class FakeExecutions:
    """Orchestrator in memory: remembers each execution's input."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}
        self.stopped: list[tuple[str, str]] = []

    def start(self, name: str, payload: Mapping[str, Any]) -> str:
        if name in self.started:
            raise ConflictError(f"execution {name} already exists")
        self.started[name] = copy.deepcopy(dict(payload))
        return f"arn:aws:states:us-east-1:123456789012:execution:roadie:{name}"

    def status(self, execution_arn: str) -> str:
        return "RUNNING"

    def stop(self, execution_arn: str, cause: str) -> None:
        self.stopped.append((execution_arn, cause))


class FakeRefs:
    """Refs and commits of one repository. ``commits`` None: every SHA is a commit (a source
    that cannot tell answers None, as an s3 source does: ``unknown_commits``)."""

    def __init__(
        self,
        refs: Mapping[str, str] | None = None,
        commits: Iterable[str] | None = None,
        *,
        unknown_commits: bool = False,
    ) -> None:
        self.refs = dict(refs or {})
        self.commits = None if commits is None else set(commits)
        self.unknown_commits = unknown_commits
        self.asked: list[tuple[str, str]] = []  # (app name, ref)
        self.looked_up: list[tuple[str, str]] = []  # (app name, sha)
        self.commit_times: dict[str, str] = {}  # sha -> the source's commit time

    def commit_exists(self, app: AppConfig, sha: str) -> bool | None:
        self.looked_up.append((app.name, sha))
        if self.unknown_commits:
            return None
        return self.commits is None or sha in self.commits or sha in self.refs.values()

    def commit_time(self, app: AppConfig, sha: str) -> str | None:
        return self.commit_times.get(sha)

    def resolve(self, app: AppConfig, ref: str) -> str:
        self.asked.append((app.name, ref))
        try:
            return self.refs[ref]
        except KeyError:
            raise NotFoundError(f"ref {ref!r} does not exist") from None


class FakeCommandLogs:
    """CommandLogReader in memory: ``streams[(group, stream)]`` holds the lines a host wrote;
    a token is the index of the next line, given only by a read and only for its stream."""

    def __init__(self) -> None:
        self.streams: dict[tuple[str, str], list[str]] = {}
        self.reads = 0

    def write(self, group: str, stream: str, lines: Iterable[str]) -> None:
        self.streams.setdefault((group, stream), []).extend(lines)

    def read(self, group: str, stream: str, token: str | None, limit: int) -> LogChunk:
        self.reads += 1
        lines = self.streams.get((group, stream), [])
        start = 0
        if token is not None:
            prefix, _, index = token.partition(":")
            if prefix != stream or not index.isdigit() or int(index) > len(lines):
                raise InvalidCursorError("cursor is not one this API returned")
            start = int(index)
        end = start + max(1, limit)
        return LogChunk(tuple(lines[start:end]), f"{stream}:{end}" if end < len(lines) else None)
