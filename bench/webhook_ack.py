"""The webhook acknowledgement path on the embedded stack: latency, AWS calls per push, size.

``python -m bench.webhook_ack [--pushes 300] [--rollout-pushes 10] [--burst 30] ...``

Starts the embedded stack (moto server, host agent, provisioning) with the webhook corpus'
pipeline config (``tests/functional/pipeline-corpus.toml``, one host per environment), serves the
Chalice app over real HTTP on 127.0.0.1 and sends signed GitHub push deliveries
(``tests/events/github/push/1.json``: ``refs/heads/master`` of Codertocat/Hello-World, which the
corpus config deploys to ``hello-world/production``), one client, one keep-alive connection,
each with a fresh ``X-GitHub-Delivery`` id. It prints, and asserts nothing about time:

1. Latency (p50/p90/p99, p99/p50, requests/s) of four kinds of accepted push:
   - ``new deploy``: a new ``after`` SHA each time, so each push records a new deploy;
   - ``same SHA``: one SHA, so only the first push records a deploy and the rest are answered
     with it (the dedupe path);
   - ``starts rollout``: a new SHA into an idle environment: lock + StartExecution;
   - ``burst``: new SHAs back to back into the live environment while rollouts run.
2. AWS API calls per request, counted on the HTTP handler's thread only (not the rollout
   Lambdas, Step Functions or the host agent, which run on other threads): per operation, per
   push, with a cross-check, and for rejected requests (bad signature, oversized body).
3. Latency against body size (~1 KB, 64 KB, 1 MB, just under the 5 MiB limit).

Background work. A push that starts a rollout makes real work on other threads (the corpus SHAs
are not in the sample repo, so the rollout fails while staging, in about 0.3 s). To keep the
bulk figures about the ack path, the target environment is *frozen*
(``PUT /environments/{app}/{env}/lock``) for ``new deploy``, ``same SHA``, the size series and
the rejects: admission then queues each new deploy behind the freeze and supersedes the
previously queued one, the same path a push takes while another rollout holds the lock, and no
rollout ever starts. ``starts rollout`` unfreezes it (``DELETE``; the queued deploy runs, untimed)
and waits, untimed, for each rollout to finish before the next push; ``burst`` lets them race
and waits for every execution to finish afterwards, before the stack is stopped.

How AWS calls are counted: every botocore client created after start-up (boto3 sessions in
``chalicelib.bootstrap``, PynamoDB's own botocore sessions, Powertools' SSM provider, the
idempotency layer's client) gets ``before-call.*.*`` and ``before-send.*.*`` handlers; a
thread-local set around ``chalice.local.LocalGateway.handle_request`` attributes a call to the
request whose thread made it. ``BaseClient._make_api_call`` is wrapped as an independent count
(and for timing); the two must agree. Botocore clients created on the request thread are
recorded too (their construction cost is part of the ack).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import hmac
import json
import os
import platform
import resource
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from .meter import CallMeter, mean, quantiles

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "events"
CORPUS_CONFIG = ROOT / "tests" / "functional" / "pipeline-corpus.toml"
CASE = "github/push/1"  # refs/heads/master of Codertocat/Hello-World
APP, ENV = "hello-world", "production"  # where the corpus config deploys that push
BENCH_HEADER = "X-Bench-Request"  # ties a server-side trace to the client's request
TABLE_PREFIX = "roadie-"
MIB = 1024 * 1024
DEFAULT_SIZES = f"1024:20,65536:20,{MIB}:10,{5 * MIB - 8192}:5"


# --------------------------------------------------------------------------- AWS call meter


@dataclass(frozen=True)
class Call:
    label: str  # "dynamodb.PutItem[idempotency]", or a service name for a client creation
    ms: float


@dataclass
class Trace:
    """What one HTTP request did on its handler thread."""

    hooked: Counter[str] = field(default_factory=Counter)  # before-call events: service.Op
    sends: int = 0  # before-send events: HTTP requests to AWS, retries included
    calls: list[Call] = field(default_factory=list)  # BaseClient._make_api_call, in order
    clients: list[Call] = field(default_factory=list)  # botocore clients built meanwhile
    server_ms: float = 0.0  # LocalGateway.handle_request: the Chalice app, no HTTP

    def record(
        self, client: Any, operation: str, params: Mapping[str, Any], seconds: float
    ) -> None:
        """A ``CallSink``: each call on the request's thread, in order, labelled."""
        service = client.meta.service_model.service_id.hyphenize()
        label = f"{service}.{operation}{_table_label(params)}"
        self.calls.append(Call(label, seconds * 1000))

    @property
    def call_count(self) -> int:
        return sum(self.hooked.values())

    @property
    def aws_ms(self) -> float:
        return sum(c.ms for c in self.calls)

    @property
    def client_ms(self) -> float:
        return sum(c.ms for c in self.clients)


def _table_label(params: Mapping[str, Any]) -> str:
    names: list[str] = []
    if isinstance(params.get("TableName"), str):
        names.append(params["TableName"])
    for item in params.get("TransactItems") or []:
        for action in item.values():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.append(action["TableName"])
    short = [n.removeprefix(TABLE_PREFIX) for n in names]
    return f"[{'+'.join(short)}]" if short else ""


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    wanted = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == wanted:
            return value
    return None


class AwsMeter(CallMeter[Trace]):
    """Counts and times botocore calls per HTTP request (by thread); see the module doc."""

    def __init__(self) -> None:
        super().__init__()
        self._ignoring = threading.local()  # .on: the benchmark's own calls, counted nowhere
        self._lock = threading.Lock()
        self._traces: dict[str, Trace] = {}
        self.background: Counter[str] = Counter()  # calls on threads that serve no request

    def _before_call(self, event_name: str = "", **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        trace = self.sink()
        if trace is not None:
            trace.hooked[f"{service}.{operation}"] += 1
        elif not getattr(self._ignoring, "on", False):
            with self._lock:
                self.background[f"{service}.{operation}"] += 1

    def _before_send(self, **_: Any) -> None:
        trace = self.sink()
        if trace is not None:
            trace.sends += 1

    def install(self) -> None:
        import botocore.session
        import chalice.local

        super().install()  # BaseClient._make_api_call: Trace.record
        meter = self
        original_create = botocore.session.Session.create_client
        original_handle = chalice.local.LocalGateway.handle_request

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            client = original_create(session, *args, **kwargs)
            client.meta.events.register("before-call.*.*", meter._before_call)
            client.meta.events.register("before-send.*.*", meter._before_send)
            trace = meter.sink()
            if trace is not None:
                ms = (time.perf_counter() - started) * 1000
                trace.clients.append(Call(client.meta.service_model.service_name, ms))
            return client

        def handle_request(gateway: Any, *args: Any, **kwargs: Any) -> Any:
            key = _header(kwargs.get("headers"), BENCH_HEADER)
            trace = Trace()
            started = time.perf_counter()
            try:
                with meter.recording(trace):
                    return original_handle(gateway, *args, **kwargs)
            finally:
                trace.server_ms = (time.perf_counter() - started) * 1000
                if key is not None:
                    with meter._lock:
                        meter._traces[key] = trace

        def quiet_log(handler: Any, *args: Any) -> None:
            """No access log line per request (API Gateway writes none either)."""

        def serve_forever(server: Any) -> None:
            server.server.serve_forever()  # without the "Serving on ...:0" line

        self.patches.replace(botocore.session.Session, "create_client", create_client)
        self.patches.replace(chalice.local.LocalGateway, "handle_request", handle_request)
        self.patches.replace(chalice.local.ChaliceRequestHandler, "log_message", quiet_log)
        self.patches.replace(chalice.local.LocalDevServer, "serve_forever", serve_forever)

    def take(self, key: str) -> Trace | None:
        with self._lock:
            return self._traces.pop(key, None)

    def background_total(self) -> int:
        with self._lock:
            return sum(self.background.values())

    @contextmanager
    def ignored(self) -> Iterator[None]:
        """The benchmark's own AWS calls (setup, waiting) count as neither request nor
        background."""
        self._ignoring.on = True
        try:
            yield
        finally:
            self._ignoring.on = False


# --------------------------------------------------------------------------- deliveries


def _encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc).encode("utf-8")


def load_case() -> tuple[dict[str, Any], dict[str, str]]:
    body = json.loads((EVENTS / f"{CASE}.json").read_text())
    meta = json.loads((EVENTS / f"{CASE}.meta.json").read_text())
    headers = {
        k: v
        for k, v in meta["headers"].items()
        if k not in ("X-Hub-Signature", "X-Hub-Signature-256", "X-GitHub-Delivery")
    }
    return body, headers


def with_sha(template: Mapping[str, Any], sha: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(template))
    doc["after"] = sha
    doc["head_commit"]["id"] = sha
    return doc


def minimal_push(template: Mapping[str, Any]) -> dict[str, Any]:
    """The corpus push cut down to what a push needs (about 0.9 KB)."""
    repo = template["repository"]
    return {
        "ref": template["ref"],
        "before": template["before"],
        "after": template["after"],
        "created": False,
        "deleted": False,
        "forced": False,
        "compare": template["compare"],
        "head_commit": template["head_commit"],
        "repository": {"id": repo["id"], "name": repo["name"], "full_name": repo["full_name"]},
        "pusher": template["pusher"],
        "sender": {"login": template["sender"]["login"]},
    }


def padded(doc: Mapping[str, Any], size: int) -> dict[str, Any]:
    """``doc`` grown to exactly ``size`` bytes of JSON by a ``commits`` list of plausible
    commits (the parser ignores it, as it ignores GitHub's), or unchanged if it cannot grow
    to that size."""
    files = [f"app/models/model_{i}.rb" for i in range(12)]

    def commit(i: int) -> dict[str, Any]:
        return {**doc["head_commit"], "id": f"{i:040x}", "modified": files}

    base = {**doc, "commits": []}
    empty = len(_encode(base))
    unit = len(_encode(commit(0))) + 2  # each commit before the filler adds ", "
    filler_min = len(_encode({"id": "0" * 40, "message": ""}))
    if empty + filler_min > size:
        return dict(doc)
    count = (size - empty - filler_min) // unit
    commits = [commit(i) for i in range(count)]
    filler = {"id": f"{count:040x}", "message": ""}
    base["commits"] = [*commits, filler]
    filler["message"] = "x" * (size - len(_encode(base)))
    assert len(_encode(base)) == size, (len(_encode(base)), size)
    return base


@dataclass
class Sample:
    ms: float  # client-observed: request sent to response read
    status: int
    answer: dict[str, Any]
    trace: Trace | None
    background: int = 0  # AWS calls other threads made while this request was in flight


class Client:
    """Signed deliveries over one keep-alive HTTP connection."""

    def __init__(self, url: str, secret: str, headers: Mapping[str, str], meter: AwsMeter):
        self.url = f"{url}/webhooks/github"
        self.secret = secret.encode("utf-8")
        self.headers = dict(headers)
        self.meter = meter
        self.session = requests.Session()
        self._count = 0

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def post(self, body: bytes, *, signature: str | None = None) -> Sample:
        self._count += 1
        key = f"r{self._count}"
        headers = {
            **self.headers,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature or self.sign(body),
            BENCH_HEADER: key,
        }
        background = self.meter.background_total()
        started = time.perf_counter()
        response = self.session.post(self.url, data=body, headers=headers, timeout=120)
        answer = response.json()
        ms = (time.perf_counter() - started) * 1000
        return Sample(
            ms=ms,
            status=response.status_code,
            answer=answer if isinstance(answer, dict) else {"answer": answer},
            trace=self.meter.take(key),
            background=self.meter.background_total() - background,
        )

    def push(self, doc: Mapping[str, Any]) -> Sample:
        return self.post(_encode(doc))

    def close(self) -> None:
        self.session.close()


# --------------------------------------------------------------------------- the stack


class StillBusyError(RuntimeError):
    """Rollouts did not finish in time (reported, not fatal: the figures are still printed)."""


class Environment:
    """The target environment: frozen and unfrozen over the HTTP API, watched (for waiting)
    through the app's own repository and Step Functions from the benchmark's thread."""

    def __init__(self, meter: AwsMeter, url: str, token: str, state_machine_arn: str) -> None:
        import boto3

        from chalicelib.adapters.dynamo import DeployRepository

        self.meter = meter
        self.lock_url = f"{url}/environments/{APP}/{ENV}/lock"
        self.auth = {"Authorization": f"Bearer {token}"}
        self.arn = state_machine_arn
        with meter.ignored():
            self.repo = DeployRepository()
            self.sfn = boto3.client("stepfunctions")

    def freeze(self, reason: str | None) -> None:
        """``PUT .../lock`` with a reason; ``None``: ``DELETE .../lock``, which starts the
        deploy queued meanwhile."""
        if reason is None:
            response = requests.delete(self.lock_url, headers=self.auth, timeout=60)
        else:
            body = {"reason": reason}
            response = requests.put(self.lock_url, json=body, headers=self.auth, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"{response.request.method} {self.lock_url}: {response.text}")

    def wait_quiet(self, timeout: float = 120) -> float:
        """Wait until no execution runs and nobody holds the environment's lock (ending a
        rollout hands the lock to the queued deploy, if any); returns the seconds waited."""
        started = time.monotonic()
        with self.meter.ignored():
            while True:
                running = self.sfn.list_executions(
                    stateMachineArn=self.arn, statusFilter="RUNNING", maxResults=10
                )["executions"]
                state = self.repo.environment(APP, ENV)
                if not running and state.lock_deploy_id is None:
                    return time.monotonic() - started
                if time.monotonic() - started > timeout:
                    holder = state.lock_deploy_id
                    status = self.repo.get(holder).status.value if holder else "-"
                    raise StillBusyError(
                        f"still busy after {timeout:.0f} s: {len(running)} execution(s) running;"
                        f" {APP}/{ENV} locked by {holder} ({status}), queued"
                        f" {state.queued_deploy_id}"
                    )
                time.sleep(0.05)


# --------------------------------------------------------------------------- reporting


@dataclass
class Scenario:
    name: str
    samples: list[Sample]
    wall_s: float
    note: str = ""
    rss_growth_mb: float | None = None  # the whole process, stack included

    @property
    def ms(self) -> list[float]:
        return [s.ms for s in self.samples]

    @property
    def traces(self) -> list[Trace]:
        return [s.trace for s in self.samples if s.trace is not None]


def print_latency(scenarios: Sequence[Scenario]) -> None:
    print("\n1. Accepted pushes: latency (client-observed, one client, keep-alive)")
    print(
        f"  {'scenario':<16}{'n':>5}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'p99/p50':>9}"
        f"{'req/s':>7}{'server p50':>12}{'p99':>8}{'p99/p50':>9}{'AWS calls':>11}{'bg calls':>10}"
    )
    for sc in scenarios:
        p50, p90, p99 = quantiles(sc.ms)
        s50, _, s99 = quantiles([t.server_ms for t in sc.traces])
        calls = mean([t.call_count for t in sc.traces])
        background = sum(s.background for s in sc.samples)
        print(
            f"  {sc.name:<16}{len(sc.samples):>5}{p50:>9.1f}{p90:>9.1f}{p99:>9.1f}"
            f"{p99 / p50:>9.2f}{len(sc.samples) / sc.wall_s:>7.1f}{s50:>12.1f}{s99:>8.1f}"
            f"{s99 / s50:>9.2f}{calls:>11.2f}{background:>10}"
        )
    for sc in scenarios:
        if sc.note:
            print(f"  {sc.name}: {sc.note}")
    for sc in scenarios:
        builds = [c.ms for t in sc.traces for c in t.clients]
        if len(builds) >= 20:
            tenth = len(builds) // 10
            print(
                f"  {sc.name}: {len(builds)} botocore clients built on the request path, median"
                f" {statistics.median(builds[:tenth]):.0f} ms over the first tenth,"
                f" {statistics.median(builds[-tenth:]):.0f} ms over the last"
            )
        if sc.rss_growth_mb is not None:
            print(
                f"  {sc.name}: process RSS {sc.rss_growth_mb:+.0f} MB over the scenario"
                " (moto's in-memory tables included)"
            )
    print("  server: time inside the Chalice app (no HTTP); AWS calls: mean per push on the")
    print("  request thread; bg calls: AWS calls other threads made while requests were in flight")
    print("\n   where the time goes (means per push, ms):")
    print(
        f"  {'scenario':<16}{'client':>9}{'server':>9}{'AWS calls':>11}"
        f"{'new clients':>13}{'rest of app':>13}{'HTTP+JSON':>11}{'AWS share':>11}"
    )
    for sc in scenarios:
        traces = sc.traces
        client = mean(sc.ms)
        server = mean([t.server_ms for t in traces])
        aws = mean([t.aws_ms for t in traces])
        clients = mean([t.client_ms for t in traces])
        rest = server - aws - clients
        share = (aws + clients) / server if server else 0.0
        print(
            f"  {sc.name:<16}{client:>9.1f}{server:>9.1f}{aws:>11.1f}{clients:>13.1f}"
            f"{rest:>13.1f}{client - server:>11.1f}{share:>10.0%}"
        )


def print_calls(scenarios: Sequence[Scenario]) -> None:
    print("\n2. AWS API calls per accepted push, request thread only (mean per push; ms/call)")
    operations: Counter[str] = Counter()
    timing: dict[str, list[float]] = {}
    for sc in scenarios:
        for trace in sc.traces:
            operations.update(trace.hooked)
            for call in trace.calls:
                op = call.label.split("[", 1)[0]
                timing.setdefault(op, []).append(call.ms)
    width = max(12, *(len(sc.name) + 1 for sc in scenarios))
    print(f"  {'operation':<34}" + "".join(f"{sc.name:>{width}}" for sc in scenarios) + "  ms/call")
    for op in sorted(operations):
        cells = "".join(
            f"{_count(mean([t.hooked[op] for t in sc.traces])):>{width}}" for sc in scenarios
        )
        print(f"  {op:<34}{cells}{statistics.median(timing.get(op, [0.0])):>9.1f}")
    cells = "".join(f"{mean([t.call_count for t in sc.traces]):>{width}.2f}" for sc in scenarios)
    print(f"  {'total calls':<34}{cells}")
    cells = "".join(f"{mean([t.sends for t in sc.traces]):>{width}.2f}" for sc in scenarios)
    print(f"  {'HTTP sends (before-send)':<34}{cells}")
    cells = "".join(f"{mean([len(t.clients) for t in sc.traces]):>{width}.2f}" for sc in scenarios)
    print(f"  {'botocore clients built':<34}{cells}")
    cells = "".join(f"{mean([t.client_ms for t in sc.traces]):>{width}.1f}" for sc in scenarios)
    print(f"  {'  ms building them':<34}{cells}")
    hooked = sum(t.call_count for sc in scenarios for t in sc.traces)
    wrapped = sum(len(t.calls) for sc in scenarios for t in sc.traces)
    agree = "agree" if hooked == wrapped else "DISAGREE"
    print(f"  cross-check: before-call hooks {hooked}, _make_api_call {wrapped}: {agree}")
    print("\n   one push of each kind, calls in order (ms):")
    for sc in scenarios:
        sample = _typical(sc)
        if sample is None or sample.trace is None:
            continue
        print(f"  {sc.name}: {_describe(sample)}")
        steps = [f"{c.label} {c.ms:.0f}" for c in sample.trace.calls]
        steps += [f"(+ built {c.label} client {c.ms:.0f})" for c in sample.trace.clients]
        for line in _wrap(steps, 92):
            print(f"      {line}")


def _count(value: float) -> str:
    """A mean count; "<0.01" rather than a misleading 0.00 for a rare call."""
    return "<0.01" if 0 < value < 0.005 else f"{value:.2f}"


def _typical(sc: Scenario) -> Sample | None:
    """The sample whose call count is the scenario's most common one, latency nearest p50."""
    traced = [s for s in sc.samples if s.trace is not None]
    if not traced:
        return None
    common = Counter(s.trace.call_count for s in traced if s.trace).most_common(1)[0][0]
    same = [s for s in traced if s.trace and s.trace.call_count == common]
    p50 = statistics.median(s.ms for s in same)
    return min(same, key=lambda s: abs(s.ms - p50))


def _describe(sample: Sample) -> str:
    deploys = sample.answer.get("deploys") or [{}]
    first = deploys[0]
    if "deploy_id" in first:
        what = f"{first.get('status')}, existing={first.get('existing')}"
    else:
        what = str(sample.answer.get("error") or sample.answer.get("result"))
    return f"HTTP {sample.status} ({what}), {sample.ms:.0f} ms"


def _wrap(items: Sequence[str], width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for item in items:
        candidate = f"{line} -> {item}" if line else item
        if len(candidate) > width and line:
            lines.append(line)
            line = item
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def print_rejects(rejects: Sequence[Scenario]) -> None:
    print("\n   rejected requests (request thread):")
    for sc in (sc for sc in rejects if sc.samples):
        statuses = Counter(s.status for s in sc.samples)
        ops: Counter[str] = Counter()
        for trace in sc.traces:
            ops.update(trace.hooked)
        calls = mean([t.call_count for t in sc.traces])
        detail = ", ".join(f"{op} x{n}" for op, n in sorted(ops.items())) or "none"
        print(
            f"  {sc.name:<36} n={len(sc.samples):<3} HTTP {dict(statuses)}  "
            f"p50 {statistics.median(sc.ms):.1f} ms  AWS calls/request {calls:.2f} ({detail})"
        )


def print_sizes(series: Sequence[tuple[int, Scenario]]) -> None:
    print("\n3. Latency against body size (same SHA, existing deploy; signed, padded commits)")
    print(
        f"  {'body bytes':>12}{'n':>5}{'median ms':>11}{'ratio':>8}{'server ms':>11}"
        f"{'AWS ms':>8}{'rest ms':>9}{'AWS calls':>11}"
    )
    series = [(size, sc) for size, sc in series if sc.samples]
    first = statistics.median(series[0][1].ms) if series else 1.0
    for size, sc in series:
        median = statistics.median(sc.ms)
        server = statistics.median([t.server_ms for t in sc.traces])
        aws = statistics.median([t.aws_ms + t.client_ms for t in sc.traces])
        rest = statistics.median([t.server_ms - t.aws_ms - t.client_ms for t in sc.traces])
        calls = mean([t.call_count for t in sc.traces])
        print(
            f"  {size:>12,}{len(sc.samples):>5}{median:>11.1f}{median / first:>8.2f}"
            f"{server:>11.1f}{aws:>8.1f}{rest:>9.1f}{calls:>11.2f}"
        )
    print("  ratio: median over the first size's median; rest: server time outside AWS calls")
    print("  (reading the body, HMAC, SHA-256, UTF-8 decode, json.loads, Chalice's event)")


# --------------------------------------------------------------------------- scenarios


def rss_mb() -> float:
    """This process' resident memory now (Linux), else its peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(name: str, run: Callable[[], Sample], count: int, note: str = "") -> Scenario:
    samples: list[Sample] = []
    rss = rss_mb()
    started = time.perf_counter()
    for _ in range(count):
        samples.append(run())
    return Scenario(name, samples, time.perf_counter() - started, note, rss_mb() - rss)


def expect(sample: Sample, status: int, what: str) -> Sample:
    if sample.status != status:
        raise RuntimeError(f"{what}: expected HTTP {status}, got {sample.status} {sample.answer}")
    return sample


def new_sha() -> str:
    return secrets.token_hex(20)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    pairs = []
    for part in text.split(","):
        size, _, count = part.partition(":")
        pairs.append((int(size), int(count or 5)))
    return pairs


def run(args: argparse.Namespace) -> int:
    import chalice.local

    meter = AwsMeter()
    meter.install()  # before any botocore client exists, so each one gets the hooks
    # chalice's local server writes the headers and the body of a response in two send()s;
    # with Nagle on, the second waits for the client's (delayed) ACK of the first
    chalice.local.ChaliceRequestHandler.disable_nagle_algorithm = args.tcp_nodelay
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    from chalicelib.webhooks import MAX_BODY_BYTES
    from devstack.stack import LocalStack, StackOptions

    secrets_file = json.loads((EVENTS / "secrets.json").read_text())
    template, headers = load_case()
    sizes = parse_sizes(args.sizes)
    if any(size > MAX_BODY_BYTES for size, _ in sizes):
        raise SystemExit(f"--sizes: every size must be at most {MAX_BODY_BYTES} bytes")
    print("webhook_ack: the webhook acknowledgement path on the embedded stack")
    print(
        f"  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    nodelay = "on (--tcp-nodelay)" if args.tcp_nodelay else "off, as the stack ships"
    print(f"  API server TCP_NODELAY: {nodelay}")
    print(f"  delivery: {CASE} (re-signed, fresh X-GitHub-Delivery each) -> {APP}/{ENV}, 1 host")
    with tempfile.TemporaryDirectory(prefix="roadie-bench-") as tmp:
        state = Path(tmp)
        options = StackOptions.from_env(
            api_token="bench-token",
            github_secret=secrets_file["github_webhook_secret"],
            gitlab_token=secrets_file["gitlab_secret_token"],
            bitbucket_secret=secrets_file["bitbucket_webhook_secret"],
            state_dir=state,
            hosts_dir=state / "hosts",
            config="",
            port=0,
        )
        stack = LocalStack(options)
        client: Client | None = None
        started = time.monotonic()
        try:
            with meter.ignored():
                stack.start()
                stack.reset(config=str(CORPUS_CONFIG), host_counts={"production": 1, "staging": 1})
            url = stack.start_api(port=0)
            print(f"  stack up in {time.monotonic() - started:.1f} s; API {url}")
            client = Client(url, secrets_file["github_webhook_secret"], headers, meter)
            env = Environment(meter, url, options.api_token, stack.provisioned.state_machine_arn)
            measure(args, client, env, template, sizes, MAX_BODY_BYTES)
        finally:
            if client is not None:
                client.close()
            with meter.ignored():
                stack.stop()
            meter.uninstall()
    print(f"\n  total {time.monotonic() - started:.0f} s")
    return 0


def measure(
    args: argparse.Namespace,
    client: Client,
    env: Environment,
    template: dict[str, Any],
    sizes: list[tuple[int, int]],
    max_body: int,
) -> None:
    env.freeze("bench: no rollout while the ack path is measured")
    for _ in range(args.warmup):  # builds the container, its clients, the secret caches
        expect(client.push(with_sha(template, new_sha())), 202, "warm-up push")

    new_deploy = timed(
        "new deploy",
        lambda: expect(client.push(with_sha(template, new_sha())), 202, "new deploy"),
        args.pushes,
        note="each push records a deploy, queued behind the freeze, superseding the last one",
    )
    same = new_sha()
    expect(client.push(with_sha(template, same)), 202, "first push of the shared SHA")
    same_sha = timed(
        "same SHA",
        lambda: expect(client.push(with_sha(template, same)), 202, "same SHA"),
        args.pushes,
        note="answered with the deploy the first push of that SHA queued (no new record)",
    )

    small = with_sha(minimal_push(template), same)
    series = []
    for size, count in sizes:
        body = _encode(padded(small, size))
        send = functools.partial(_accepted, client, body)
        series.append((len(body), timed(f"{size}", send, count)))

    rejects = [
        timed(
            "bad signature (secrets cached)",
            lambda: client.post(_encode(small), signature="sha256=" + "0" * 64),
            args.rejects,
        ),
        timed(
            "bad signature (secrets cache cold)",
            lambda: _cold(lambda: client.post(_encode(small), signature="sha256=" + "0" * 64)),
            args.rejects,
        ),
        timed(
            f"oversized body ({max_body + 1:,} bytes)",
            lambda: client.post(b'{"x": "' + b"a" * (max_body - 8) + b'"}'),
            3,
        ),
    ]

    starts = Scenario("starts rollout", [], 0.0)
    burst = Scenario("burst", [], 0.0)
    try:
        env.freeze(None)  # starts the deploy the freeze left queued: let it finish, untimed
        env.wait_quiet()
        waited: list[float] = []
        for _ in range(args.rollout_pushes):
            t0 = time.perf_counter()
            starts.samples.append(
                expect(client.push(with_sha(template, new_sha())), 202, "rollout")
            )
            starts.wall_s += time.perf_counter() - t0
            waited.append(env.wait_quiet())
        starts.note = f"idle environment each time (waited {mean(waited):.2f} s per rollout)"
        burst = timed(
            "burst",
            lambda: expect(client.push(with_sha(template, new_sha())), 202, "burst"),
            args.burst,
        )
        drained = f"rollouts drained {env.wait_quiet():.1f} s after the last push"
    except StillBusyError as exc:
        drained = f"NOT DRAINED: {exc}"
        print(f"  warning: {exc}")
    statuses = Counter(
        str((s.answer.get("deploys") or [{}])[0].get("status")) for s in burst.samples
    )
    retries = sum(
        max(0, sum(1 for c in s.trace.calls if "TransactWriteItems" in c.label) - 1)
        for s in burst.samples
        if s.trace
    )
    burst.note = (
        f"live environment: answered {dict(statuses)}; {retries} admission retries "
        f"(lost conditional writes); {drained}"
    )

    scenarios = [sc for sc in (new_deploy, same_sha, starts, burst) if sc.samples]
    print_latency(scenarios)
    print_calls(scenarios)
    print_rejects(rejects)
    print_sizes(series)


def _accepted(client: Client, body: bytes) -> Sample:
    return expect(client.post(body), 202, f"signed push of {len(body):,} bytes")


def _cold(send: Callable[[], Sample]) -> Sample:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # as after the 60 s max_age, or in a fresh Lambda container
    return send()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhook_ack", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--pushes", type=int, default=300, help="pushes per bulk scenario")
    parser.add_argument(
        "--rollout-pushes", type=int, default=10, help="pushes that each start a rollout"
    )
    parser.add_argument(
        "--burst", type=int, default=12, help="back-to-back pushes into the live environment"
    )
    parser.add_argument("--rejects", type=int, default=20, help="bad-signature requests")
    parser.add_argument(
        "--tcp-nodelay",
        action="store_true",
        help="set TCP_NODELAY on the local API server's sockets (off, as the stack ships)",
    )
    parser.add_argument("--warmup", type=int, default=5, help="untimed pushes first")
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"body sizes in bytes with a count each, size:count,... (default {DEFAULT_SIZES})",
    )
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
