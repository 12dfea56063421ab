"""A bounded traffic generator for the embedded stack: what the app's users feel, per release.

Each simulated host gets one thread that sends ``rate`` requests per second to the release its
``current`` symlink points at, by running that release's own ``app/handler.py`` (so the
release decides how slow a request is and whether it fails; nothing leaves the process, so
nothing listens on or calls any address). A ``HealthRecorder`` buckets the outcomes per second
and sends them to CloudWatch with one ``PutMetricData`` call per flush (chunked at the API's
1,000 datums): namespace ``Shop/Health`` by default, metrics ``Requests`` and ``Errors5xx``
(Count) and ``LatencyMs`` (Milliseconds, as ``Values``/``Counts`` so CloudWatch computes p50
and p99), each under three dimension sets: (App, Environment, Host, Release), (App,
Environment, Release) and (App, Environment). A host without a release yet is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

NAMESPACE = "Shop/Health"
REQUESTS, ERRORS, LATENCY = "Requests", "Errors5xx", "LatencyMs"
MAX_DATUMS_PER_CALL = 1000  # PutMetricData's limit
MAX_VALUES_PER_DATUM = 150  # the limit on Values/Counts in one datum
MAX_RATE = 50.0  # requests per second per host: the generator stays bounded whatever it is asked
REQUEST_PATH = "/products"

Dimensions = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class HostTarget:
    """One simulated host of an app's environment; ``app_dir`` is ``<host dir>/<app>``."""

    app: str
    environment: str
    host: str
    app_dir: Path


@dataclass(frozen=True)
class Outcome:
    """One request: the release that served it, its status, and how long it took."""

    release: str
    status: int
    latency_ms: float
    at: datetime


@dataclass
class _Bucket:
    requests: int = 0
    errors: int = 0
    latencies: dict[float, int] = field(default_factory=dict)


def dimension_sets(target: HostTarget, release: str) -> list[Dimensions]:
    """The three dimension sets every outcome is counted under (per host, per release, all)."""
    whole = (("App", target.app), ("Environment", target.environment))
    return [
        (*whole, ("Host", target.host), ("Release", release)),
        (*whole, ("Release", release)),
        whole,
    ]


class HealthRecorder:
    """Buckets request outcomes per second and dimension set; ``flush`` sends them."""

    def __init__(self, cloudwatch: Any, namespace: str = NAMESPACE) -> None:
        self.cloudwatch = cloudwatch
        self.namespace = namespace
        self.calls = 0  # PutMetricData calls made (what the batching saves)
        self._lock = threading.Lock()
        self._buckets: dict[tuple[Dimensions, datetime], _Bucket] = {}

    def record(self, target: HostTarget, outcome: Outcome) -> None:
        second = outcome.at.astimezone(UTC).replace(microsecond=0)
        latency = round(outcome.latency_ms, 1)
        with self._lock:
            for dims in dimension_sets(target, outcome.release):
                bucket = self._buckets.setdefault((dims, second), _Bucket())
                bucket.requests += 1
                bucket.errors += 1 if outcome.status >= 500 else 0
                bucket.latencies[latency] = bucket.latencies.get(latency, 0) + 1

    def flush(self) -> int:
        """Send what was recorded since the last flush; return the number of datums sent."""
        with self._lock:
            buckets, self._buckets = self._buckets, {}
        datums = [
            datum for key, bucket in sorted(buckets.items()) for datum in _datums(*key, bucket)
        ]
        for start in range(0, len(datums), MAX_DATUMS_PER_CALL):
            self.cloudwatch.put_metric_data(
                Namespace=self.namespace, MetricData=datums[start : start + MAX_DATUMS_PER_CALL]
            )
            self.calls += 1
        return len(datums)


def _datums(dims: Dimensions, second: datetime, bucket: _Bucket) -> list[dict[str, Any]]:
    dimensions = [{"Name": name, "Value": value} for name, value in dims]
    # high-resolution metrics: 1-second data, as the generator buckets it
    common = {"Dimensions": dimensions, "Timestamp": second, "StorageResolution": 1}
    datums: list[dict[str, Any]] = [
        {**common, "MetricName": REQUESTS, "Value": float(bucket.requests), "Unit": "Count"},
        {**common, "MetricName": ERRORS, "Value": float(bucket.errors), "Unit": "Count"},
    ]
    latencies = sorted(bucket.latencies.items())
    for start in range(0, len(latencies), MAX_VALUES_PER_DATUM):
        chunk = latencies[start : start + MAX_VALUES_PER_DATUM]
        datums.append(
            {
                **common,
                "MetricName": LATENCY,
                "Values": [value for value, _ in chunk],
                "Counts": [float(count) for _, count in chunk],
                "Unit": "Milliseconds",
            }
        )
    return datums


class ReleaseHandlers:
    """Loads each release's ``app/handler.py`` once (keyed by the release directory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modules: dict[Path, ModuleType] = {}

    def serve(self, target: HostTarget, seq: int) -> Outcome | None:
        """Run one request on the host's current release; None if it has no release yet."""
        current = target.app_dir / "current"
        try:
            release_dir = Path(os.path.realpath(current))
            release = (release_dir / "REVISION").read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not release:
            return None
        started = time.perf_counter()
        try:
            status, _body = self._handler(release_dir)(REQUEST_PATH, seq)
        except Exception:  # the release's code crashed: that is a 500, as an app server answers
            status = 500
        latency = (time.perf_counter() - started) * 1000
        return Outcome(release, int(status), latency, datetime.now(UTC))

    def _handler(self, release_dir: Path) -> Callable[[str, int], tuple[int, str]]:
        with self._lock:
            module = self._modules.get(release_dir)
            if module is None:
                path = release_dir / "app" / "handler.py"
                spec = importlib.util.spec_from_file_location(
                    f"shop_release_{release_dir.name}", path
                )
                if spec is None or spec.loader is None:
                    raise FileNotFoundError(path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._modules[release_dir] = module
        handle: Callable[[str, int], tuple[int, str]] = module.handle
        return handle


class TrafficGenerator:
    """``rate`` requests per second to each target until ``stop()`` (or ``duration`` seconds),
    flushing to CloudWatch every ``flush_seconds``. Use as a context manager or start/stop."""

    def __init__(
        self,
        targets: Sequence[HostTarget],
        recorder: HealthRecorder,
        *,
        rate: float = 4.0,
        flush_seconds: float = 1.0,
        duration: float | None = None,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_seconds: float = 60.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.targets = list(targets)
        self.recorder = recorder
        self.rate = min(rate, MAX_RATE)
        self.flush_seconds = flush_seconds
        self.duration = duration
        self.housekeeping = housekeeping  # e.g. drop old datapoints from moto (make serve)
        self.housekeeping_seconds = housekeeping_seconds
        self.handlers = ReleaseHandlers()
        self.sent = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count_lock = threading.Lock()

    def start(self) -> TrafficGenerator:
        deadline = None if self.duration is None else time.monotonic() + self.duration
        for target in self.targets:
            thread = threading.Thread(
                target=self._drive, args=(target, deadline), name=f"traffic-{target.host}"
            )
            thread.daemon = True
            self._threads.append(thread)
        flusher = threading.Thread(target=self._flush_loop, name="traffic-flush", daemon=True)
        self._threads.append(flusher)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop every request loop, then send what is left (one last flush)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self.recorder.flush()

    def __enter__(self) -> TrafficGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _drive(self, target: HostTarget, deadline: float | None) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        seq = 0
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            outcome = self.handlers.serve(target, seq)
            if outcome is not None:
                self.recorder.record(target, outcome)
                seq += 1
                with self._count_lock:
                    self.sent += 1
            next_at = max(next_at + interval, time.monotonic())  # late: no catch-up burst
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _flush_loop(self) -> None:
        last_housekeeping = time.monotonic()
        while not self._stop.wait(self.flush_seconds):
            try:
                self.recorder.flush()
            except Exception as exc:  # a failed flush must not end the traffic; report it
                print(f"traffic: PutMetricData failed: {exc}", flush=True)
            if (
                self.housekeeping
                and time.monotonic() - last_housekeeping > self.housekeeping_seconds
            ):
                last_housekeeping = time.monotonic()
                self.housekeeping()


def targets_for(
    hosts: Iterable[dict[str, Any]], app: str, environment: str, hosts_dir: Path
) -> list[HostTarget]:
    """The stack's provisioned hosts (``{"instance_id": ...}``) of one environment as targets."""
    return [
        HostTarget(app, environment, host["instance_id"], hosts_dir / host["instance_id"] / app)
        for host in hosts
    ]


def prune_moto_metric_data(keep_seconds: float) -> int:
    """Drop the in-process moto's CloudWatch datapoints older than ``keep_seconds`` (CloudWatch
    keeps 1-second data for 3 hours): a long ``make serve`` would otherwise grow moto's memory
    without bound. Returns how many were dropped."""
    from moto.cloudwatch.models import cloudwatch_backends

    cutoff = datetime.now(UTC) - timedelta(seconds=keep_seconds)
    naive_cutoff = cutoff.replace(tzinfo=None)  # moto keeps some timestamps naive (UTC)
    dropped = 0
    for regions in cloudwatch_backends.values():
        for backend in regions.values():
            kept = [
                md
                for md in backend.metric_data
                if md.timestamp >= (naive_cutoff if md.timestamp.tzinfo is None else cutoff)
            ]
            dropped += len(backend.metric_data) - len(kept)
            backend.metric_data = kept
    return dropped
