"""The app's health metrics on (in-process) moto CloudWatch: what the traffic recorder sends,
under which dimensions, in how many calls, and the dashboard PNG drawn back from them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack.dashboard_png import DeployMarker, build_figure, fetch_health, render_dashboard
from devstack.traffic import (
    MAX_DATUMS_PER_CALL,
    NAMESPACE,
    HealthRecorder,
    HostTarget,
    Outcome,
    prune_moto_metric_data,
)

REGION = "us-east-1"
V2, V3 = "2" * 40, "3" * 40
T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def moto_cloudwatch() -> Iterator[Any]:
    """moto in process (no server, nothing leaves the process) for this module."""
    import boto3
    import moto

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        with moto.mock_aws():
            yield boto3.client("cloudwatch", region_name=REGION)


@pytest.fixture
def cloudwatch(moto_cloudwatch: Any) -> Any:
    from moto.backends import get_backend

    get_backend("cloudwatch").reset()
    return moto_cloudwatch


class CountingCloudWatch:
    """Forwards to the moto client; counts PutMetricData calls and their sizes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sizes: list[int] = []

    def put_metric_data(self, **kwargs: Any) -> Any:
        self.sizes.append(len(kwargs["MetricData"]))
        return self.client.put_metric_data(**kwargs)


def host(name: str) -> HostTarget:
    return HostTarget("shop", "production", name, Path("/nonexistent") / name / "shop")


def total(cloudwatch: Any, metric: str, dims: dict[str, str], stat: str = "Sum") -> float:
    result = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {
                        "Namespace": NAMESPACE,
                        "MetricName": metric,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": 3600,
                    "Stat": stat,
                },
            }
        ],
        StartTime=T0 - timedelta(minutes=5),
        EndTime=T0 + timedelta(minutes=30),
    )["MetricDataResults"][0]
    return float(sum(result["Values"]))


def test_one_flush_is_one_call_counting_each_host_release_and_the_whole_environment(
    cloudwatch: Any,
) -> None:
    counting = CountingCloudWatch(cloudwatch)
    recorder = HealthRecorder(counting)
    # host a on v2: 3 requests, fast, all fine; host b on v3: 4 requests, slow, one 503
    for i, latency in enumerate((20.0, 22.0, 20.0)):
        recorder.record(host("i-a"), Outcome(V2, 200, latency, T0 + timedelta(seconds=i)))
    for i, (status, latency) in enumerate(((200, 170.0), (503, 171.0), (200, 170.0), (200, 172.0))):
        recorder.record(host("i-b"), Outcome(V3, status, latency, T0 + timedelta(seconds=i)))

    sent = recorder.flush()

    assert counting.sizes == [sent] and recorder.calls == 1
    assert recorder.flush() == 0 and counting.sizes == [sent], "nothing left, nothing sent"
    env = {"App": "shop", "Environment": "production"}
    assert total(cloudwatch, "Requests", {**env, "Host": "i-a", "Release": V2}) == 3
    assert total(cloudwatch, "Requests", {**env, "Host": "i-b", "Release": V3}) == 4
    assert total(cloudwatch, "Errors5xx", {**env, "Host": "i-b", "Release": V3}) == 1
    assert total(cloudwatch, "Errors5xx", {**env, "Release": V2}) == 0
    assert total(cloudwatch, "Errors5xx", {**env, "Release": V3}) == 1
    assert total(cloudwatch, "Requests", env) == 7
    assert total(cloudwatch, "Errors5xx", env) == 1
    # latency keeps every sample (Values/Counts), so averages and percentiles are real
    assert total(cloudwatch, "LatencyMs", {**env, "Release": V3}, "SampleCount") == 4
    assert total(cloudwatch, "LatencyMs", {**env, "Release": V3}, "Average") == pytest.approx(
        170.75
    )
    assert total(cloudwatch, "LatencyMs", env, "Maximum") == 172.0
    names = {
        tuple(sorted(d["Name"] for d in m["Dimensions"]))
        for m in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    }
    assert names == {
        ("App", "Environment"),
        ("App", "Environment", "Release"),
        ("App", "Environment", "Host", "Release"),
    }


def test_a_large_flush_is_chunked_at_the_api_limit(cloudwatch: Any) -> None:
    counting = CountingCloudWatch(cloudwatch)
    recorder = HealthRecorder(counting)
    # 400 hosts x 1 second: 400 x 3 per-host datums + 1 release + 1 environment set = 1206
    for n in range(400):
        recorder.record(host(f"i-{n:03}"), Outcome(V2, 200, 20.0, T0))

    sent = recorder.flush()

    assert sent == 400 * 3 + 2 * 3
    assert counting.sizes == [MAX_DATUMS_PER_CALL, sent - MAX_DATUMS_PER_CALL]
    assert total(cloudwatch, "Requests", {"App": "shop", "Environment": "production"}) == 400


def test_the_dashboard_png_shows_each_release_and_a_marker_per_deploy(
    cloudwatch: Any, tmp_path: Path
) -> None:
    recorder = HealthRecorder(cloudwatch)
    for second in range(20):  # v2 until T0+10 s, then v3 (slow, 1 in 10 failing)
        release = V2 if second < 10 else V3
        for n in range(10):
            bad = release == V3 and n == 9
            outcome = Outcome(
                release,
                503 if bad else 200,
                170.0 if release == V3 else 20.0,
                T0 + timedelta(seconds=second, milliseconds=n * 50),
            )
            recorder.record(host(f"i-{n % 2}"), outcome)
    recorder.flush()
    markers = [
        DeployMarker(T0 + timedelta(seconds=1), V2, "local-admin", "succeeded"),
        DeployMarker(T0 + timedelta(seconds=10), V3, "local-admin", "succeeded"),
    ]

    series = fetch_health(
        cloudwatch, "shop", "production", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)
    )
    figure = build_figure(series, markers, "shop/production", {V2: "v2", V3: "v3"})
    path = render_dashboard(series, markers, tmp_path / "out" / "dashboard.png", "shop/production")

    by_release = {s.release: s for s in series}
    assert set(by_release) == {V2, V3}
    assert by_release[V2].total_requests == 100 and by_release[V3].total_requests == 100
    assert by_release[V2].overall_error_rate == 0
    assert by_release[V3].overall_error_rate == pytest.approx(10.0)
    assert by_release[V3].mean_latency_ms == pytest.approx(170.0)
    assert by_release[V2].mean_latency_ms == pytest.approx(20.0)
    error_axes, latency_axes = figure.axes
    for axes in (error_axes, latency_axes):
        verticals = [line for line in axes.lines if len(set(line.get_xdata())) == 1]
        assert len(verticals) == len(markers)
    texts = [text.get_text() for text in error_axes.texts]
    assert texts == [f"{V2[:7]} local-admin succeeded", f"{V3[:7]} local-admin succeeded"]
    assert sorted(line.get_label() for line in error_axes.lines[:2]) == [
        f"v2 {V2[:7]}",
        f"v3 {V3[:7]}",
    ]
    body = path.read_bytes()
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and len(body) > 10_000


def test_old_datapoints_are_pruned_from_moto_so_a_long_serve_stays_bounded(cloudwatch: Any) -> None:
    recorder = HealthRecorder(cloudwatch)
    now = datetime.now(UTC)
    recorder.record(host("i-old"), Outcome(V2, 200, 20.0, now - timedelta(hours=4)))
    recorder.record(host("i-new"), Outcome(V2, 200, 20.0, now - timedelta(minutes=1)))
    sent = recorder.flush()

    dropped = prune_moto_metric_data(keep_seconds=3 * 3600)

    assert dropped == sent // 2, "everything the old request made, nothing of the new one"
    hosts = {
        d["Value"]
        for m in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
        for d in m["Dimensions"]
        if d["Name"] == "Host"
    }
    assert hosts == {"i-new"}
