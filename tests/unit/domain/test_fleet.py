"""The hosts' own reports of what they run, and the decisions on a diverged fleet."""

from __future__ import annotations

import pytest

from chalicelib.domain.fleet import (
    FleetState,
    HostRelease,
    converged_note,
    describe,
    divergence_note,
    fleet_state,
    is_mixed,
    merged,
    off_release,
    reported_release,
    retry_delay,
    uniform_release,
)

A, B = "a" * 40, "b" * 40


def host(n: int, sha: str, at: str = "t0") -> HostRelease:
    return HostRelease(f"i-{n}", sha, f"web-{n}", "d-1", at)


@pytest.mark.parametrize(
    ("stdout", "release"),
    [
        (f"roadie: switched\nCURRENT_REVISION={A}\n", A),
        ("CURRENT_REVISION=\n", ""),  # no release is live
        (f"CURRENT_REVISION={A}\nmore\nCURRENT_REVISION={B}\n", B),  # the last word counts
        ("roadie: error: killed\n", None),  # said nothing: not guessed
        ("CURRENT_REVISION=$(rm -rf /)\n", None),  # not a SHA: ignored
        (f"  CURRENT_REVISION={A}\n", None),  # a whole line, as printed
    ],
)
def test_the_release_a_host_reports_is_its_last_current_revision_line(
    stdout: str, release: str | None
) -> None:
    assert reported_release(stdout) == release


def test_newer_reports_replace_older_and_departed_hosts_are_dropped() -> None:
    fleet = (host(1, A), host(2, A), host(9, A))
    new = merged(fleet, [host(2, B, "t1")], keep=["i-1", "i-2"])
    assert [(r.instance_id, r.sha, r.reported_at) for r in new] == [
        ("i-1", A, "t0"),
        ("i-2", B, "t1"),
    ]


def test_a_fleet_is_mixed_when_a_host_is_off_the_environments_release() -> None:
    fleet = (host(1, B), host(2, A), host(3, A))
    assert off_release(fleet, A) == [host(1, B)]
    assert fleet_state(fleet, A) is FleetState.MIXED
    assert fleet_state(fleet[1:], A) is FleetState.CONVERGED
    assert fleet_state((), None) is FleetState.CONVERGED
    assert fleet_state((host(1, ""),), None) is FleetState.CONVERGED  # nothing live anywhere
    assert is_mixed(fleet, ["i-1", "i-2"]) and not is_mixed(fleet, ["i-2", "i-3"])
    assert uniform_release(fleet, ["i-2", "i-3"]) == A
    assert uniform_release(fleet, ["i-1", "i-2"]) is None
    assert uniform_release(fleet, ["i-2", "i-7"]) is None  # an unreported host is unknown
    assert describe([host(1, B), host(2, "")]) == f"web-1 on {B[:12]}, web-2 on no release"


def test_retries_back_off_exponentially_from_the_poll_interval_up_to_a_cap() -> None:
    assert [retry_delay(n, 5) for n in range(5)] == [5, 10, 20, 40, 80]
    assert retry_delay(40, 5) == 3600
    assert retry_delay(3, 5, cap_seconds=30) == 30
    assert retry_delay(0, 0) == 1  # never a busy loop


def test_the_deploy_record_notes_divergence_then_convergence() -> None:
    note = divergence_note([host(1, B)], A)
    assert note["state"] == "mixed" and note["release"] == A and note["attempts"] == 0
    assert note["off_release"] == [host(1, B).to_json()]
    done = converged_note({**note, "attempts": 2}, "t9", A, by="d-1")
    assert (done["state"], done["off_release"], done["attempts"]) == ("converged", [], 2)
    assert (done["converged_at"], done["converged_on"], done["converged_by"]) == ("t9", A, "d-1")
    assert HostRelease.from_json(host(1, B).to_json()) == host(1, B)
