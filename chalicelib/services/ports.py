"""What the services need from the outside world (and from each other), as protocols."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..domain.audit import AuditEvent
from ..domain.environment import EnvironmentState
from ..domain.fleet import HostRelease
from ..domain.hostlog import LogChunk
from ..domain.model import Deploy, Host, HostResult
from ..domain.notice import Notice
from ..domain.pipeline import AppConfig


class DeployStore(Protocol):
    def get(self, deploy_id: str) -> Deploy: ...
    def mutate(self, deploy_id: str, change: Callable[[Deploy], None]) -> Deploy: ...
    def environment(self, app: str, environment: str) -> EnvironmentState: ...
    def write_environment(
        self, seen: EnvironmentState, new: EnvironmentState, *, new_deploy: Deploy | None = None
    ) -> None:
        """Conditional on ``seen`` being current; a ``StaleStateError`` if it is not."""

    def locked_environments(self) -> list[EnvironmentState]: ...
    def list(
        self,
        *,
        app: str | None = None,
        environment: str | None = None,
        status: str | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> tuple[list[Deploy], str | None]: ...
    def window(self, app: str, environment: str, since: str) -> Sequence[Deploy]:
        """Every deploy of ``app``/``environment`` created at or after ``since`` (UTC ISO
        text, as ``created_at``), oldest first; reads only those records (an index range)."""
        ...


class HostResultStore(Protocol):
    def put_many(self, results: Iterable[HostResult]) -> None: ...
    def for_deploy(self, deploy_id: str) -> Iterator[HostResult]: ...


class HostCommandRunner(Protocol):
    def run(
        self,
        instance_ids: Sequence[str],
        parameters: Mapping[str, str],
        *,
        timeout_seconds: int,
        comment: str,
    ) -> str: ...
    def is_finished(self, command_id: str) -> bool: ...
    def invocation(self, command_id: str, instance_id: str) -> Any: ...
    def cancel(self, command_id: str) -> None:
        """Stop the command on every host still running it (its invocations end cancelled);
        a command that already finished is left as it is."""


class CommandLogReader(Protocol):
    """Hosts' full command output, as SSM wrote it to CloudWatch Logs (``domain/hostlog``)."""

    def read(self, group: str, stream: str, token: str | None, limit: int) -> LogChunk:
        """At most ``limit`` lines of ``stream`` after ``token`` (None: from its start); a
        stream that does not exist reads as empty. ``InvalidCursorError`` for a token the
        reader never gave."""
        ...


class Orchestrator(Protocol):
    def start(self, name: str, payload: Mapping[str, Any]) -> str: ...
    def status(self, execution_arn: str) -> str:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, or contract.EXECUTION_GONE."""
        ...

    def stop(self, execution_arn: str, cause: str) -> None: ...


class HostFinder(Protocol):
    def hosts(self, tags: Mapping[str, str]) -> list[Host]: ...


class RefResolver(Protocol):
    def resolve(self, app: AppConfig, ref: str) -> str:
        """The 40-hex commit SHA ``ref`` (a branch, else a tag) names in ``app``'s source."""
        ...

    def commit_exists(self, app: AppConfig, sha: str) -> bool | None:
        """Whether the 40-hex ``sha`` is a commit of ``app``'s repository; None where the
        source cannot be asked (an s3 artifact store, a remote git URL)."""
        ...

    def commit_time(self, app: AppConfig, sha: str) -> str | None:
        """When ``sha`` was committed (ISO 8601), where the source can tell; else None."""
        ...


class Lease(Protocol):
    """A rollout's hold on its environment (``EnvironmentService``)."""

    def renew(self, deploy: Deploy) -> None:
        """Extend ``deploy``'s lease; ``LeaseLostError`` if another deploy holds the lock."""


class Handover(Protocol):
    """Who runs next in an environment (``Launcher``): ending a deploy releases the lock and
    launches the queued deploy that takes it."""

    def end(self, deploy: Deploy, *, live_sha: str | None = None) -> None: ...
    def start_queued(self, app: str, environment: str) -> str | None: ...
    def hold_for_convergence(self, deploy: Deploy) -> bool:
        """The diverged ``deploy`` takes the free lock for a convergence attempt; False if
        the environment is held (or no longer diverged by it)."""
        ...


class FleetLedger(Protocol):
    """Which release each host runs, from its own reports (``EnvironmentService``)."""

    def report(
        self, app: str, environment: str, reports: Sequence[HostRelease], keep: Sequence[str]
    ) -> None:
        """Record ``reports`` (``keep``: the environment's hosts now; others are dropped)."""


class DeployMetrics(Protocol):
    def deploy_finished(self, deploy: Deploy, duration_seconds: float | None) -> None: ...


class StatusBoard(Protocol):
    """The places outside Roadie that show deploys (``adapters/notify.py``). Each call is
    bounded by a short deadline and raises only ``RoadieError``s (``UnavailableError``)."""

    def started(self, app: AppConfig, notice: Notice) -> dict[str, object]:
        """Show ``notice`` (in progress) on its commit; what to keep for ``finished``."""
        ...

    def finished(self, app: AppConfig, notice: Notice, memo: Mapping[str, object]) -> None:
        """Show the deploy's end on its commit (``memo``: what ``started`` kept, maybe {})."""

    def chat(self, app: AppConfig, notice: Notice) -> None:
        """Tell the app's chat channel how the deploy ended."""


class DeployNotifier(Protocol):
    """Reports a deploy's start and end (``services/notify.py``); never raises."""

    def started(self, deploy: Deploy) -> None: ...
    def finished(self, deploy: Deploy) -> None: ...


class SecretSource(Protocol):
    def active(self, provider: str) -> list[str]: ...


class DeliveryLog(Protocol):
    def once(
        self,
        key: str,
        body_sha256: str,
        handler: Callable[[], dict[str, Any]],
        lambda_context: Any = None,
    ) -> Any: ...


class BranchHeads(Protocol):
    """The last pushed head of each repository branch, as push deliveries reported it.

    ``key`` names one branch of one repository at one provider (``services.webhooks.head_key``).
    """

    def record(
        self, key: str, *, sha: str, before: str, pushed_at: int | None, delivery_id: str
    ) -> bool:
        """Make ``sha`` the head of ``key`` if this push supersedes the recorded one (the rule
        is ``services.webhooks.supersedes``), in one conditional write; False if not."""
        ...

    def head(self, key: str) -> str | None:
        """The recorded head SHA of ``key`` (a consistent read), or None if none is."""
        ...


class AuditLog(Protocol):
    """The audit trail: every action on an app's environment, newest first."""

    def append(self, event: AuditEvent) -> None: ...
    def page(
        self,
        app: str,
        environment: str,
        *,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Events at or after ``since`` (ISO-8601), newest first; ``cursor`` is the opaque
        token a previous page returned for the same query (``InvalidCursorError`` if not)."""
        ...
