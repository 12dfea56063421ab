"""domain/dora.py: the four keys from an environment's records, with the rules its docstring
states (which statuses count, what is left out and counted, how incidents open and close)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain import dora
from chalicelib.domain.model import Deploy, DeployStatus

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
S = DeployStatus


def at(hours_ago: float) -> str:
    moment = NOW - timedelta(hours=hours_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def record(
    deploy_id: str,
    status: DeployStatus,
    *,
    created: float,
    took: float = 0.25,
    commit: float | None = None,
    app: str = "shop",
    environment: str = "production",
    rollback_of: str | None = None,
) -> Deploy:
    """A deploy created ``created`` hours ago that ended ``took`` hours later (if it ended)."""
    ended = status not in (S.QUEUED, S.RUNNING)
    return Deploy(
        deploy_id=deploy_id,
        app=app,
        environment=environment,
        sha="a" * 40,
        requested_by="ann",
        requested_via="api",
        created_at=at(created),
        status=status,
        finished_at=at(created - took) if ended else None,
        commit_at=at(commit) if commit is not None else None,
        rollback_of=rollback_of,
    )


def compute(deploys: list[Deploy], days: int = 30) -> dora.DoraReport:
    return dora.compute("shop", "production", deploys, now=NOW, days=days)


def test_frequency_counts_successes_in_the_window_per_day() -> None:
    report = compute(
        [
            record("d-1", S.SUCCEEDED, created=48),
            record("d-2", S.SUCCEEDED, created=24),
            record("d-3", S.FAILED, created=12),
            record("d-old", S.SUCCEEDED, created=24 * 31),  # before the window
            record("d-other", S.SUCCEEDED, created=5, environment="staging"),
        ],
        days=10,
    )
    assert (report.successful, report.deploys_per_day) == (2, 0.2)
    assert report.to_json()["deployment_frequency"] == {"successful_deploys": 2, "per_day": 0.2}


def test_lead_time_is_the_median_from_commit_to_success_and_unknown_commits_are_counted() -> None:
    report = compute(
        [
            record("d-1", S.SUCCEEDED, created=10, took=1, commit=12),  # 3 h
            record("d-2", S.SUCCEEDED, created=8, took=1, commit=8),  # 1 h
            record("d-3", S.SUCCEEDED, created=6, took=1, commit=30),  # 25 h
            record("d-4", S.SUCCEEDED, created=4),  # no commit time
            record("d-5", S.FAILED, created=3, commit=5),  # not a success: no lead time
            record("d-6", S.SUCCEEDED, created=2, commit=500, rollback_of="d-5"),  # no change
        ]
    )
    assert report.lead_times == (3 * 3600.0, 3600.0, 25 * 3600.0)
    assert report.median_lead_time_seconds == 3 * 3600.0
    assert (report.lead_time_unknown, report.lead_time_rollbacks) == (1, 1)
    assert report.successful == 5
    assert report.to_json()["lead_time"] == {
        "median_seconds": 10800.0,
        "measured": 3,
        "unknown_commit_time": 1,
        "rollbacks": 1,
    }


def test_change_failure_rate_counts_exactly_the_statuses_the_rules_name() -> None:
    deploys = [
        record("d-ok", S.SUCCEEDED, created=20),
        record("d-failed", S.FAILED, created=19),
        record("d-timed-out", S.TIMED_OUT, created=18),
        record("d-rolled-back", S.ROLLED_BACK, created=17),
        record("d-diverged", S.DIVERGED, created=16),
        record("d-bad", S.SUCCEEDED, created=15),
        record("d-rollback", S.SUCCEEDED, created=14, rollback_of="d-bad"),
        record("d-cancelled", S.CANCELLED, created=13),
        record("d-superseded", S.SUPERSEDED, created=12),
        record("d-errored", S.ERRORED, created=11),
        record("d-running", S.RUNNING, created=1),
        record("d-queued", S.QUEUED, created=0.5),
    ]
    report = compute(deploys)
    assert report.failures == ("d-failed", "d-timed-out", "d-rolled-back", "d-diverged", "d-bad")
    assert report.changes == 7  # two successes, the rollback, four failed outcomes
    assert report.change_failure_rate == pytest.approx(5 / 7)
    assert report.excluded == {"cancelled": 1, "superseded": 1, "errored": 1}
    assert report.unfinished == 2
    assert report.successful == 3  # the rolled-back-later success still shipped


def test_a_rollback_outside_the_window_cannot_mark_a_deploy_and_no_changes_is_no_rate() -> None:
    report = compute([record("d-cancelled", S.CANCELLED, created=3)])
    assert (report.changes, report.change_failure_rate) == (0, None)
    assert report.to_json()["change_failure_rate"]["rate"] is None


def test_time_to_restore_runs_from_the_first_failure_to_the_next_success() -> None:
    report = compute(
        [
            record("d-1", S.SUCCEEDED, created=30, took=1),
            record("d-2", S.FAILED, created=20, took=1),  # opens at 19 h ago
            record("d-3", S.ROLLED_BACK, created=18, took=1),  # already open
            record("d-4", S.SUCCEEDED, created=16, took=1),  # closes at 15 h ago: 4 h
            record("d-5", S.SUCCEEDED, created=10, took=1),  # opens at 9 h ago (rolled back)
            record("d-6", S.SUCCEEDED, created=8, took=2, rollback_of="d-5"),  # closes 6 h: 3 h
            record("d-7", S.DIVERGED, created=3, took=1),  # open at NOW
        ]
    )
    assert [(i.failed_deploy_id, i.restored_by, i.seconds) for i in report.incidents] == [
        ("d-2", "d-4", 4 * 3600.0),
        ("d-5", "d-6", 3 * 3600.0),
        ("d-7", None, None),
    ]
    assert report.median_time_to_restore_seconds == 3.5 * 3600
    assert report.unrestored == 1
    body = report.to_json()["time_to_restore"]
    assert (body["restored"], body["unrestored"], body["median_seconds"]) == (2, 1, 12600.0)


def test_an_empty_window_answers_with_zeros_and_nones() -> None:
    body = compute([]).to_json()
    assert body["deployment_frequency"] == {"successful_deploys": 0, "per_day": 0.0}
    assert body["lead_time"]["median_seconds"] is None
    assert body["time_to_restore"]["median_seconds"] is None
    assert (body["since"], body["until"]) == (
        "2026-11-01T12:00:00.000Z",
        "2026-12-01T12:00:00.000Z",
    )


@pytest.mark.parametrize("days", [0, 366, -1])
def test_days_outside_1_to_365_are_refused(days: int) -> None:
    with pytest.raises(ValueError, match="days"):
        compute([], days=days)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T10:00:00-05:00", datetime(2026, 11, 30, 15, tzinfo=UTC)),
        ("2026-11-30T15:00:00Z", datetime(2026, 11, 30, 15, tzinfo=UTC)),
        ("2026-11-30T15:00:00", datetime(2026, 11, 30, 15, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_commit_times_in_any_offset_read_as_utc(text: str | None, expected: datetime) -> None:
    assert dora.parse_time(text) == expected
