"""Value objects: deploy requests, hosts, statuses and phases."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from .errors import ValidationError

SHA_RE = re.compile(r"^[0-9a-f]{40}\Z")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}\Z")
# A git ref we are willing to pass to `git ls-remote` as one argv element: no leading dash,
# no whitespace, no shell or revision-syntax characters.
REF_RE = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}\Z")


class DeployStatus(StrEnum):
    """Where a deploy stands. See ``lifecycle`` for the allowed moves."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ERRORED = "errored"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    DIVERGED = "diverged"  # ended with hosts on different releases (a rollback failed)


class Phase(StrEnum):
    """What a running deploy is doing; also the host script's ``phase`` parameter."""

    PENDING = "pending"
    STAGING = "staging"
    MIGRATING = "migrating"
    SWITCHING = "switching"
    VERIFYING = "verifying"
    POST_MIGRATING = "post_migrating"
    ROLLING_BACK = "rolling_back"
    DONE = "done"


class HostCommand(StrEnum):
    """The host script's phases (the SSM document's ``phase`` parameter)."""

    STAGE = "stage"
    MIGRATE = "migrate"
    SWITCH = "switch"
    VERIFY = "verify"
    POST_MIGRATE = "post_migrate"
    ROLLBACK = "rollback"

    @property
    def deploy_phase(self) -> Phase:
        return _COMMAND_PHASE[self]


_COMMAND_PHASE = {
    HostCommand.STAGE: Phase.STAGING,
    HostCommand.MIGRATE: Phase.MIGRATING,
    HostCommand.SWITCH: Phase.SWITCHING,
    HostCommand.VERIFY: Phase.VERIFYING,
    HostCommand.POST_MIGRATE: Phase.POST_MIGRATING,
    HostCommand.ROLLBACK: Phase.ROLLING_BACK,
}


class HostStatus(StrEnum):
    """A host's result for one command, as SSM reports it, folded to what we act on."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclass(frozen=True, order=True)
class Host:
    """One EC2 instance of an environment's fleet."""

    instance_id: str
    name: str = ""
    zone: str = ""


@dataclass(frozen=True)
class Requester:
    """Who asked for a deploy: a named API token or an SCM user."""

    name: str
    via: str  # "api", "github", "gitlab", "bitbucket"


@dataclass(frozen=True)
class DeployRequest:
    """A validated ask to deploy one SHA of an app to one environment."""

    app: str
    environment: str
    sha: str
    requested_by: Requester
    reason: str = ""
    ref: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not SHA_RE.match(self.sha):
            raise ValidationError(f"sha must be 40 lower-case hex characters, got {self.sha!r}")
        if not NAME_RE.match(self.app):
            raise ValidationError(f"app name {self.app!r} is not valid")
        if not NAME_RE.match(self.environment):
            raise ValidationError(f"environment name {self.environment!r} is not valid")


def env_key(app: str, environment: str) -> str:
    """The one string that names an app's environment in tables and locks."""
    return f"{app}#{environment}"


def is_sha(value: str) -> bool:
    return bool(SHA_RE.match(value))


def is_ref(value: str) -> bool:
    return bool(REF_RE.match(value))


@dataclass
class Deploy:
    """A deploy record: who asked for what, and how it went. Its status, phase and start/end
    times change only through ``lifecycle`` (which checks the transition table)."""

    deploy_id: str
    app: str
    environment: str
    sha: str
    requested_by: str
    requested_via: str
    created_at: str
    status: DeployStatus = DeployStatus.QUEUED
    phase: Phase = Phase.PENDING
    ref: str = ""
    reason: str = ""
    previous_sha: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    execution_arn: str | None = None
    step: int = 0
    step_count: int = 0
    host_count: int = 0
    batch_size: int = 0
    migration_host: str | None = None
    plan: dict[str, object] = field(default_factory=dict)
    phases: dict[str, dict[str, object]] = field(default_factory=dict)
    error: dict[str, object] | None = None
    trigger: dict[str, object] = field(default_factory=dict)
    force: bool = False
    rollback_of: str | None = None
    # the head commit's time (UTC ISO 8601) where the trigger or the source told it: DORA's
    # lead time for changes starts there (``domain/dora.py``)
    commit_at: str | None = None
    superseded_by: str | None = None
    cancel_requested_by: str | None = None
    # a diverged deploy's fleet: hosts off the environment's release, convergence attempts,
    # the next try and when the fleet converged (``domain/fleet.py``)
    fleet: dict[str, object] = field(default_factory=dict)
    # what the places that show deploys need again at its end (a GitHub deployment's id)
    notifications: dict[str, object] = field(default_factory=dict)
    version: int | None = None

    @property
    def env_key(self) -> str:
        return env_key(self.app, self.environment)


@dataclass(frozen=True)
class HostResult:
    """What one host did for one step of a rollout."""

    deploy_id: str
    instance_id: str
    step: int
    command: HostCommand
    status: HostStatus
    batch: int = 0
    exit_code: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    command_id: str = ""
    detail: str = ""
