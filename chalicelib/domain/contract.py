"""The rollout's execution contract: the state machine's input, what each task Lambda receives
and what it answers, as frozen dataclasses.

The JSON field names are the dataclass field names: the state machine's JSONPaths
(``$.plan``, ``$.cursor``, ``$.wave``, ``$.Payload.state``, ...) read them, and
tests/unit/test_statemachine.py ties the two. app.py turns an event into one of these with
``from_json`` and an answer back with ``to_json``; nothing in between reads the raw event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .model import DeployStatus
from .rollout import RolloutPlan

# what the orchestrator answers for an execution it no longer knows (ExecutionDoesNotExist: the
# local stack restarted, or the history expired): the reconciler treats it as a stopped one
EXECUTION_GONE = "GONE"


class RouteState(StrEnum):
    """Where the rollout goes after a poll (or a recover): the ``Route`` Choice's cases."""

    RUNNING = "running"  # the step's commands are not done: wait and poll again
    NEXT = "next"  # bake, then dispatch the step at ``next``
    ROLLBACK = "rollback"  # dispatch the rollback step (``next`` is its cursor)
    DONE = "done"  # every step succeeded (or the rollback did)
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    ERRORED = "errored"  # recover only: end ``errored`` (the Choice's Default)


# What the ``Record*`` states tell finish: the outcome the rollout reached.
OUTCOMES: frozenset[DeployStatus] = frozenset(
    {
        DeployStatus.SUCCEEDED,
        DeployStatus.FAILED,
        DeployStatus.TIMED_OUT,
        DeployStatus.ERRORED,
        DeployStatus.CANCELLED,
    }
)


def _parameters(data: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in data.items()}


@dataclass(frozen=True)
class ExecutionInput:
    """What an execution starts with. The states add ``wave``, ``poll`` and ``error``."""

    deploy_id: str
    plan: RolloutPlan
    parameters: Mapping[str, str]  # the SSM document's, shared by every step
    poll_seconds: int
    cursor: int = 0  # the step to dispatch first (a recovery plan's 0 is its rollback)

    def to_json(self) -> dict[str, Any]:
        return {
            "deploy_id": self.deploy_id,
            "cursor": self.cursor,
            "poll_seconds": self.poll_seconds,
            "plan": self.plan.to_json(names=False),
            "parameters": dict(self.parameters),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecutionInput:
        return cls(
            deploy_id=str(data["deploy_id"]),
            plan=RolloutPlan.from_json(data["plan"]),
            parameters=_parameters(data["parameters"]),
            poll_seconds=int(data["poll_seconds"]),
            cursor=int(data.get("cursor", 0)),
        )


@dataclass(frozen=True)
class Wave:
    """One step's commands in flight: Dispatch's answer (``$.wave``), Poll's input."""

    cursor: int
    command_ids: tuple[str, ...]  # one per chunk of at most 50 hosts, in chunk order
    deadline: str  # ISO time after which a host that has not answered timed out

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "command_ids": list(self.command_ids),
            "deadline": self.deadline,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Wave:
        return cls(
            cursor=int(data["cursor"]),
            command_ids=tuple(str(c) for c in data["command_ids"]),
            deadline=str(data["deadline"]),
        )


@dataclass(frozen=True)
class Route:
    """Poll's and Recover's answer (``$.poll``): the Choice reads ``state``, Advance ``next``,
    Bake ``bake``."""

    state: RouteState
    next: int
    bake: int = 0  # seconds to watch a verified batch before the next one

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "next": self.next, "bake": self.bake}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Route:
        return cls(RouteState(data["state"]), int(data["next"]), int(data.get("bake", 0)))


@dataclass(frozen=True)
class TaskError:
    """What a Catch put in ``$.error``: Step Functions' ``{"Error": ..., "Cause": ...}``."""

    error: str = ""
    cause: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"Error": self.error, "Cause": self.cause}

    @classmethod
    def from_json(cls, data: Any) -> TaskError | None:
        """None when there is no error; anything but an object reads as an empty one."""
        if data is None:
            return None
        if not isinstance(data, Mapping):
            return cls()
        return cls(str(data.get("Error", "")), str(data.get("Cause", "")))


@dataclass(frozen=True)
class DispatchTask:
    """Dispatch's payload: send the step at ``cursor``."""

    deploy_id: str
    plan: RolloutPlan
    parameters: Mapping[str, str]
    cursor: int

    def to_json(self) -> dict[str, Any]:
        return {
            "deploy_id": self.deploy_id,
            "plan": self.plan.to_json(names=False),
            "parameters": dict(self.parameters),
            "cursor": self.cursor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DispatchTask:
        return cls(
            deploy_id=str(data["deploy_id"]),
            plan=RolloutPlan.from_json(data["plan"]),
            parameters=_parameters(data["parameters"]),
            cursor=int(data["cursor"]),
        )


@dataclass(frozen=True)
class PollTask:
    """Poll's payload: is the ``wave`` done, and where next?"""

    deploy_id: str
    plan: RolloutPlan
    parameters: Mapping[str, str]
    wave: Wave

    def to_json(self) -> dict[str, Any]:
        return {
            "deploy_id": self.deploy_id,
            "plan": self.plan.to_json(names=False),
            "parameters": dict(self.parameters),
            "wave": self.wave.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PollTask:
        return cls(
            deploy_id=str(data["deploy_id"]),
            plan=RolloutPlan.from_json(data["plan"]),
            parameters=_parameters(data["parameters"]),
            wave=Wave.from_json(data["wave"]),
        )


@dataclass(frozen=True)
class RecoverTask:
    """Recover's payload: an AWS or code ``error`` happened at ``cursor``."""

    deploy_id: str
    plan: RolloutPlan
    parameters: Mapping[str, str]
    cursor: int = 0
    error: TaskError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "deploy_id": self.deploy_id,
            "plan": self.plan.to_json(names=False),
            "parameters": dict(self.parameters),
            "cursor": self.cursor,
            "error": self.error.to_json() if self.error else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecoverTask:
        return cls(
            deploy_id=str(data["deploy_id"]),
            plan=RolloutPlan.from_json(data["plan"]),
            parameters=_parameters(data["parameters"]),
            cursor=int(data.get("cursor", 0)),
            error=TaskError.from_json(data.get("error")),
        )


@dataclass(frozen=True)
class FinishTask:
    """Finish's payload (from a ``Record*`` state): the ``outcome`` the rollout reached."""

    deploy_id: str
    outcome: DeployStatus
    error: TaskError | None = None  # RecordErrored only

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"{self.outcome.value} is not a rollout outcome")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"deploy_id": self.deploy_id, "outcome": self.outcome.value}
        if self.error is not None:
            data["error"] = self.error.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FinishTask:
        return cls(
            deploy_id=str(data["deploy_id"]),
            outcome=DeployStatus(data["outcome"]),
            error=TaskError.from_json(data.get("error")),
        )


@dataclass(frozen=True)
class Finished:
    """Finish's answer (discarded by the state machine; for logs and tests)."""

    deploy_id: str
    status: DeployStatus

    def to_json(self) -> dict[str, Any]:
        return {"deploy_id": self.deploy_id, "status": self.status.value}
