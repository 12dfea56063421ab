"""The dashboard as a picture: the app's error rate and latency per release over time, with a
vertical marker at each deploy (SHA, who, outcome), drawn with matplotlib from CloudWatch data.

``fetch_health`` reads the traffic generator's metrics (devstack/traffic.py) back with
``GetMetricData`` under the (App, Environment, Release) dimensions, one series per release it
finds with ``ListMetrics``; ``render_dashboard`` writes the PNG. Latency is the per-period
Average: moto computes no percentiles (AWS would also give p50/p99 from the same data).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from devstack.traffic import ERRORS, LATENCY, NAMESPACE, REQUESTS

SHORT = 7  # characters of a SHA shown on the picture


@dataclass(frozen=True)
class DeployMarker:
    """One deploy, drawn as a vertical line where it finished."""

    at: datetime
    sha: str
    who: str
    outcome: str

    @property
    def label(self) -> str:
        return f"{self.sha[:SHORT]} {self.who} {self.outcome}"


@dataclass(frozen=True)
class ReleaseSeries:
    """One release's health per period: error rate in percent, latency in milliseconds."""

    release: str
    timestamps: tuple[datetime, ...]
    requests: tuple[float, ...]
    error_rate: tuple[float, ...]
    latency_ms: tuple[float, ...]

    @property
    def total_requests(self) -> int:
        return int(sum(self.requests))

    @property
    def overall_error_rate(self) -> float:
        """Errors over requests across the whole series, in percent."""
        total = sum(self.requests)
        errors = sum(r * e / 100 for r, e in zip(self.requests, self.error_rate, strict=True))
        return 100 * errors / total if total else 0.0

    @property
    def mean_latency_ms(self) -> float:
        total = sum(self.requests)
        weighted = sum(r * lat for r, lat in zip(self.requests, self.latency_ms, strict=True))
        return weighted / total if total else 0.0


def releases_seen(
    cloudwatch: Any, app: str, environment: str, namespace: str = NAMESPACE
) -> list[str]:
    """The releases that served requests in this environment (from ``ListMetrics``)."""
    found = set()
    pages = cloudwatch.get_paginator("list_metrics").paginate(
        Namespace=namespace,
        MetricName=REQUESTS,
        Dimensions=[{"Name": "App", "Value": app}, {"Name": "Environment", "Value": environment}],
    )
    for page in pages:
        for metric in page["Metrics"]:
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            if set(dims) == {"App", "Environment", "Release"}:
                found.add(dims["Release"])
    return sorted(found)


def fetch_health(
    cloudwatch: Any,
    app: str,
    environment: str,
    start: datetime,
    end: datetime,
    *,
    period: int = 2,
    namespace: str = NAMESPACE,
) -> list[ReleaseSeries]:
    """Each release's requests, error rate and latency per ``period`` seconds."""
    releases = releases_seen(cloudwatch, app, environment, namespace)
    queries = []
    for index, release in enumerate(releases):
        dims = [
            {"Name": "App", "Value": app},
            {"Name": "Environment", "Value": environment},
            {"Name": "Release", "Value": release},
        ]
        for metric, stat in ((REQUESTS, "Sum"), (ERRORS, "Sum"), (LATENCY, "Average")):
            queries.append(
                {
                    "Id": f"{metric.lower()}_{index}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": metric,
                            "Dimensions": dims,
                        },
                        "Period": period,
                        "Stat": stat,
                    },
                }
            )
    results: dict[str, dict[datetime, float]] = {}
    for start_at in range(0, len(queries), 500):  # GetMetricData takes 500 queries a call
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries[start_at : start_at + 500],
            "StartTime": start,
            "EndTime": end,
        }
        while True:
            page = cloudwatch.get_metric_data(**kwargs)
            for result in page["MetricDataResults"]:
                points = results.setdefault(result["Id"], {})
                points.update(zip(result["Timestamps"], result["Values"], strict=True))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    series = []
    for index, release in enumerate(releases):
        requests = results.get(f"{REQUESTS.lower()}_{index}", {})
        errors = results.get(f"{ERRORS.lower()}_{index}", {})
        latency = results.get(f"{LATENCY.lower()}_{index}", {})
        times = sorted(t for t, n in requests.items() if n > 0)
        series.append(
            ReleaseSeries(
                release=release,
                timestamps=tuple(times),
                requests=tuple(requests[t] for t in times),
                error_rate=tuple(100 * errors.get(t, 0.0) / requests[t] for t in times),
                latency_ms=tuple(latency.get(t, 0.0) for t in times),
            )
        )
    return series


def _with_gaps(
    times: tuple[datetime, ...], values: tuple[float, ...]
) -> tuple[list[datetime], list[float]]:
    """Break the line where a release served nothing for a while (NaN is a gap to matplotlib)."""
    xs: list[datetime] = []
    ys: list[float] = []
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    usual = sorted(steps)[len(steps) // 2] if steps else 0.0
    for index, (when, value) in enumerate(zip(times, values, strict=True)):
        if index and (when - times[index - 1]).total_seconds() > 2.5 * usual:
            xs.append(times[index - 1] + (when - times[index - 1]) / 2)
            ys.append(math.nan)
        xs.append(when)
        ys.append(value)
    return xs, ys


def build_figure(
    series: list[ReleaseSeries],
    markers: list[DeployMarker],
    title: str,
    names: Mapping[str, str] | None = None,
) -> Any:
    """The two panels (error rate, latency), one line per release, a marker per deploy;
    ``names`` labels releases (SHA -> e.g. ``v3``)."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    names = names or {}
    figure = Figure(figsize=(11, 6.5), dpi=100)
    error_axes, latency_axes = figure.subplots(2, 1, sharex=True)
    for item in series:
        label = " ".join(filter(None, (names.get(item.release), item.release[:SHORT])))
        error_axes.plot(*_with_gaps(item.timestamps, item.error_rate), marker=".", label=label)
        latency_axes.plot(*_with_gaps(item.timestamps, item.latency_ms), marker=".", label=label)
    error_axes.set_ylabel("5xx error rate (%)")
    error_axes.set_ylim(bottom=0)
    latency_axes.set_ylabel("latency, average (ms)")
    latency_axes.set_ylim(bottom=0)
    latency_axes.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
    latency_axes.set_xlabel("time (UTC)")
    for number, marker in enumerate(markers):
        colour = (
            "tab:orange"
            if "roll" in marker.outcome  # a rollback, or a deploy rolled back
            else "tab:green"
            if marker.outcome.startswith("succeeded")
            else "tab:red"
        )
        for axes in (error_axes, latency_axes):
            axes.axvline(marker.at, color=colour, linestyle="--", linewidth=1.2)
        error_axes.annotate(
            marker.label,
            xy=(marker.at, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12 - 11 * (number % 3)),
            textcoords="offset points",
            fontsize=8,
            color=colour,
        )
    latency_axes.legend(loc="center left", fontsize=8, title="release", title_fontsize=8)
    error_axes.set_title(title)
    figure.autofmt_xdate()
    return figure


def render_dashboard(
    series: list[ReleaseSeries],
    markers: list[DeployMarker],
    path: Path,
    title: str,
    names: Mapping[str, str] | None = None,
) -> Path:
    """Write the dashboard PNG to ``path`` (its directory is made) and return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = build_figure(series, markers, title, names)
    FigureCanvasAgg(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
