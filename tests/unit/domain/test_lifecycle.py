"""The deploy lifecycle: its table, the functions that are the only way a status changes, and
a scan of chalicelib/ proving nothing else writes a status, a phase or the start/end times."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chalicelib.domain import lifecycle
from chalicelib.domain.errors import InvalidTransitionError
from chalicelib.domain.lifecycle import (
    ACTIVE_STATUSES,
    COMPLETED_STATUSES,
    TRANSITIONS,
    UNSUCCESSFUL_STATUSES,
    can_transition,
    check_transition,
)
from chalicelib.domain.model import Deploy, Phase, Requester
from chalicelib.domain.model import DeployStatus as S

ROOT = Path(__file__).resolve().parents[3]
T0, T1, T2 = "2024-05-01T12:00:00.000Z", "2024-05-01T12:00:05.000Z", "2024-05-01T12:01:00.000Z"


def queued() -> Deploy:
    return lifecycle.queue(
        deploy_id="d-1",
        app="shop",
        environment="production",
        sha="a" * 40,
        requester=Requester("ann", "api"),
        now=T0,
        reason="fix",
        trigger={"delivery": "x"},
    )


def running() -> Deploy:
    deploy = queued()
    lifecycle.start(deploy, T1)
    return deploy


# --- the table --------------------------------------------------------------------------------


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(S)
    assert set(S) == ACTIVE_STATUSES | COMPLETED_STATUSES
    assert not ACTIVE_STATUSES & COMPLETED_STATUSES


def test_completed_deploys_never_move_again() -> None:
    for done in COMPLETED_STATUSES:
        for target in S:
            assert not can_transition(done, target)


def test_running_can_end_in_each_kind_of_failure_kept_apart() -> None:
    for end in (S.FAILED, S.ERRORED, S.TIMED_OUT, S.ROLLED_BACK, S.CANCELLED, S.SUCCEEDED):
        check_transition(S.RUNNING, end)


def test_diverged_is_an_unsuccessful_end_only_a_running_deploy_reaches() -> None:
    check_transition(S.RUNNING, S.DIVERGED)
    assert S.DIVERGED in COMPLETED_STATUSES and S.DIVERGED in UNSUCCESSFUL_STATUSES
    with pytest.raises(InvalidTransitionError, match="queued to diverged"):
        check_transition(S.QUEUED, S.DIVERGED)


def test_a_queued_deploy_can_be_superseded_but_a_running_one_cannot() -> None:
    check_transition(S.QUEUED, S.SUPERSEDED)
    with pytest.raises(InvalidTransitionError, match="running to superseded"):
        check_transition(S.RUNNING, S.SUPERSEDED)


# --- the functions ----------------------------------------------------------------------------


def test_queue_makes_a_queued_record_stamped_now() -> None:
    deploy = queued()
    assert (deploy.status, deploy.phase) == (S.QUEUED, Phase.PENDING)
    assert deploy.created_at == deploy.updated_at == T0
    assert deploy.started_at is None and deploy.finished_at is None
    assert (deploy.requested_by, deploy.requested_via) == ("ann", "api")
    assert (deploy.reason, deploy.trigger) == ("fix", {"delivery": "x"})


def test_start_runs_a_queued_deploy_and_stamps_its_start() -> None:
    deploy = running()
    assert deploy.status is S.RUNNING
    assert deploy.started_at == deploy.updated_at == T1
    assert deploy.created_at == T0


def test_start_refuses_a_deploy_already_running() -> None:
    deploy = running()
    with pytest.raises(InvalidTransitionError, match="running to running"):
        lifecycle.start(deploy, T2)
    assert deploy.started_at == T1


def test_supersede_ends_a_queued_deploy_naming_its_successor() -> None:
    deploy = queued()
    lifecycle.supersede(deploy, "d-2", T1)
    assert (deploy.status, deploy.superseded_by) == (S.SUPERSEDED, "d-2")
    assert deploy.finished_at == deploy.updated_at == T1


def test_supersede_refuses_a_running_deploy() -> None:
    deploy = running()
    with pytest.raises(InvalidTransitionError, match="running to superseded"):
        lifecycle.supersede(deploy, "d-2", T2)
    assert (deploy.status, deploy.superseded_by, deploy.finished_at) == (S.RUNNING, None, None)


def test_end_stamps_the_finish_and_records_the_error() -> None:
    deploy = running()
    error = lifecycle.failure("failed", "switching", "exit code 3", host="i-1")
    lifecycle.end(deploy, S.FAILED, T2, error=error)
    assert deploy.status is S.FAILED
    assert deploy.finished_at == deploy.updated_at == T2
    assert deploy.error == {
        "kind": "failed",
        "phase": "switching",
        "message": "exit code 3",
        "host": "i-1",
    }


def test_end_without_an_error_keeps_the_one_recorded() -> None:
    deploy = running()
    deploy.error = lifecycle.failure("failed", "staging", "exit code 1")
    lifecycle.end(deploy, S.FAILED, T2)
    assert deploy.error == {"kind": "failed", "phase": "staging", "message": "exit code 1"}


def test_a_succeeded_deploy_ends_in_phase_done_and_others_keep_theirs() -> None:
    good, bad = running(), running()
    lifecycle.enter_phase(good, Phase.SWITCHING, T1)
    lifecycle.enter_phase(bad, Phase.SWITCHING, T1)
    lifecycle.end(good, S.SUCCEEDED, T2)
    lifecycle.end(bad, S.TIMED_OUT, T2)
    assert (good.phase, bad.phase) == (Phase.DONE, Phase.SWITCHING)


def test_end_refuses_a_deploy_already_ended() -> None:
    deploy = running()
    lifecycle.end(deploy, S.SUCCEEDED, T1)
    with pytest.raises(InvalidTransitionError, match="succeeded to failed"):
        lifecycle.end(deploy, S.FAILED, T2)
    assert (deploy.status, deploy.finished_at) == (S.SUCCEEDED, T1)


@pytest.mark.parametrize("status", sorted(ACTIVE_STATUSES))
def test_end_refuses_a_status_that_is_not_an_end(status: S) -> None:
    with pytest.raises(InvalidTransitionError, match="not an end"):
        lifecycle.end(running(), status, T2)


def test_a_queued_deploy_can_end_cancelled_or_errored_but_not_succeeded() -> None:
    for end in (S.CANCELLED, S.ERRORED):
        deploy = queued()
        lifecycle.end(deploy, end, T1)
        assert deploy.status is end
    with pytest.raises(InvalidTransitionError, match="queued to succeeded"):
        lifecycle.end(queued(), S.SUCCEEDED, T1)


def test_enter_phase_moves_a_running_deploy_and_stamps_the_update() -> None:
    deploy = running()
    lifecycle.enter_phase(deploy, Phase.STAGING, T2)
    assert (deploy.phase, deploy.updated_at) == (Phase.STAGING, T2)
    lifecycle.enter_phase(deploy, Phase.ROLLING_BACK, T2)
    assert deploy.phase is Phase.ROLLING_BACK


def test_enter_phase_refuses_a_deploy_that_is_not_running() -> None:
    deploy = queued()
    with pytest.raises(InvalidTransitionError, match="queued deploy cannot enter phase staging"):
        lifecycle.enter_phase(deploy, Phase.STAGING, T1)
    ended = running()
    lifecycle.end(ended, S.FAILED, T1)
    with pytest.raises(InvalidTransitionError):
        lifecycle.enter_phase(ended, Phase.ROLLING_BACK, T2)
    assert (deploy.phase, ended.phase) == (Phase.PENDING, Phase.PENDING)


@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.DONE])
def test_enter_phase_refuses_the_phases_no_step_runs(phase: Phase) -> None:
    with pytest.raises(InvalidTransitionError, match=f"phase {phase.value} by a step"):
        lifecycle.enter_phase(running(), phase, T2)


# --- the guard: nothing else writes them ------------------------------------------------------

GUARDED = frozenset({"status", "phase", "started_at", "finished_at"})
LIFECYCLE = Path("chalicelib/domain/lifecycle.py")
# The persistence mapping restores a stored status into a Deploy; it changes none.
HYDRATION = Path("chalicelib/adapters")


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        found = []
        for target in node.targets:
            found += list(target.elts) if isinstance(target, ast.Tuple | ast.List) else [target]
        return found
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    return []


def lifecycle_writes(source: str, path: Path) -> list[str]:
    """Writes of a guarded field in ``source``: ``x.status = ...`` (an object setting its own
    ``self.status`` is not a deploy), ``setattr(x, "status", ...)``, and ``Deploy(status=...)``
    or ``replace(x, status=...)`` outside the persistence adapters."""
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        for target in _targets(node):
            if (
                isinstance(target, ast.Attribute)
                and target.attr in GUARDED
                and not (isinstance(target.value, ast.Name) and target.value.id == "self")
            ):
                found.append(f"{path}:{getattr(node, 'lineno', 0)}: .{target.attr} =")
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name == "setattr" and len(node.args) >= 2:
            field = node.args[1]
            if isinstance(field, ast.Constant) and field.value in GUARDED:
                found.append(f"{path}:{node.lineno}: setattr {field.value}")
        if name in ("Deploy", "replace") and HYDRATION not in path.parents:
            for keyword in node.keywords:
                if keyword.arg in GUARDED:
                    found.append(f"{path}:{node.lineno}: {name}({keyword.arg}=...)")
    return found


def test_only_the_lifecycle_module_writes_a_status_phase_or_start_and_end_times() -> None:
    paths = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
    offenders = []
    for path in paths:
        rel = path.relative_to(ROOT)
        if rel != LIFECYCLE:
            offenders += lifecycle_writes(path.read_text(), rel)
    assert offenders == []
    assert lifecycle_writes((ROOT / LIFECYCLE).read_text(), LIFECYCLE)  # the scan sees them


@pytest.mark.parametrize(
    "line",
    [
        "d.status = DeployStatus.FAILED",
        "d.finished_at = d.updated_at = now",
        "deploy.phase, other = Phase.DONE, 1",
        "d.started_at: str = now",
        "setattr(d, 'status', 'failed')",
        "Deploy(deploy_id='d', status=DeployStatus.RUNNING)",
        "dataclasses.replace(d, finished_at=now)",
    ],
)
def test_the_scan_catches_each_way_of_writing_them(line: str) -> None:
    assert lifecycle_writes(line, Path("chalicelib/services/x.py")), line


@pytest.mark.parametrize(
    "line",
    [
        "self.status = status",  # an HTTP error's own status code
        "HostResult(status=HostStatus.PENDING)",
        "d.updated_at = now",
        "if d.status is DeployStatus.QUEUED: pass",
    ],
)
def test_the_scan_lets_other_writes_be(line: str) -> None:
    assert lifecycle_writes(line, Path("chalicelib/services/x.py")) == []


def test_the_persistence_mapping_may_restore_a_status() -> None:
    line = "Deploy(deploy_id='d', status=DeployStatus(item.status))"
    assert lifecycle_writes(line, Path("chalicelib/adapters/dynamo.py")) == []
