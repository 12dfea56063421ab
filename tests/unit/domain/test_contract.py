"""The rollout's execution contract: each class reads what it writes, in the JSON the state
machine carries (tests/unit/test_statemachine.py ties the ASL's paths to the field names)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.contract import (
    DispatchTask,
    ExecutionInput,
    Finished,
    FinishTask,
    PollTask,
    RecoverTask,
    Route,
    RouteState,
    TaskError,
    Wave,
)
from chalicelib.domain.model import DeployStatus, Host
from chalicelib.domain.rollout import BatchSize, RolloutPolicy, plan_rollout

PLAN = plan_rollout(
    [Host(f"i-{n:04d}", f"web-{n}") for n in range(3)],
    RolloutPolicy(batch_size=BatchSize(2), run_post_migrations=True),
)
PARAMETERS = {"app": "shop", "sha": "a" * 40, "previousSha": ""}
WAVE = Wave(2, ("cmd-1", "cmd-2"), "2024-05-01T12:10:00.000Z")


def plain(plan: Any) -> Any:
    """A plan without host names (the execution input never carries them)."""
    return type(plan).from_json(plan.to_json(names=False))


def test_the_execution_input_is_the_json_the_first_version_started_executions_with() -> None:
    data = ExecutionInput("d-1", PLAN, PARAMETERS, poll_seconds=5).to_json()
    assert data == {
        "deploy_id": "d-1",
        "cursor": 0,
        "poll_seconds": 5,
        "plan": PLAN.to_dict(),
        "parameters": PARAMETERS,
    }
    assert "host_names" not in data["plan"]
    assert set(data["plan"]) == {"hosts", "migration_host", "batch_size", "steps", "rollback"}


def test_the_execution_input_reads_back() -> None:
    execution = ExecutionInput("d-1", plain(PLAN), PARAMETERS, poll_seconds=5, cursor=3)
    assert ExecutionInput.from_json(execution.to_json()) == execution


@pytest.mark.parametrize(
    "task",
    [
        DispatchTask("d-1", plain(PLAN), PARAMETERS, cursor=4),
        PollTask("d-1", plain(PLAN), PARAMETERS, WAVE),
        RecoverTask("d-1", plain(PLAN), PARAMETERS, 4, TaskError("AwsError", "throttled")),
        RecoverTask("d-1", plain(PLAN), PARAMETERS),
        FinishTask("d-1", DeployStatus.ERRORED, TaskError("States.TaskFailed", "boom")),
        FinishTask("d-1", DeployStatus.SUCCEEDED),
    ],
)
def test_each_task_reads_back_what_it_writes(task: Any) -> None:
    assert type(task).from_json(task.to_json()) == task


def test_tasks_read_the_payloads_the_state_machine_sends() -> None:
    execution = ExecutionInput("d-1", PLAN, PARAMETERS, poll_seconds=5).to_json()
    common = {k: execution[k] for k in ("deploy_id", "plan", "parameters")}
    dispatch = DispatchTask.from_json({**common, "cursor": 1})
    assert dispatch.plan.step_at(1) == PLAN.steps[1]
    poll = PollTask.from_json({**common, "wave": WAVE.to_json()})
    assert poll.wave == WAVE
    error = {"Error": "Lambda.Unknown", "Cause": "boom"}
    recover = RecoverTask.from_json({**common, "cursor": 2, "error": error})
    assert recover.error == TaskError("Lambda.Unknown", "boom")
    finish = FinishTask.from_json({"deploy_id": "d-1", "outcome": "timed_out"})
    assert (finish.outcome, finish.error) == (DeployStatus.TIMED_OUT, None)


def test_wave_and_route_answer_the_json_the_state_machine_selects() -> None:
    assert WAVE.to_json() == {
        "cursor": 2,
        "command_ids": ["cmd-1", "cmd-2"],
        "deadline": "2024-05-01T12:10:00.000Z",
    }
    assert Wave.from_json(WAVE.to_json()) == WAVE
    route = Route(RouteState.NEXT, 3, bake=30)
    assert route.to_json() == {"state": "next", "next": 3, "bake": 30}
    assert Route.from_json(route.to_json()) == route
    assert Finished("d-1", DeployStatus.FAILED).to_json() == {
        "deploy_id": "d-1",
        "status": "failed",
    }


@pytest.mark.parametrize("outcome", ["paused", "rolled_back", "queued", "superseded"])
def test_finish_accepts_only_the_outcomes_a_rollout_reaches(outcome: str) -> None:
    with pytest.raises(ValueError):
        FinishTask.from_json({"deploy_id": "d-1", "outcome": outcome})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ({"Error": "AwsError", "Cause": "x"}, TaskError("AwsError", "x")),
        ({"Cause": "only a cause"}, TaskError("", "only a cause")),
        ("not an object", TaskError()),
    ],
)
def test_a_task_error_reads_whatever_a_catch_put_there(
    raw: object, expected: TaskError | None
) -> None:
    assert TaskError.from_json(raw) == expected


def test_a_recovery_input_of_the_first_version_reads_as_its_rollback_hosts() -> None:
    rollback = PLAN.rollback.to_json()
    task = DispatchTask.from_json(
        {
            "deploy_id": "d-1",
            "plan": {"steps": [], "rollback": rollback},
            "parameters": {},
            "cursor": 0,
        }
    )
    assert task.plan.steps == ()
    assert task.plan.step_at(0) == PLAN.rollback
    assert [h.instance_id for h in task.plan.hosts] == list(PLAN.rollback.hosts)
