"""The rollout state machine's ASL: its graph, its error handling and its Choice routing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import MISSING, fields
from typing import Any

import pytest

from chalicelib.domain.contract import (
    DispatchTask,
    ExecutionInput,
    FinishTask,
    PollTask,
    RecoverTask,
    Route,
    RouteState,
    TaskError,
    Wave,
)
from chalicelib.domain.model import DeployStatus, Host
from chalicelib.domain.rollout import RolloutPolicy, plan_rollout
from chalicelib.statemachine import FUNCTIONS, build_definition, definition_json

_LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:roadie-dev-"
ARNS = {name: _LAMBDA + name for name in FUNCTIONS}
RECORD_STATES = {
    "RecordSucceeded",
    "RecordFailed",
    "RecordTimedOut",
    "RecordErrored",
    "RecordCancelled",
}


def names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


# What an execution starts with (``domain/contract.py``).
EXECUTION_INPUT_KEYS = names(ExecutionInput)


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return build_definition(ARNS)


@pytest.fixture(scope="module")
def states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return definition["States"]


def transitions(state: dict[str, Any]) -> list[str]:
    """Every state name this state can move to (Next, Choices, Default, Catch)."""
    targets = []
    if "Next" in state:
        targets.append(state["Next"])
    targets += [rule["Next"] for rule in state.get("Choices", [])]
    if "Default" in state:
        targets.append(state["Default"])
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def walk(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, leaf-or-node) pair of a JSON document, keys included as path parts."""
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from walk(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from walk(child, (*path, index))


# --- graph ------------------------------------------------------------------------------------


def test_start_state_exists(definition: dict[str, Any]) -> None:
    assert definition["StartAt"] == "Dispatch"
    assert definition["StartAt"] in definition["States"]


def test_every_transition_names_an_existing_state(states: dict[str, dict[str, Any]]) -> None:
    for name, state in states.items():
        for target in transitions(state):
            assert target in states, f"{name} -> {target}"


def test_every_state_is_reachable_from_start(definition: dict[str, Any]) -> None:
    states = definition["States"]
    seen = {definition["StartAt"]}
    todo = [definition["StartAt"]]
    while todo:
        for target in transitions(states[todo.pop()]):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(states)


def test_every_state_either_moves_on_or_ends(states: dict[str, dict[str, Any]]) -> None:
    for name, state in states.items():
        if state["Type"] in ("Succeed", "Fail"):
            assert "Next" not in state and "End" not in state, name
        elif state["Type"] == "Choice":
            assert state["Choices"] and "Default" in state, name
        else:
            assert ("Next" in state) != bool(state.get("End")), name


def test_the_only_ends_are_success_and_the_deploy_failed_state(
    states: dict[str, dict[str, Any]],
) -> None:
    ends = {n for n, s in states.items() if s.get("End") or s["Type"] in ("Succeed", "Fail")}
    assert ends == {"RecordSucceeded", "DeployFailed"}
    assert states["DeployFailed"]["Type"] == "Fail"
    for name in ("RecordFailed", "RecordTimedOut", "RecordErrored", "RecordCancelled"):
        assert states[name]["Next"] == "DeployFailed"


def test_the_loop_is_dispatch_wait_poll_route(states: dict[str, dict[str, Any]]) -> None:
    assert states["Dispatch"]["Next"] == "WaitForHosts"
    assert states["WaitForHosts"]["Next"] == "Poll"
    assert states["Poll"]["Next"] == "Route"
    assert states["Advance"]["Next"] == "Dispatch"


# --- error handling ---------------------------------------------------------------------------


def test_the_loop_catches_everything_into_recover_and_recover_into_record_errored(
    states: dict[str, dict[str, Any]],
) -> None:
    tasks = {n for n, s in states.items() if s["Type"] == "Task"}
    assert tasks - RECORD_STATES == {"Dispatch", "Poll", "Recover"}
    for name in ("Dispatch", "Poll"):
        catch = states[name]["Catch"]
        assert catch[-1]["ErrorEquals"] == ["States.ALL"], name  # States.ALL must be last
        assert {c["Next"] for c in catch} == {"Recover"}, name
        assert all(c["ResultPath"] == "$.error" for c in catch), name
    recover_catch = states["Recover"]["Catch"]
    assert [c["Next"] for c in recover_catch] == ["RecordErrored"]
    assert recover_catch[0]["ResultPath"] is None  # keeps the first error for the record


def test_recover_rolls_back_or_records_errored(states: dict[str, dict[str, Any]]) -> None:
    rules = {r["StringEquals"]: r["Next"] for r in states["RecoverRoute"]["Choices"]}
    assert rules == {"rollback": "Advance", "cancelled": "RecordCancelled"}
    assert states["RecoverRoute"]["Default"] == "RecordErrored"


def test_recorders_do_not_catch_into_themselves(states: dict[str, dict[str, Any]]) -> None:
    for name in RECORD_STATES:
        assert "Catch" not in states[name], name


def test_every_task_retries_transient_lambda_errors(states: dict[str, dict[str, Any]]) -> None:
    for name, state in states.items():
        if state["Type"] != "Task":
            continue
        errors = {e for retrier in state["Retry"] for e in retrier["ErrorEquals"]}
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= errors, name
        assert "States.ALL" not in errors, name  # our own errors are not retried blindly


def test_recorders_discard_their_result(states: dict[str, dict[str, Any]]) -> None:
    for name in RECORD_STATES:
        assert "ResultPath" in states[name] and states[name]["ResultPath"] is None, name


# --- waits, query language --------------------------------------------------------------------


def test_waits_read_whole_seconds_from_the_input(states: dict[str, dict[str, Any]]) -> None:
    waits = {n: s for n, s in states.items() if s["Type"] == "Wait"}
    assert {n: s["SecondsPath"] for n, s in waits.items()} == {
        "WaitForHosts": "$.poll_seconds",
        "Bake": "$.poll.bake",
    }
    for name, state in waits.items():
        for key in ("Seconds", "Timestamp", "TimestampPath"):
            assert key not in state, name


def test_no_jsonata_anywhere(definition: dict[str, Any]) -> None:
    assert "QueryLanguage" not in definition
    for path, value in walk(definition):
        if path and path[-1] in ("QueryLanguage", "Arguments", "Output", "Assign", "Condition"):
            pytest.fail(f"JSONata field at {path}")
        if isinstance(value, str):
            assert "{%" not in value, path


def test_every_dynamic_parameter_is_a_jsonpath(definition: dict[str, Any]) -> None:
    for path, value in walk(definition):
        if path and isinstance(path[-1], str) and path[-1].endswith(".$"):
            assert isinstance(value, str) and value.startswith("$"), path


# --- the poll Choice --------------------------------------------------------------------------


def test_route_covers_every_poll_state(states: dict[str, dict[str, Any]]) -> None:
    route = states["Route"]
    assert route["Type"] == "Choice"
    rules = {r["StringEquals"]: r["Next"] for r in route["Choices"]}
    assert all(r["Variable"] == "$.poll.state" for r in route["Choices"])
    assert rules == {
        "running": "WaitForHosts",
        "next": "Bake",
        "rollback": "Advance",
        "done": "RecordSucceeded",
        "failed": "RecordFailed",
        "timed_out": "RecordTimedOut",
        "cancelled": "RecordCancelled",
    }
    assert route["Default"] == "UnexpectedPollState"


def _lookup(document: dict[str, Any], path: str) -> Any:
    """A JSONPath of plain ``$.a.b`` form; KeyError if a part is missing."""
    assert path == "$" or path.startswith("$.")
    node: Any = document
    for part in path.split(".")[1:]:
        node = node[part]
    return node


def route(choice: dict[str, Any], document: dict[str, Any]) -> str:
    """A tiny Choice evaluator: StringEquals only, first match wins, else Default."""
    for rule in choice["Choices"]:
        assert set(rule) == {"Variable", "StringEquals", "Next"}, rule
        try:
            value = _lookup(document, rule["Variable"])
        except KeyError:
            continue
        if isinstance(value, str) and value == rule["StringEquals"]:
            return str(rule["Next"])
    return str(choice["Default"])


@pytest.mark.parametrize(
    ("poll", "expected"),
    [
        ({"state": "running", "next": 3}, "WaitForHosts"),
        ({"state": "next", "next": 4}, "Bake"),
        ({"state": "rollback", "next": 9}, "Advance"),
        ({"state": "cancelled", "next": 3}, "RecordCancelled"),
        ({"state": "done", "next": 9}, "RecordSucceeded"),
        ({"state": "failed", "next": 3}, "RecordFailed"),
        ({"state": "timed_out", "next": 3}, "RecordTimedOut"),
        ({"state": "ok", "next": 4}, "UnexpectedPollState"),
        ({"state": "RUNNING", "next": 3}, "UnexpectedPollState"),
        ({"state": None, "next": 3}, "UnexpectedPollState"),
        ({"next": 3}, "UnexpectedPollState"),
    ],
)
def test_route_sends_each_poll_state_to_its_next_state(
    states: dict[str, dict[str, Any]], poll: dict[str, Any], expected: str
) -> None:
    document = {"deploy_id": "d-1", "cursor": 3, "poll": poll}
    assert route(states["Route"], document) == expected


def test_advance_moves_the_cursor_to_what_poll_said(states: dict[str, dict[str, Any]]) -> None:
    advance = states["Advance"]
    assert advance["Type"] == "Pass"
    assert "Result" not in advance  # a Pass without Result passes its (InputPath) input on
    assert (advance["InputPath"], advance["ResultPath"]) == ("$.poll.next", "$.cursor")


# --- data flow: every "x.$" path reads something that is there -----------------------------


def _guaranteed_keys(definition: dict[str, Any]) -> dict[str, set[str]]:
    """Top-level input keys certain to exist on entry to each state (meet over all edges)."""
    states = definition["States"]
    entry: dict[str, set[str]] = {definition["StartAt"]: set(EXECUTION_INPUT_KEYS)}
    changed = True
    while changed:
        changed = False
        for name, state in states.items():
            if name not in entry:
                continue
            keys = set(entry[name])
            result_path = state.get("ResultPath", "$")
            out = set(keys)
            if isinstance(result_path, str) and result_path.startswith("$."):
                out.add(result_path.split(".")[1])
            edges = [(state.get("Next"), out), (state.get("Default"), keys)]
            edges += [(rule["Next"], keys) for rule in state.get("Choices", [])]
            edges += [
                (c["Next"], keys | ({c["ResultPath"].split(".")[1]} if c["ResultPath"] else set()))
                for c in state.get("Catch", [])
            ]
            for target, available in edges:
                if target is None:
                    continue
                before = entry.get(target)
                after = set(available) if before is None else before & available
                if after != before:
                    entry[target] = after
                    changed = True
    return entry


def _read_paths(state: dict[str, Any]) -> Iterator[str]:
    for key in ("InputPath", "SecondsPath"):
        if isinstance(state.get(key), str):
            yield state[key]
    for rule in state.get("Choices", []):
        yield rule["Variable"]
    for path, value in walk(state.get("Parameters", {})):
        if path and isinstance(path[-1], str) and path[-1].endswith(".$"):
            yield value


def test_the_loop_reads_only_keys_that_exist(definition: dict[str, Any]) -> None:
    entry = _guaranteed_keys(definition)
    for name in ("Dispatch", "WaitForHosts", "Poll", "Route", "Advance"):
        for path in _read_paths(definition["States"][name]):
            assert path.split(".")[1] in entry[name], f"{name} reads {path}"


def test_every_state_reads_only_keys_that_exist_on_every_way_in(
    definition: dict[str, Any],
) -> None:
    entry = _guaranteed_keys(definition)
    for name, state in definition["States"].items():
        for path in _read_paths(state):
            assert path.split(".")[1] in entry[name], f"{name} reads {path}"


# --- payloads, function ARNs, serialisation --------------------------------------------------


def test_function_arns_appear_exactly_where_expected(definition: dict[str, Any]) -> None:
    where: dict[str, list[str]] = {arn: [] for arn in ARNS.values()}
    for path, value in walk(definition):
        if isinstance(value, str) and value in where:
            assert path[-2:] == ("Parameters", "FunctionName"), path
            where[value].append(path[1])
        elif isinstance(value, str):
            assert not any(arn in value for arn in ARNS.values()), path
    assert where[ARNS["rollout_dispatch"]] == ["Dispatch"]
    assert where[ARNS["rollout_poll"]] == ["Poll"]
    assert where[ARNS["rollout_recover"]] == ["Recover"]
    assert sorted(where[ARNS["rollout_finish"]]) == sorted(RECORD_STATES)


def test_every_task_invokes_lambda_through_the_sdk_integration(
    states: dict[str, dict[str, Any]],
) -> None:
    for name, state in states.items():
        if state["Type"] == "Task":
            assert state["Resource"] == "arn:aws:states:::lambda:invoke", name
            assert set(state["Parameters"]) == {"FunctionName", "Payload"}, name


def test_dispatch_and_poll_payloads_and_results(states: dict[str, dict[str, Any]]) -> None:
    common = {"deploy_id.$": "$.deploy_id", "plan.$": "$.plan", "parameters.$": "$.parameters"}
    assert states["Dispatch"]["Parameters"]["Payload"] == {**common, "cursor.$": "$.cursor"}
    assert states["Dispatch"]["ResultPath"] == "$.wave"
    assert states["Dispatch"]["ResultSelector"] == {
        "cursor.$": "$.Payload.cursor",
        "command_ids.$": "$.Payload.command_ids",
        "deadline.$": "$.Payload.deadline",
    }
    assert states["Poll"]["Parameters"]["Payload"] == {**common, "wave.$": "$.wave"}
    assert states["Poll"]["ResultPath"] == "$.poll"
    assert states["Poll"]["ResultSelector"] == {
        "state.$": "$.Payload.state",
        "next.$": "$.Payload.next",
        "bake.$": "$.Payload.bake",
    }


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("RecordSucceeded", "succeeded"),
        ("RecordFailed", "failed"),
        ("RecordTimedOut", "timed_out"),
        ("RecordErrored", "errored"),
        ("RecordCancelled", "cancelled"),
    ],
)
def test_each_recorder_tells_finish_its_outcome(
    states: dict[str, dict[str, Any]], state: str, outcome: str
) -> None:
    payload = states[state]["Parameters"]["Payload"]
    assert payload["outcome"] == outcome
    assert payload["deploy_id.$"] == "$.deploy_id"
    assert ("error.$" in payload) == (outcome == "errored")


def test_definition_is_json_serialisable_and_round_trips(definition: dict[str, Any]) -> None:
    assert json.loads(json.dumps(definition)) == definition
    assert json.loads(definition_json(ARNS)) == definition


def test_definition_is_deterministic() -> None:
    assert build_definition(ARNS) == build_definition(dict(reversed(list(ARNS.items()))))
    assert definition_json(ARNS) == definition_json(ARNS)


def test_building_does_not_share_mutable_parts_between_calls() -> None:
    # Checked by identity: mutating a shared list here would poison every later test.
    first, second = build_definition(ARNS), build_definition(ARNS)
    for part in ("Retry", "Catch"):
        assert first["States"]["Dispatch"][part] is not second["States"]["Dispatch"][part]
        assert first["States"]["Dispatch"][part] is not first["States"]["Poll"][part]


def test_a_missing_function_arn_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        build_definition({k: v for k, v in ARNS.items() if k != "rollout_poll"})
    assert FUNCTIONS == ("rollout_dispatch", "rollout_poll", "rollout_finish", "rollout_recover")


# --- the typed contract: every JSONPath names a field of domain/contract.py -----------------

# What a state's ResultPath holds: the answer class its ResultSelector selects, or (``error``)
# what a Catch puts there.
RESULTS: dict[str, type] = {"wave": Wave, "poll": Route, "error": TaskError}
PAYLOADS: dict[str, type] = {
    "Dispatch": DispatchTask,
    "Poll": PollTask,
    "Recover": RecoverTask,
    **{name: FinishTask for name in RECORD_STATES},
}


def _document_paths(definition: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(state, JSONPath) for every path into the state document: reads and ResultPaths (not
    the ResultSelectors, which read the Lambda's answer)."""
    for name, state in definition["States"].items():
        for path in _read_paths(state):
            yield name, path
        for key in ("ResultPath",):
            if isinstance(state.get(key), str):
                yield name, state[key]
        for catcher in state.get("Catch", []):
            if catcher["ResultPath"]:
                yield name, catcher["ResultPath"]


def test_every_path_names_an_execution_input_field_or_a_result_field(
    definition: dict[str, Any],
) -> None:
    top = EXECUTION_INPUT_KEYS | set(RESULTS)
    seen = set()
    for name, path in _document_paths(definition):
        parts = path.split(".")[1:]
        assert parts and parts[0] in top, f"{name}: {path}"
        if len(parts) > 1:
            assert RESULTS.get(parts[0]) not in (None, TaskError), f"{name}: {path}"
            assert parts[1] in names(RESULTS[parts[0]]), f"{name}: {path}"
            assert len(parts) == 2, f"{name}: {path}"
        seen.add(path)
    # the paths a rename would break are all among them
    assert {"$.cursor", "$.poll_seconds", "$.plan", "$.parameters", "$.deploy_id"} <= seen
    assert {"$.wave", "$.poll", "$.error", "$.poll.state", "$.poll.next", "$.poll.bake"} <= seen


def test_each_result_selector_selects_exactly_its_answer_classes_fields(
    states: dict[str, dict[str, Any]],
) -> None:
    selecting = {n: s for n, s in states.items() if "ResultSelector" in s}
    assert set(selecting) == {"Dispatch", "Poll", "Recover"}
    for name, state in selecting.items():
        answer = RESULTS[state["ResultPath"].split(".")[1]]
        expected = {f"{field}.$": f"$.Payload.{field}" for field in names(answer)}
        assert state["ResultSelector"] == expected, name


def _required(cls: type) -> set[str]:
    return {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}


def test_each_lambda_payload_has_its_task_classes_fields(
    states: dict[str, dict[str, Any]],
) -> None:
    for name, task in PAYLOADS.items():
        payload = states[name]["Parameters"]["Payload"]
        keys = {key.removesuffix(".$") for key in payload}
        assert _required(task) <= keys <= names(task), name
        for key, value in payload.items():
            if key.endswith(".$"):  # each field is read from the same name in the document
                assert value == f"$.{key.removesuffix('.$')}", f"{name}: {key}"


def _evaluate(payload: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """What Step Functions sends: ``x.$`` keys read the document, others are literal."""
    return {
        key.removesuffix(".$"): _lookup(document, value) if key.endswith(".$") else value
        for key, value in payload.items()
    }


def test_the_lambdas_read_what_the_state_machine_sends_them(
    states: dict[str, dict[str, Any]],
) -> None:
    plan = plan_rollout([Host("i-0001"), Host("i-0002")], RolloutPolicy())
    execution = ExecutionInput("d-1", plan, {"sha": "a" * 40}, poll_seconds=5, cursor=2)
    wave = Wave(2, ("cmd-1",), "2024-05-01T12:10:00.000Z")
    route = Route(RouteState.NEXT, 3, bake=30)
    error = TaskError("AwsError", "throttled")
    document = {
        **execution.to_json(),
        "wave": wave.to_json(),
        "poll": route.to_json(),
        "error": error.to_json(),
    }
    dispatch = DispatchTask.from_json(
        _evaluate(states["Dispatch"]["Parameters"]["Payload"], document)
    )
    assert (dispatch.deploy_id, dispatch.cursor, dispatch.plan) == ("d-1", 2, execution.plan)
    poll = PollTask.from_json(_evaluate(states["Poll"]["Parameters"]["Payload"], document))
    assert (poll.wave, poll.parameters) == (wave, execution.parameters)
    recover = RecoverTask.from_json(_evaluate(states["Recover"]["Parameters"]["Payload"], document))
    assert (recover.cursor, recover.error) == (2, error)
    finish = FinishTask.from_json(
        _evaluate(states["RecordErrored"]["Parameters"]["Payload"], document)
    )
    assert (finish.outcome, finish.error) == (DeployStatus.ERRORED, error)
    # Advance moves the cursor where the route said; Bake waits what it said
    assert _lookup(document, states["Advance"]["InputPath"]) == route.next
    assert _lookup(document, states["Bake"]["SecondsPath"]) == route.bake
    assert _lookup(document, states["WaitForHosts"]["SecondsPath"]) == execution.poll_seconds


def test_the_routes_cover_every_route_state(states: dict[str, dict[str, Any]]) -> None:
    routed = {r["StringEquals"] for r in states["Route"]["Choices"]}
    assert routed == {s.value for s in RouteState} - {RouteState.ERRORED.value}
    recovered = {r["StringEquals"] for r in states["RecoverRoute"]["Choices"]}
    assert recovered == {RouteState.ROLLBACK.value, RouteState.CANCELLED.value}
    assert states["RecoverRoute"]["Default"] == "RecordErrored"  # ``errored`` and anything else


def test_each_recorder_reports_an_outcome_finish_accepts(
    states: dict[str, dict[str, Any]],
) -> None:
    for name in RECORD_STATES:
        outcome = states[name]["Parameters"]["Payload"]["outcome"]
        assert FinishTask("d-1", DeployStatus(outcome)).outcome.value == outcome, name
