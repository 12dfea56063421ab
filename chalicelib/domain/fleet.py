"""Which release each host runs, from the hosts' own reports, and the decisions on a fleet
whose hosts run different releases (a rollout that ended ``diverged``).

The host script ends every phase, success or failure, with one ``CURRENT_REVISION=<sha>`` line
(empty: no release is live). The rollout records each host's last report on the environment;
a fleet is ``converged`` when every reported host runs the environment's release, ``mixed``
otherwise. A diverged environment is retried (a rollback-only recovery) with exponential
backoff from the poll interval, capped, until its hosts report one release.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .model import SHA_RE

REPORT_PREFIX = "CURRENT_REVISION="
RETRY_CAP_SECONDS = 3600  # a diverged fleet is retried at least hourly, forever


class FleetState(StrEnum):
    CONVERGED = "converged"  # every reported host runs the environment's release
    MIXED = "mixed"  # some host runs another release (or none)


@dataclass(frozen=True)
class HostRelease:
    """What one host said it runs, when, and during which deploy."""

    instance_id: str
    sha: str  # "" when no release is live on the host
    name: str = ""
    deploy_id: str = ""
    reported_at: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "sha": self.sha,
            "deploy_id": self.deploy_id,
            "reported_at": self.reported_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostRelease:
        return cls(
            instance_id=str(data["instance_id"]),
            sha=str(data.get("sha") or ""),
            name=str(data.get("name") or ""),
            deploy_id=str(data.get("deploy_id") or ""),
            reported_at=str(data.get("reported_at") or ""),
        )


def reported_release(stdout: str) -> str | None:
    """The release a host's script said it runs at the end of a phase (its last
    ``CURRENT_REVISION=`` line); None if it said nothing (it never ran, or was killed)."""
    found = None
    for line in stdout.splitlines():
        if line.startswith(REPORT_PREFIX):
            value = line[len(REPORT_PREFIX) :].strip()
            if value == "" or SHA_RE.match(value):
                found = value
    return found


def merged(
    fleet: Iterable[HostRelease],
    reports: Iterable[HostRelease],
    keep: Iterable[str] | None = None,
) -> tuple[HostRelease, ...]:
    """``fleet`` updated by newer ``reports`` (one entry per host, by name); ``keep``: the
    environment's hosts now (entries of other, departed instances are dropped)."""
    kept = None if keep is None else set(keep)
    by_id = {r.instance_id: r for r in fleet if kept is None or r.instance_id in kept}
    for report in reports:
        by_id[report.instance_id] = report
    return tuple(sorted(by_id.values(), key=lambda r: (r.name or r.instance_id, r.instance_id)))


def off_release(fleet: Iterable[HostRelease], sha: str | None) -> list[HostRelease]:
    """The hosts not running ``sha`` (the environment's release; None: no release yet)."""
    return [r for r in fleet if r.sha != (sha or "")]


def fleet_state(fleet: Iterable[HostRelease], sha: str | None) -> FleetState:
    return FleetState.MIXED if off_release(fleet, sha) else FleetState.CONVERGED


def is_mixed(fleet: Iterable[HostRelease], hosts: Iterable[str]) -> bool:
    """Whether ``hosts`` (those reported among them) run more than one release."""
    wanted = set(hosts)
    return len({r.sha for r in fleet if r.instance_id in wanted}) > 1


def uniform_release(fleet: Iterable[HostRelease], hosts: Iterable[str]) -> str | None:
    """The one release every one of ``hosts`` reported, or None (mixed, or one unreported)."""
    by_id = {r.instance_id: r.sha for r in fleet}
    shas = {by_id.get(h) for h in hosts}
    if len(shas) != 1:
        return None
    (sha,) = shas
    return sha


def retry_delay(attempt: int, base_seconds: int, cap_seconds: int = RETRY_CAP_SECONDS) -> int:
    """Seconds to wait before convergence attempt ``attempt + 1`` (after ``attempt`` tries;
    0 tries: the first wait): ``base * 2**attempt``, capped."""
    base = max(1, base_seconds)
    return min(cap_seconds, base * 2 ** min(attempt, 32))


def describe(hosts: Iterable[HostRelease]) -> str:
    """``shop-production-1 on 1a2b3c4d5e6f, shop-production-2 on no release``."""
    return ", ".join(
        f"{r.name or r.instance_id} on {r.sha[:12] if r.sha else 'no release'}" for r in hosts
    )


def divergence_note(off: Iterable[HostRelease], release: str | None) -> dict[str, object]:
    """A diverged deploy's ``fleet``: the hosts off the environment's ``release``, and no
    convergence attempt yet (the reconciler's next run makes the first)."""
    return {
        "state": FleetState.MIXED.value,
        "release": release or "",
        "off_release": [r.to_json() for r in off],
        "attempts": 0,
        "next_try_at": None,
    }


def converged_note(note: Mapping[str, object], at: str, sha: str, by: str) -> dict[str, object]:
    """The ``fleet`` of a diverged deploy once every host reports ``sha`` (``by``: the deploy
    whose reports showed it: the diverged one's own rollback retried, or a forced deploy)."""
    return {
        **note,
        "state": FleetState.CONVERGED.value,
        "off_release": [],
        "next_try_at": None,
        "converged_at": at,
        "converged_on": sha,
        "converged_by": by,
    }
