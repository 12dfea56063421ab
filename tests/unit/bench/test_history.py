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
    assert history.main(["--sizes", "10,80", "--days", "90"]) == 0
    out = capsys.readouterr().out
    assert "ratio 1.0" in out and "FAILED" not in out
    assert "= the records in its window" in out or "records in its" in out
    assert dict(os.environ) == before  # the fake credentials are gone again


def test_the_checks_fail_when_a_read_is_not_bounded() -> None:
    with history.moto_tables():
        small = history.measure(80, 90, 30, seed=3)
    assert small.dora.scanned == small.in_window > 0
    assert history.report([small], 30, 90)
    overread = replace(small, dora=replace(small.dora, scanned=small.in_window + 1))
    with pytest.raises(AssertionError, match="outside its window"):
        history.report([overread], 30, 90)
    grown = replace(small, latest=replace(small.latest, scanned=21))
    with pytest.raises(AssertionError, match="more than 20"):
        history.report([small, grown], 30, 90)
