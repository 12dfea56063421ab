"""The traffic generator runs each host's own release: v2's handler is quick and healthy, v3's
(the demo's bad release) is slower and fails 1 request in 10; a host with no release yet gets
no traffic. Releases are put in place by the real deploy script (stage + switch)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devstack.shop_repo import ShopRepo
from devstack.traffic import HealthRecorder, ReleaseHandlers, TrafficGenerator, targets_for

from .sandbox import Host

MakeHost = Callable[..., Host]


class RecordingCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def deployed(make_host: MakeHost, name: str, sha: str) -> Host:
    host = make_host(name)
    host.ok("stage", sha)
    host.ok("switch", sha)
    return host


def test_each_host_serves_its_current_releases_own_code(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    good, bad = (
        deployed(make_host, "i-good", shop_repo.v2),
        deployed(make_host, "i-bad", shop_repo.v3),
    )
    empty = make_host("i-empty")
    targets = targets_for(
        [{"instance_id": h.root.name} for h in (good, bad, empty)],
        "shop",
        "production",
        good.root.parent,
    )
    handlers = ReleaseHandlers()

    with ThreadPoolExecutor(len(targets)) as pool:  # hosts serve side by side, as in the stack
        runs = pool.map(lambda t: [handlers.serve(t, seq) for seq in range(10)], targets)
        served = dict(zip([t.host for t in targets], runs, strict=True))

    assert served["i-empty"] == [None] * 10, "no release yet: no request"
    good_outcomes = [o for o in served["i-good"] if o is not None]
    bad_outcomes = [o for o in served["i-bad"] if o is not None]
    assert {o.release for o in good_outcomes} == {shop_repo.v2}
    assert {o.release for o in bad_outcomes} == {shop_repo.v3}
    assert [o.status for o in good_outcomes] == [200] * 10
    assert [o.status for o in bad_outcomes] == [200] * 9 + [503]
    # v3 sleeps 170 ms per request, v2 20 ms: lower bounds, whatever the machine's load
    assert min(o.latency_ms for o in bad_outcomes) >= 170
    assert min(o.latency_ms for o in good_outcomes) >= 20


def test_the_generator_records_per_host_and_release_and_flushes_when_stopped(
    make_host: MakeHost, shop_repo: ShopRepo
) -> None:
    host = deployed(make_host, "i-one", shop_repo.v2)
    cloudwatch = RecordingCloudWatch()
    targets = targets_for([{"instance_id": "i-one"}], "shop", "staging", host.root.parent)

    generator = TrafficGenerator(targets, HealthRecorder(cloudwatch), rate=20, flush_seconds=60)
    with generator:
        assert {t.name for t in threading.enumerate()} >= {"traffic-i-one", "traffic-flush"}
        deadline = time.monotonic() + 30
        while generator.sent < 3 and time.monotonic() < deadline:
            time.sleep(0.02)

    assert cloudwatch.calls, "stop() flushes what is left"
    datums = [d for call in cloudwatch.calls for d in call["MetricData"]]
    assert {call["Namespace"] for call in cloudwatch.calls} == {"Shop/Health"}
    per_host = [
        d
        for d in datums
        if d["MetricName"] == "Requests" and {x["Name"] for x in d["Dimensions"]} >= {"Host"}
    ]
    assert sum(d["Value"] for d in per_host) == generator.sent >= 3
    assert {(x["Name"], x["Value"]) for d in per_host for x in d["Dimensions"]} == {
        ("App", "shop"),
        ("Environment", "staging"),
        ("Host", "i-one"),
        ("Release", shop_repo.v2),
    }
    assert not {t.name for t in threading.enumerate()} & {"traffic-i-one", "traffic-flush"}
