"""bench.history at its smallest sizes (moto in process, a few dozen records): it runs, prints
the table, and its checks fail when a read goes beyond its page or its window."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from bench import history


def test_the_benchmark_runs_small_and_prints_bounded_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = dict(os.environ)
    assert history.main(["--sizes", "10,40", "--days", "60"]) == 0
    out = capsys.readouterr().out
    assert "items read per page bound at 40 vs 10 records: ratio 1.0" in out
    assert "each = the records in its window" in out and "FAILED" not in out
    assert dict(os.environ) == before  # the fake credentials are gone again


def sized(latest: int, dora: int, in_window: int = 5, in_environment: int = 40) -> history.Sized:
    def reads(scanned: int) -> history.Reads:
        return history.Reads(calls=["Query"], scanned=scanned, returned=scanned)

    return history.Sized(
        size=50,
        write_seconds=0.0,
        in_environment=in_environment,
        in_window=in_window,
        latest=reads(latest),
        dora=reads(dora),
        dora_answer={
            "deployment_frequency": {"successful_deploys": 0, "per_day": 0.0},
            "change_failure_rate": {"rate": None},
            "lead_time": {"median_seconds": None},
        },
        filtered=reads(in_environment),
    )


def test_the_checks_fail_when_a_read_is_not_bounded() -> None:
    good = sized(latest=20, dora=5)
    assert history.report([good], 30, 60)
    with pytest.raises(AssertionError, match="outside its window"):
        history.report([sized(latest=20, dora=6)], 30, 60)
    with pytest.raises(AssertionError, match="more than 20"):
        history.report([good, replace(good, latest=replace(good.latest, scanned=21))], 30, 60)
    scan = replace(good, dora=replace(good.dora, calls=["Scan"]))
    with pytest.raises(AssertionError, match="not a Query"):
        history.report([scan], 30, 60)
