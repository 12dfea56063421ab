"""DORA's four keys computed from one environment's deploy records in a window (pure).

The rules, exactly (README "DORA metrics"):

- **Deployment frequency**: deploys that ended ``succeeded`` in the window, and that count
  per day of the window.
- **Lead time for changes**: for each ``succeeded`` deploy, from its head commit's time
  (``commit_at``) to its ``finished_at``; the median. Deploys whose commit time is unknown are
  left out of the median and counted (``lead_time_unknown``), and so are rollbacks (a deploy
  with ``rollback_of``: it restores an old commit, it ships no change; ``lead_time_rollbacks``).
- **Change failure rate**: failures over changes. A *change* is a deploy that reached an
  outcome about the release it carried: ``succeeded``, ``failed``, ``timed_out``,
  ``rolled_back`` or ``diverged``. A *failure* is one that ended ``failed``, ``timed_out``,
  ``rolled_back`` or ``diverged``, or ``succeeded`` and was later rolled back (a later deploy
  in the window has ``rollback_of`` naming it, whatever that rollback's own outcome: someone
  judged the release bad). ``cancelled`` and ``superseded`` (a person or a newer push stopped
  it) and ``errored`` (Roadie's own infrastructure failed: it says nothing about the change)
  are neither, and are counted apart (``excluded``); queued and running deploys have no outcome.
- **Time to restore**: an incident opens when a failure ends (its ``finished_at``; the
  earliest of consecutive failures) and closes when the next ``succeeded`` deploy that is not
  itself a failure ends; the median of those durations. Incidents still open at ``now`` are
  counted (``unrestored``), not measured.

The domain never reads the clock: ``now`` and the records come in.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .model import Deploy
from .model import DeployStatus as S

CHANGE_STATUSES: frozenset[S] = frozenset(
    {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.ROLLED_BACK, S.DIVERGED}
)
FAILED_STATUSES: frozenset[S] = frozenset({S.FAILED, S.TIMED_OUT, S.ROLLED_BACK, S.DIVERGED})
EXCLUDED_STATUSES: frozenset[S] = frozenset({S.CANCELLED, S.SUPERSEDED, S.ERRORED})
MAX_DAYS = 365


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset) as an aware UTC datetime; None if absent or not
    a time. A time without an offset is read as UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def window_start(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


@dataclass(frozen=True)
class Incident:
    """A failed change and what restored the environment (None: nothing yet)."""

    failed_deploy_id: str
    opened_at: datetime
    restored_by: str | None = None
    restored_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.restored_at is None:
            return None
        return (self.restored_at - self.opened_at).total_seconds()


@dataclass(frozen=True)
class DoraReport:
    app: str
    environment: str
    days: int
    since: datetime
    until: datetime
    deploys_read: int
    successful: int
    changes: int
    failures: tuple[str, ...]
    excluded: dict[str, int]
    unfinished: int
    lead_times: tuple[float, ...]
    lead_time_unknown: int
    lead_time_rollbacks: int = 0
    incidents: tuple[Incident, ...] = field(default=())

    @property
    def deploys_per_day(self) -> float:
        return self.successful / self.days

    @property
    def change_failure_rate(self) -> float | None:
        return len(self.failures) / self.changes if self.changes else None

    @property
    def median_lead_time_seconds(self) -> float | None:
        return statistics.median(self.lead_times) if self.lead_times else None

    @property
    def median_time_to_restore_seconds(self) -> float | None:
        restored = [i.seconds for i in self.incidents if i.seconds is not None]
        return statistics.median(restored) if restored else None

    @property
    def unrestored(self) -> int:
        return sum(1 for i in self.incidents if i.restored_at is None)

    def to_json(self) -> dict[str, object]:
        def rounded(value: float | None, digits: int = 1) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "app": self.app,
            "environment": self.environment,
            "days": self.days,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "deployment_frequency": {
                "successful_deploys": self.successful,
                "per_day": round(self.deploys_per_day, 4),
            },
            "lead_time": {
                "median_seconds": rounded(self.median_lead_time_seconds),
                "measured": len(self.lead_times),
                "unknown_commit_time": self.lead_time_unknown,
                "rollbacks": self.lead_time_rollbacks,
            },
            "change_failure_rate": {
                "rate": rounded(self.change_failure_rate, 4),
                "failures": len(self.failures),
                "changes": self.changes,
                "failed_deploy_ids": list(self.failures),
                "excluded": dict(sorted(self.excluded.items())),
                "unfinished": self.unfinished,
            },
            "time_to_restore": {
                "median_seconds": rounded(self.median_time_to_restore_seconds),
                "restored": len(self.incidents) - self.unrestored,
                "unrestored": self.unrestored,
                "incidents": [
                    {
                        "failed_deploy_id": i.failed_deploy_id,
                        "opened_at": _iso(i.opened_at),
                        "restored_by": i.restored_by,
                        "restored_at": _iso(i.restored_at) if i.restored_at else None,
                        "seconds": rounded(i.seconds),
                    }
                    for i in self.incidents
                ],
            },
            "deploys_read": self.deploys_read,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _in_window(deploy: Deploy, since: datetime, until: datetime) -> bool:
    created = parse_time(deploy.created_at)
    return created is not None and since <= created <= until


def compute(
    app: str,
    environment: str,
    deploys: Iterable[Deploy],
    *,
    now: datetime,
    days: int,
) -> DoraReport:
    """The four keys over the deploys of ``app``/``environment`` created in the ``days`` up
    to ``now`` (records outside the window or of another environment are ignored)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}")
    since = window_start(now, days)
    read = list(deploys)
    mine = sorted(
        (
            d
            for d in read
            if d.app == app and d.environment == environment and _in_window(d, since, now)
        ),
        key=lambda d: (d.created_at, d.deploy_id),
    )
    rolled_back_later = {d.rollback_of for d in mine if d.rollback_of}
    failures: list[Deploy] = []
    excluded: dict[str, int] = {}
    changes = successful = unfinished = unknown = rollbacks = 0
    lead_times: list[float] = []
    for deploy in mine:
        status = deploy.status
        if status in EXCLUDED_STATUSES:
            excluded[status.value] = excluded.get(status.value, 0) + 1
            continue
        if status not in CHANGE_STATUSES:
            unfinished += 1
            continue
        changes += 1
        if status in FAILED_STATUSES or deploy.deploy_id in rolled_back_later:
            failures.append(deploy)
        if status is S.SUCCEEDED:
            successful += 1
            if deploy.rollback_of:
                rollbacks += 1  # an old commit restored: no change's lead time
                continue
            committed = parse_time(deploy.commit_at)
            finished = parse_time(deploy.finished_at)
            if committed is None or finished is None:
                unknown += 1
            else:
                lead_times.append(max(0.0, (finished - committed).total_seconds()))
    return DoraReport(
        app=app,
        environment=environment,
        days=days,
        since=since,
        until=now,
        deploys_read=len(read),
        successful=successful,
        changes=changes,
        failures=tuple(d.deploy_id for d in failures),
        excluded=excluded,
        unfinished=unfinished,
        lead_times=tuple(lead_times),
        lead_time_unknown=unknown,
        lead_time_rollbacks=rollbacks,
        incidents=_incidents(mine, {d.deploy_id for d in failures}),
    )


def _incidents(deploys: list[Deploy], failed: set[str]) -> tuple[Incident, ...]:
    """Walk the changes in the order they ended: a failure opens an incident (unless one is
    open), the next success that is not itself a failure closes it."""
    ended = sorted(
        (
            (finished, d)
            for d in deploys
            if d.status in CHANGE_STATUSES and (finished := parse_time(d.finished_at)) is not None
        ),
        key=lambda pair: (pair[0], pair[1].deploy_id),
    )
    incidents: list[Incident] = []
    open_incident: Incident | None = None
    for finished, deploy in ended:
        if deploy.deploy_id in failed:
            if open_incident is None:
                open_incident = Incident(deploy.deploy_id, finished)
        elif deploy.status is S.SUCCEEDED and open_incident is not None:
            incidents.append(
                Incident(
                    open_incident.failed_deploy_id,
                    open_incident.opened_at,
                    restored_by=deploy.deploy_id,
                    restored_at=finished,
                )
            )
            open_incident = None
    if open_incident is not None:
        incidents.append(open_incident)
    return tuple(incidents)
