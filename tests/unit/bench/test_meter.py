"""bench.meter: AWS calls are counted for the thread that records them and no other; the tally
reads as the benchmarks print it. A botocore Stubber answers, so nothing leaves the process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import botocore.client
import botocore.session
import pytest
from botocore.stub import Stubber

from bench.meter import CallMeter, Calls, mean, quantiles

IDENTITY = {"UserId": "u", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/u"}


@pytest.fixture
def meter() -> Iterator[CallMeter[Calls]]:
    meter: CallMeter[Calls] = CallMeter()
    meter.install()
    try:
        yield meter
    finally:
        meter.uninstall()


@pytest.fixture
def sts() -> Iterator[Any]:
    """An STS client whose every GetCallerIdentity is answered by a stub."""
    client = botocore.session.get_session().create_client(
        "sts", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    with Stubber(client) as stubber:
        for _ in range(5):
            stubber.add_response("get_caller_identity", IDENTITY)
        yield client


def test_counts_only_the_calls_made_on_the_recording_thread(
    meter: CallMeter[Calls], sts: Any
) -> None:
    calls = Calls()
    with meter.recording(calls):
        sts.get_caller_identity()
        other = threading.Thread(target=sts.get_caller_identity)
        other.start()
        other.join()
        sts.get_caller_identity()
    sts.get_caller_identity()  # after the block: not recorded
    assert calls.count == {"GetCallerIdentity": 2}
    assert calls.total == 2 and calls.total_seconds > 0


def test_a_nested_recording_hands_back_to_the_outer_sink(meter: CallMeter[Calls], sts: Any) -> None:
    outer, inner = Calls(), Calls()
    with meter.recording(outer):
        with meter.recording(inner):
            sts.get_caller_identity()
        sts.get_caller_identity()
        sts.get_caller_identity()
    assert (inner.total, outer.total) == (1, 2)
    assert meter.sink() is None


def test_uninstall_puts_botocore_back() -> None:
    original = botocore.client.BaseClient._make_api_call
    meter: CallMeter[Calls] = CallMeter()
    meter.install()
    assert botocore.client.BaseClient._make_api_call is not original
    meter.uninstall()
    assert botocore.client.BaseClient._make_api_call is original


def test_the_tally_reads_most_frequent_first_with_or_without_milliseconds() -> None:
    calls = Calls()
    for op, seconds in (("PutItem", 0.005), ("GetItem", 0.010), ("GetItem", 0.020)):
        calls.record(None, op, {}, seconds)
    other = Calls()
    other.record(None, "SendCommand", {}, 0.001)
    calls.add(other)
    assert calls.by_operation() == "GetItem 2, PutItem 1, SendCommand 1"
    assert calls.by_operation(1) == "GetItem 2"
    assert (
        calls.by_operation(ms_unit=" ms")
        == "GetItem 2 (30 ms), PutItem 1 (5 ms), SendCommand 1 (1 ms)"
    )
    assert calls.by_operation(2, ms_unit="") == "GetItem 2 (30), PutItem 1 (5)"


def test_statistics_of_few_or_no_samples() -> None:
    assert mean([]) == 0.0
    assert mean([1.0, 2.0]) == 1.5
    assert quantiles([7.0]) == (7.0, 7.0, 7.0)
    p50, p90, p99 = quantiles([float(n) for n in range(1, 102)])
    assert (p50, p90, p99) == (51.0, 91.0, 100.0)
