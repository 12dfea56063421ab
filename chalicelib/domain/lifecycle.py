"""The deploy lifecycle as a table: which status may follow which, and the named groups."""

from __future__ import annotations

from .errors import InvalidTransitionError
from .model import DeployStatus as S

ACTIVE_STATUSES: frozenset[S] = frozenset({S.QUEUED, S.RUNNING})
COMPLETED_STATUSES: frozenset[S] = frozenset(set(S) - ACTIVE_STATUSES)
# Outcomes where the fleet did not end on the requested release.
UNSUCCESSFUL_STATUSES: frozenset[S] = frozenset(
    {S.FAILED, S.ERRORED, S.TIMED_OUT, S.CANCELLED, S.ROLLED_BACK}
)

TRANSITIONS: dict[S, frozenset[S]] = {
    S.QUEUED: frozenset({S.RUNNING, S.SUPERSEDED, S.CANCELLED, S.ERRORED}),
    S.RUNNING: frozenset(
        {S.SUCCEEDED, S.FAILED, S.ERRORED, S.TIMED_OUT, S.CANCELLED, S.ROLLED_BACK}
    ),
    **{status: frozenset() for status in COMPLETED_STATUSES},
}


def can_transition(current: S, new: S) -> bool:
    return new in TRANSITIONS[current]


def check_transition(current: S, new: S) -> None:
    """Raise ``InvalidTransitionError`` unless ``current -> new`` is in the table."""
    if not can_transition(current, new):
        raise InvalidTransitionError(f"a deploy cannot go from {current.value} to {new.value}")


def is_active(status: S) -> bool:
    return status in ACTIVE_STATUSES
