"""What the benchmarks share to count AWS calls and report them: ``CallMeter``, the one wrapper
of botocore's ``BaseClient._make_api_call``, which times each call made on a recording thread and
hands it to that thread's sink; ``Calls``, a per-operation tally; ``Patches``; the statistics.

No work at import (``bench/__main__.py`` imports every module here to find the benchmarks).
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class CallSink(Protocol):
    """Where a recording thread's AWS calls go: ``record`` runs once per call, when it returns
    (or raises), with the botocore client, the operation, its parameters and its duration."""

    def record(
        self, client: Any, operation: str, params: Mapping[str, Any], seconds: float
    ) -> None: ...


SinkT = TypeVar("SinkT", bound=CallSink)


class Patches:
    """Attributes replaced for a run; ``undo`` puts the originals back, the last replaced first."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def replace(self, owner: Any, name: str, value: Any) -> None:
        self._undo.append(functools.partial(setattr, owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


class CallMeter(Generic[SinkT]):
    """Times the botocore API calls made on a thread inside ``recording(sink)`` and hands each to
    that sink; calls on every other thread pass through untouched. ``_make_api_call`` is the one
    entry point of boto3 clients, PynamoDB's own botocore clients and Powertools' alike, so
    nothing escapes it; clients created before ``install`` are counted too."""

    def __init__(self) -> None:
        self._local = threading.local()  # .sink: what the current thread records into
        self.patches = Patches()

    def install(self) -> None:
        import botocore.client

        original = botocore.client.BaseClient._make_api_call
        sink_of = self.sink

        @functools.wraps(original)
        def make_api_call(client: Any, operation: str, params: Any) -> Any:
            sink = sink_of()
            if sink is None:
                return original(client, operation, params)
            started = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                sink.record(client, operation, params or {}, time.perf_counter() - started)

        self.patches.replace(botocore.client.BaseClient, "_make_api_call", make_api_call)

    def uninstall(self) -> None:
        self.patches.undo()

    def sink(self) -> SinkT | None:
        """What this thread records into, if it is recording."""
        sink: SinkT | None = getattr(self._local, "sink", None)
        return sink

    @contextmanager
    def recording(self, sink: SinkT) -> Iterator[SinkT]:
        """This thread's AWS calls go to ``sink`` until the block ends."""
        previous = self.sink()
        self._local.sink = sink
        try:
            yield sink
        finally:
            self._local.sink = previous


@dataclass
class Calls:
    """AWS API calls by operation name: how many, and the seconds they took (a ``CallSink``)."""

    count: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def record(
        self, client: Any, operation: str, params: Mapping[str, Any], seconds: float
    ) -> None:
        self.count[operation] += 1
        self.seconds[operation] += seconds

    def add(self, other: Calls) -> None:
        self.count.update(other.count)
        for op, spent in other.seconds.items():
            self.seconds[op] += spent

    @property
    def total(self) -> int:
        return sum(self.count.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def by_operation(self, top: int | None = None, ms_unit: str | None = None) -> str:
        """``"GetItem 6, UpdateItem 2"``, the most frequent first (``top`` of them); with
        ``ms_unit`` each count is followed by the milliseconds spent: ``"GetItem 6 (120 ms)"``."""
        return ", ".join(
            f"{op} {n}" if ms_unit is None else f"{op} {n} ({self.seconds[op] * 1000:.0f}{ms_unit})"
            for op, n in self.count.most_common(top)
        )


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """p50, p90, p99 (linear interpolation between closest ranks)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98]
