"""The deploy lifecycle table."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import InvalidTransitionError
from chalicelib.domain.lifecycle import (
    ACTIVE_STATUSES,
    COMPLETED_STATUSES,
    TRANSITIONS,
    can_transition,
    check_transition,
)
from chalicelib.domain.model import DeployStatus as S


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


def test_a_queued_deploy_can_be_superseded_but_a_running_one_cannot() -> None:
    check_transition(S.QUEUED, S.SUPERSEDED)
    with pytest.raises(InvalidTransitionError, match="running to superseded"):
        check_transition(S.RUNNING, S.SUPERSEDED)
