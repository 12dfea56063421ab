"""What a rollout costs on top of the hosts' own work: wall time against the physical floor,
orchestration overhead per wave, Step Functions history events per step, and the fleet sizes
one execution can take.

``python -m bench.rollout [--fleets 10,100,1000] [--batch-percent 20] [--t-host 0.2] ...``

For each fleet size the embedded stack (moto server, host agent, provisioning) is reset with a
pipeline config written to a temporary file: one app (``shop``), one environment
(``production``, hosts found by the tags ``App=shop, Environment=production``), the batch size
a percentage of the fleet, a ``migrate`` command and no ``post_migrate`` command. A rollout is
then ``stage`` (every host) -> ``migrate`` (one host) -> ``switch`` + ``verify`` per batch:
with 20 % batches, 5 batches and 12 steps whatever the fleet size. One deploy is requested
through the real path (``chalicelib.bootstrap.container().deploys.request``, what ``POST
/deploys`` calls) and waited for; the generic state machine runs in moto and its task Lambdas
run Roadie's code in-process.

The hosts' work is a fixed sleep: the host agent's ``_execute`` is replaced (in this process
only) by one that sleeps ``--t-stage`` / ``--t-migrate`` / ``--t-host`` seconds and prints
``REVISION=<the sha it was given>`` for ``verify`` (the real script would spend its time in
git). So the physical floor is known: ``T_stage + T_migrate + 2 x batches x T_host``, every
step being one wave of hosts running in parallel. ``LocalStack.start`` builds
``HostAgent(hosts_dir)`` with the default 16 workers and has no setting for it, so the
benchmark also swaps ``devstack.hostagent.HostAgent`` for a subclass whose pool holds a whole
wave (every host, plus the one thread per SSM command that waits for its hosts).

Before each deploy the composition root's clients are built (a Lambda's cold start is not an
orchestration cost). Nothing about time is asserted; it prints:

- per step: hosts, SSM commands sent (against ``ceil(hosts / 50)``), poll iterations, history
  events, and the step's time on its critical path: ``lead`` (Dispatch starts -> the first host
  starts), ``hosts`` (first host starts -> last host done: T_host plus the fan-out's spread),
  ``tail`` (last host done -> the poll that saw it returned: the rest of the dispatch Lambda
  when the hosts finish first, the wait for the next poll, then that poll reading and storing
  every host's result) and ``transit`` (that poll returned -> the next Dispatch starts: Route,
  Bake, Advance and the Lambda invoke, in the state machine), plus the AWS API calls Roadie's
  task Lambdas made and the time they took. Every step (stage and migrate too) is a wave;
- the request's own AWS calls (``deploys.request``: plan, record, lock, StartExecution);
- per fleet: wall time (request -> the finish Lambda done) against the floor, overhead per
  wave, history events per step and per poll iteration, the sizes of the execution's input and
  of its largest state;
- the caps: the most steps, batches and hosts (at a fixed batch size) one execution fits in
  25,000 history events, and the largest fleet whose plan fits in a state's 256 KiB.

The poll interval is the stack's: ``WaitForHosts`` waits ``poll_seconds`` (1) scaled by the
stack's ``wait_scale`` (0.05), i.e. 50 ms, which bounds the overhead per wave from below.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .meter import CallMeter, Calls, mean

HISTORY_CAP = 25_000  # events per Standard execution
PAYLOAD_CAP = 256 * 1024  # bytes of a state's input or output
ITEM_CAP = 400 * 1024  # bytes of a DynamoDB item
MAX_PER_COMMAND = 50  # instance ids per SSM SendCommand
APP = "shop"
ENVIRONMENT = "production"
CONFIG = """\
# bench.rollout: one app, one environment; migrate but no post_migrate; batch {batch}
[apps.shop]
repository = "roadie-demo/shop"
source = {{ kind = "git", url = "${{ROADIE_STATE_DIR}}/sources/shop" }}
keep_releases = 5

[apps.shop.commands]
build = "bin/build"
migrate = "bin/migrate"
post_migrate = ""
health = "bin/health"
restart = "bin/restart"

[apps.shop.environments.production]
branch = "main"
hosts = {{ tags = {{ App = "shop", Environment = "production" }} }}
batch_size = "{batch}"
migration_host = "first"
trigger = "manual"
timeouts = {{ stage = 600, migrate = 600, switch = 120, verify = 120, rollback = 120 }}
"""


# --- probes: what happens inside the process while a deploy runs ----------------------------


@dataclass
class StepProbe:
    """Times (``time.monotonic``) of one step's task Lambdas."""

    dispatch_start: float = 0.0
    dispatch_end: float = 0.0
    polls: int = 0
    last_poll_start: float = 0.0
    last_poll_end: float = 0.0
    calls: Calls = field(default_factory=Calls)


@dataclass
class HostProbe:
    """The host agent's view of one step (the step label ends each command's comment)."""

    first_start: float = math.inf
    last_end: float = 0.0
    runs: int = 0


@dataclass
class Probe:
    steps: dict[int, StepProbe] = field(default_factory=lambda: defaultdict(StepProbe))
    hosts: dict[str, HostProbe] = field(default_factory=lambda: defaultdict(HostProbe))
    finish_start: float = 0.0
    finish_end: float = 0.0
    finish_calls: Calls = field(default_factory=Calls)
    request_calls: Calls = field(default_factory=Calls)
    lock: threading.Lock = field(default_factory=threading.Lock)


PROBE = Probe()
METER: CallMeter[Calls] = CallMeter()  # records into the Calls of what runs on each thread


def _instrument_rollout_service() -> None:
    """Time Roadie's task Lambdas per step; count and time their AWS calls (``METER``), by the
    thread the Lambda runs on."""
    from chalicelib.domain.contract import DispatchTask, Finished, FinishTask, PollTask, Route, Wave
    from chalicelib.services.rollout import RolloutService

    METER.install()
    dispatch = RolloutService.dispatch_step
    poll, finish = RolloutService.poll_step, RolloutService.finish_step

    def timed_dispatch(self: RolloutService, task: DispatchTask) -> Wave:
        step = PROBE.steps[task.cursor]
        started = time.monotonic()
        try:
            with METER.recording(step.calls):
                return dispatch(self, task)
        finally:
            step.dispatch_start = step.dispatch_start or started  # a retry keeps the first
            step.dispatch_end = time.monotonic()

    def timed_poll(self: RolloutService, task: PollTask) -> Route:
        step = PROBE.steps[task.wave.cursor]
        started = time.monotonic()
        try:
            with METER.recording(step.calls):
                return poll(self, task)
        finally:
            step.polls += 1
            step.last_poll_start, step.last_poll_end = started, time.monotonic()

    def timed_finish(self: RolloutService, task: FinishTask) -> Finished:
        PROBE.finish_start = time.monotonic()
        try:
            with METER.recording(PROBE.finish_calls):
                return finish(self, task)
        finally:
            PROBE.finish_end = time.monotonic()

    RolloutService.dispatch_step = timed_dispatch  # type: ignore[method-assign]
    RolloutService.poll_step = timed_poll  # type: ignore[method-assign]
    RolloutService.finish_step = timed_finish  # type: ignore[method-assign]


def _install_sleeping_agent(workers: int, t_host: float, t_stage: float, t_migrate: float) -> None:
    """Every host command becomes a fixed sleep (no bash, no git) in a pool that holds a whole
    wave. ``LocalStack.start`` imports ``HostAgent`` when it runs, so replacing the module
    attribute before ``start()`` is enough (devstack itself is not edited)."""
    from devstack import hostagent

    durations = {"stage": t_stage, "migrate": t_migrate}

    class SleepingHostAgent(hostagent.HostAgent):
        def __init__(self, hosts_dir: Path, workers_: int = 16) -> None:
            super().__init__(hosts_dir, workers=max(workers, workers_))

        def _run_host(
            self,
            command: Any,
            invocation: dict[str, Any],
            document: dict[str, Any],
            params: dict[str, str],
        ) -> None:
            started = time.monotonic()
            super()._run_host(command, invocation, document, params)
            ended = time.monotonic()
            label = (command.comment or "").rsplit(" ", 1)[-1]  # "roadie <deploy id> <label>"
            with PROBE.lock:
                host = PROBE.hosts[label]
                host.first_start = min(host.first_start, started)
                host.last_end = max(host.last_end, ended)
                host.runs += 1

        def _execute(
            self,
            instance_id: str,
            document: dict[str, Any],
            params: dict[str, str],
            timeout: int,
            run: Any,
        ) -> tuple[str, int, str, str]:
            if not self.host_dir(instance_id).is_dir():
                return "Failed", 1, "", f"host agent: no sandbox for {instance_id}"
            phase = params.get("phase", "")
            time.sleep(durations.get(phase, t_host))
            out = f"REVISION={params.get('sha', '')}\n" if phase == "verify" else f"{phase} ok\n"
            return "Success", 0, out, ""

    hostagent.HostAgent = SleepingHostAgent  # type: ignore[misc,assignment]


# --- one deploy --------------------------------------------------------------------------------


@dataclass
class StepResult:
    label: str
    hosts: int
    commands: int
    polls: int
    events: int
    seconds: float  # this Dispatch started -> the next one (or the finish Lambda) started
    lead_s: float
    hosts_s: float
    tail_s: float
    transit_s: float
    dispatch_s: float  # the dispatch Lambda's own duration
    collect_s: float  # the last poll Lambda's own duration (it reads every host's result)
    calls: Calls


@dataclass
class FleetResult:
    fleet: int
    per_batch: int
    batches: int
    steps: list[StepResult]
    floor_s: float
    wall_s: float
    request_s: float  # deploys.request() returned (the execution has started)
    before_first_s: float  # request -> the first Dispatch started
    finish_s: float  # the finish Lambda
    record_s: float
    status: str
    events: int
    events_outside: int  # not in any step: execution start/end and the Record* state
    events_by_state: Counter[str]
    input_bytes: int
    input_doc: dict[str, Any]
    max_state_bytes: int
    record_bytes: int  # the deploy's DynamoDB item when it ended
    reset_s: float
    history_s: float
    finish_calls: Calls
    request_calls: Calls

    @property
    def waves(self) -> int:
        return len(self.steps)

    @property
    def polls(self) -> int:
        return sum(s.polls for s in self.steps)

    @property
    def overhead_per_wave_s(self) -> float:
        return (self.wall_s - self.floor_s) / self.waves

    @property
    def steps_overhead_per_wave_s(self) -> float:
        """The same, counting only the steps (not the request before, nor the finish)."""
        return (sum(s.seconds for s in self.steps) - self.floor_s) / self.waves

    def per_poll_events(self) -> float:
        loop = sum(self.events_by_state[s] for s in ("WaitForHosts", "Poll", "Route"))
        return loop / self.polls

    def per_step_fixed_events(self) -> float:
        """Events of a step besides its poll loop (Dispatch, Bake, Advance), all but the last."""
        loop = self.per_poll_events()
        body = self.steps[:-1]
        return sum(s.events - loop * s.polls for s in body) / len(body)


def _step_label(step: dict[str, Any]) -> str:
    from chalicelib.services.rollout import step_label

    return step_label(step)


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    # moto answers with the whole history in one page (it ignores maxResults); follow
    # nextToken all the same
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _split_history(
    events: list[dict[str, Any]],
) -> tuple[dict[int, int], int, Counter[str]]:
    """Events per step (a step starts when Dispatch is entered; its cursor is in the input),
    events outside every step, and events per state name (each event belongs to the state
    entered last)."""
    per_step: Counter[int] = Counter()
    by_state: Counter[str] = Counter()
    outside = 0
    cursor: int | None = None
    state = ""
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            state = entered["name"]
            if state == "Dispatch":
                cursor = int(json.loads(entered["input"])["cursor"])
            elif state.startswith("Record"):
                cursor = None
        if event["type"].startswith("Execution") or cursor is None:
            outside += 1
            continue
        per_step[cursor] += 1
        by_state[state] += 1
    return dict(per_step), outside, by_state


def _largest_state(events: list[dict[str, Any]]) -> int:
    largest = 0
    for event in events:
        for key, part in (
            ("stateEnteredEventDetails", "input"),
            ("stateExitedEventDetails", "output"),
        ):
            text = (event.get(key) or {}).get(part)
            if text:
                largest = max(largest, len(text.encode()))
    return largest


def _item_bytes(value: Any) -> int:
    """A DynamoDB item's size by DynamoDB's rules (low-level JSON: {"S": ...}, {"M": ...})."""
    if isinstance(value, dict) and len(value) == 1:
        kind, inner = next(iter(value.items()))
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return len(inner.lstrip("-").replace(".", "")) // 2 + 2
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "L":
            return 3 + sum(1 + _item_bytes(v) for v in inner)
        if kind == "M":
            return 3 + sum(1 + len(k.encode()) + _item_bytes(v) for k, v in inner.items())
    if isinstance(value, dict):  # the item itself: attribute names + values
        return sum(len(k.encode()) + _item_bytes(v) for k, v in value.items())
    return 0


def run_fleet(stack: Any, config: Path, fleet: int, floor: dict[str, float]) -> FleetResult:
    import boto3

    from chalicelib import bootstrap
    from chalicelib.domain.model import Requester
    from chalicelib.services.clock import parse_iso

    global PROBE
    started = time.monotonic()
    stack.reset(config=str(config), host_counts={ENVIRONMENT: fleet})
    reset_s = time.monotonic() - started
    container = bootstrap.container()
    _ = container.deploys, container.rollout  # build the clients now: cold start is not measured
    sfn = boto3.client("stepfunctions", region_name=container.settings.region)
    PROBE = Probe()

    t0 = time.monotonic()
    with METER.recording(PROBE.request_calls):
        deploy, created = container.deploys.request(
            app=APP,
            environment=ENVIRONMENT,
            requester=Requester("bench", "api"),
            sha=stack.sources.v2,
            reason=f"bench.rollout, {fleet} hosts",
        )
    request_s = time.monotonic() - t0
    if not created or not deploy.execution_arn:
        raise RuntimeError(f"the deploy did not start: {deploy}")
    deadline = t0 + 600
    status = "RUNNING"
    while status == "RUNNING":
        if time.monotonic() > deadline:
            sfn.stop_execution(executionArn=deploy.execution_arn, cause="bench.rollout: too slow")
        time.sleep(0.1)
        status = sfn.describe_execution(executionArn=deploy.execution_arn)["status"]
    wall_s = (PROBE.finish_end or time.monotonic()) - t0
    execution = sfn.describe_execution(executionArn=deploy.execution_arn)
    record = container.deploy_repository.get(deploy.deploy_id)
    item = boto3.client("dynamodb", region_name=container.settings.region).get_item(
        TableName=container.settings.deploys_table, Key={"deploy_id": {"S": deploy.deploy_id}}
    )["Item"]
    record_s = float("nan")
    if record.started_at and record.finished_at:
        record_s = (parse_iso(record.finished_at) - parse_iso(record.started_at)).total_seconds()

    h0 = time.monotonic()
    events = _history(sfn, deploy.execution_arn)
    history_s = time.monotonic() - h0
    per_step_events, outside, by_state = _split_history(events)

    plan = json.loads(execution["input"])["plan"]
    steps: list[StepResult] = []
    for cursor, plan_step in enumerate(plan["steps"]):
        probe = PROBE.steps[cursor]
        last = cursor + 1 == len(plan["steps"])
        end = PROBE.finish_start if last else PROBE.steps[cursor + 1].dispatch_start
        label = _step_label(plan_step)
        host = PROBE.hosts[label]
        first_host = host.first_start if host.runs else probe.dispatch_end
        last_host = host.last_end if host.runs else probe.dispatch_end
        steps.append(
            StepResult(
                label=label,
                hosts=len(plan_step["hosts"]),
                commands=probe.calls.count["SendCommand"],
                polls=probe.polls,
                events=per_step_events.get(cursor, 0),
                seconds=end - probe.dispatch_start,
                lead_s=first_host - probe.dispatch_start,
                hosts_s=last_host - first_host,
                tail_s=probe.last_poll_end - last_host,
                transit_s=end - probe.last_poll_end,
                dispatch_s=probe.dispatch_end - probe.dispatch_start,
                collect_s=probe.last_poll_end - probe.last_poll_start,
                calls=probe.calls,
            )
        )
    batches = sum(1 for s in plan["steps"] if s["command"] == "switch")
    migrates = sum(1 for s in plan["steps"] if s["command"] == "migrate")
    return FleetResult(
        fleet=fleet,
        per_batch=int(plan["batch_size"]),
        batches=batches,
        steps=steps,
        floor_s=floor["stage"] + floor["migrate"] * migrates + floor["host"] * 2 * batches,
        wall_s=wall_s,
        request_s=request_s,
        before_first_s=PROBE.steps[0].dispatch_start - t0,
        finish_s=PROBE.finish_end - PROBE.finish_start,
        record_s=record_s,
        status=f"execution {status}, deploy {record.status.value}",
        events=len(events),
        events_outside=outside,
        events_by_state=by_state,
        input_bytes=len(execution["input"].encode()),
        input_doc=json.loads(execution["input"]),
        max_state_bytes=_largest_state(events),
        record_bytes=_item_bytes(item),
        reset_s=reset_s,
        history_s=history_s,
        finish_calls=PROBE.finish_calls,
        request_calls=PROBE.request_calls,
    )


# --- printing ------------------------------------------------------------------------------------


def _ms(seconds: float, width: int = 6) -> str:
    return f"{seconds * 1000:{width}.0f}"


def print_steps(r: FleetResult) -> None:
    print(
        f"\n{r.fleet} hosts: {r.per_batch} per batch, {r.batches} batches, {r.waves} steps;"
        f" {r.status}; stack reset + provisioning {r.reset_s:.1f} s"
    )
    print(
        "  step             hosts cmds ceil/50 polls events  step ms   lead  hosts   tail"
        " transit  disp.  coll.  AWS calls (ms): top 3"
    )
    for s in r.steps:
        expected = math.ceil(s.hosts / MAX_PER_COMMAND)
        print(
            f"  {s.label:<16} {s.hosts:>5} {s.commands:>4} {expected:>4}"
            f" {'ok' if s.commands == expected else '!!'}"
            f" {s.polls:>5} {s.events:>6}  {_ms(s.seconds, 7)} {_ms(s.lead_s)} {_ms(s.hosts_s)}"
            f" {_ms(s.tail_s)}  {_ms(s.transit_s)} {_ms(s.dispatch_s)} {_ms(s.collect_s)}"
            f"  {s.calls.total:>4} ({_ms(s.calls.total_seconds, 4)}): {s.calls.by_operation(3)}"
        )
    steps_s = sum(s.seconds for s in r.steps)
    print(
        f"  wall {r.wall_s:.2f} s = request {r.before_first_s:.2f} s (deploys.request returned"
        f" after {r.request_s:.2f} s) + steps {steps_s:.2f} s + finish Lambda {r.finish_s:.2f} s;"
        f" the record says {r.record_s:.2f} s; floor {r.floor_s:.2f} s"
    )
    print(f"  the request's own AWS calls: {r.request_calls.by_operation(ms_unit=' ms')}")
    print(
        f"  {r.events} history events, fetched in one call in {r.history_s:.2f} s; the deploy"
        f" record is {r.record_bytes / 1024:.1f} KB",
        flush=True,
    )


def print_summary(results: Sequence[FleetResult], t_host: float) -> None:
    print(
        "\nsummary: wall = request -> finish Lambda done; floor = T_stage + T_migrate"
        " + 2 x batches x T_host; a wave = one step"
    )
    print(
        "  fleet batch steps floor s  wall s wall/floor  overhead/wave ms   request s"
        "  steps s  steps/floor  overhead/wave ms (steps only)"
    )
    for r in results:
        steps_s = sum(s.seconds for s in r.steps)
        print(
            f"  {r.fleet:>5} {r.per_batch:>5} {r.waves:>5} {r.floor_s:>7.2f} {r.wall_s:>7.2f}"
            f" {r.wall_s / r.floor_s:>10.2f} {r.overhead_per_wave_s * 1000:>17.0f}"
            f" {r.before_first_s:>11.2f} {steps_s:>8.2f} {steps_s / r.floor_s:>12.2f}"
            f" {r.steps_overhead_per_wave_s * 1000:>17.0f}"
        )
    print(
        "\n  history events (each belongs to the state entered last; a step = Dispatch to the"
        " next Dispatch) and sizes"
    )
    print(
        "  fleet  events  outside steps  events/step  polls/step  events/poll"
        "  events/step besides polls  input KB  max state KB  record KB"
    )
    for r in results:
        print(
            f"  {r.fleet:>5} {r.events:>7} {r.events_outside:>14}"
            f" {(r.events - r.events_outside) / r.waves:>12.1f} {r.polls / r.waves:>11.2f}"
            f" {r.per_poll_events():>12.1f} {r.per_step_fixed_events():>27.1f}"
            f" {r.input_bytes / 1024:>9.1f} {r.max_state_bytes / 1024:>13.1f}"
            f" {r.record_bytes / 1024:>10.1f}"
        )
    print(
        f"\n  mean ms per wave (T_host {t_host * 1000:.0f} ms): lead + hosts + tail + transit"
        " = step; disp./coll. = the dispatch / last poll Lambda; AWS = Roadie's calls per wave"
    )
    print("  fleet   lead  hosts   tail transit   step  disp.  coll.  AWS calls  AWS ms  ms/call")
    for r in results:
        n = r.waves
        calls = sum(s.calls.total for s in r.steps)
        spent = sum(s.calls.total_seconds for s in r.steps)
        print(
            f"  {r.fleet:>5} {_ms(mean([s.lead_s for s in r.steps]))}"
            f" {_ms(mean([s.hosts_s for s in r.steps]))}"
            f" {_ms(mean([s.tail_s for s in r.steps]))}"
            f"  {_ms(mean([s.transit_s for s in r.steps]))}"
            f" {_ms(mean([s.seconds for s in r.steps]))}"
            f" {_ms(mean([s.dispatch_s for s in r.steps]))}"
            f" {_ms(mean([s.collect_s for s in r.steps]))}"
            f" {calls / n:>10.1f} {_ms(spent / n, 7)} {spent / calls * 1000:>8.1f}"
        )
    print("\n  AWS calls by Roadie's task Lambdas, whole rollout, by operation (ms)")
    for r in results:
        total = Calls()
        for s in r.steps:
            total.add(s.calls)
        total.add(r.finish_calls)
        print(f"  {r.fleet:>5}: {total.total} = {total.by_operation(ms_unit='')}")


def _plan(fleet: int, batch: str) -> Any:
    """The domain planner's plan for ``fleet`` hosts (AWS-shaped instance ids), with a migration."""
    from chalicelib.domain.model import Host
    from chalicelib.domain.rollout import BatchSize, RolloutPolicy, plan_rollout

    hosts = [Host(f"i-{n:017x}", f"host-{n}", "us-east-1a") for n in range(fleet)]
    policy = RolloutPolicy(batch_size=BatchSize.parse(batch), run_migrations=True)
    return plan_rollout(hosts, policy)


def steps_for(fleet: int, batch: str) -> int:
    return len(_plan(fleet, batch).steps)


def _compact(doc: Any) -> int:
    return len(json.dumps(doc, separators=(",", ":")).encode())


def payload_cap_fleet(measured: FleetResult, batch: str) -> int:
    """The largest fleet whose largest state stays within 256 KiB: the execution input with
    the planner's plan for that fleet, plus what the run's largest state carried on top of its
    input (``$.wave``, ``$.poll``), found by bisection."""
    extra = measured.max_state_bytes - _compact(measured.input_doc)

    def size(fleet: int) -> int:
        return _compact({**measured.input_doc, "plan": _plan(fleet, batch).to_dict()}) + extra

    low, high = 1, 2
    while size(high) <= PAYLOAD_CAP:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if size(middle) <= PAYLOAD_CAP else (low, middle)
    return low


def print_caps(results: Sequence[FleetResult], batch_percent: int, fixed_batch: int) -> None:
    largest = results[-1]
    per_poll = largest.per_poll_events()
    per_step = largest.per_step_fixed_events()
    last = largest.steps[-1]
    # the last step has no Bake/Advance: fold the difference into the fixed part
    fixed = largest.events_outside + (last.events - per_poll * last.polls) - per_step
    measured = max(r.polls / r.waves for r in results)
    payload_fleet = payload_cap_fleet(largest, f"{batch_percent}%")
    payload_fixed = payload_cap_fleet(largest, str(fixed_batch))
    record_fleet = 0
    if len(results) >= 2:
        small, big = results[0], results[-1]
        span = big.fleet - small.fleet
        state_per_host = (big.max_state_bytes - small.max_state_bytes) / span
        record_per_host = (big.record_bytes - small.record_bytes) / span
        record_base = small.record_bytes - record_per_host * small.fleet
        record_fleet = int((ITEM_CAP - record_base) // record_per_host)
    print(
        f"\ncaps of one execution. History: at most {HISTORY_CAP:,} events; from the runs,"
        f" events = {fixed:.0f} + steps x ({per_step:.0f} + {per_poll:.0f} x polls per step)"
    )
    sizes = (10, 1_000, 100_000)
    print(
        f"  steps with {batch_percent}% batches: "
        + ", ".join(f"{n:,} hosts -> {steps_for(n, f'{batch_percent}%')}" for n in sizes)
        + "\n  (with a fractional batch the steps grow with 1 / fraction, not with the fleet:"
        " the history caps the number of batches, not the fleet)"
    )
    print(
        "  polls/step  a step that ...                      events/step  max steps  max batches"
        f"  (batch >= % of fleet)  max fleet @ {fixed_batch}/batch  with the payload cap"
    )
    for polls, what in (
        (1.0, "ends within one poll interval"),
        (measured, "is as slow as here (max of the runs)"),
        (12.0, "takes 60 s, poll_seconds=5 (AWS)"),
        (60.0, "takes 5 min, poll_seconds=5 (AWS)"),
    ):
        events_per_step = per_step + per_poll * polls
        max_steps = int((HISTORY_CAP - fixed) // events_per_step)
        max_batches = (max_steps - 2) // 2  # stage + migrate, then switch + verify per batch
        by_history = max_batches * fixed_batch
        both = min(by_history, payload_fixed)
        print(
            f"  {polls:>10.2f}  {what:<36} {events_per_step:>11.1f} {max_steps:>10,}"
            f" {max_batches:>12,}  {100 / max_batches:>20.2f}%  {by_history:>19,}"
            f"  {both:>19,}"
        )
    print(
        "  payload: the plan (every host id in `hosts`, in its steps and their chunks, and in"
        " the rollback step) is in every state's data, and a state may carry at most"
        f" {PAYLOAD_CAP // 1024} KiB\n  (moto does not enforce it): the largest fleet one"
        f" execution can take is {payload_fleet:,} hosts with {batch_percent}% batches,"
        f" {payload_fixed:,} with batches of {fixed_batch}"
    )
    if len(results) < 2:
        return
    print(
        f"  (measured: the largest state grows {state_per_host:.0f} B/host from"
        f" {small.fleet} to {big.fleet} hosts)"
    )
    print(
        f"  record: the deploy's DynamoDB item grows {record_per_host:.0f} B/host with"
        f" {batch_percent}% batches (plan summary, per-step phases); an item may be at most"
        f" {ITEM_CAP // 1024} KB -> ~{record_fleet:,} hosts"
    )


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rollout", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--fleets", default="10,100,1000", help="fleet sizes (10,100,1000)")
    parser.add_argument("--batch-percent", type=int, default=20, help="batch, %% of fleet (20)")
    parser.add_argument("--t-host", type=float, default=0.2, help="s per host command (0.2)")
    parser.add_argument("--t-stage", type=float, help="s per host for stage (T_host)")
    parser.add_argument("--t-migrate", type=float, help="s for migrate (T_host)")
    parser.add_argument("--fixed-batch", type=int, default=10, help="batch size for the cap (10)")
    parser.add_argument("--workers", type=int, default=0, help="host agent threads (a wave)")
    args = parser.parse_args(argv)
    args.fleet_sizes = [int(n) for n in args.fleets.split(",") if n.strip()]
    args.t_stage = args.t_host if args.t_stage is None else args.t_stage
    args.t_migrate = args.t_host if args.t_migrate is None else args.t_migrate
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    largest = max(args.fleet_sizes)
    workers = args.workers or largest + math.ceil(largest / MAX_PER_COMMAND) + 8
    _install_sleeping_agent(workers, args.t_host, args.t_stage, args.t_migrate)

    from devstack.stack import LocalStack, StackOptions

    began = time.monotonic()
    results: list[FleetResult] = []
    with tempfile.TemporaryDirectory(prefix="roadie-bench-rollout-") as tmp:
        state = Path(tmp)
        config = state / "pipeline.toml"
        config.write_text(CONFIG.format(batch=f"{args.batch_percent}%"))
        options = StackOptions.from_env(
            state_dir=state,
            hosts_dir=state / "hosts",
            config=str(config),
            port=0,
            host_counts={ENVIRONMENT: 1},
        )
        print(
            f"bench.rollout  {time.strftime('%Y-%m-%d')}  {platform.platform()}"
            f"  {os.cpu_count()} cores  Python {platform.python_version()}"
            f"  load average {os.getloadavg()[0]:.2f} (a shared machine inflates every time)"
        )
        print(
            f"fleets {args.fleet_sizes}; batch {args.batch_percent}% of the fleet; per host"
            f" T_stage {args.t_stage} s, T_migrate {args.t_migrate} s, T_host {args.t_host} s"
            f" (switch, verify); host agent pool {workers} threads (LocalStack's is 16: patched)"
        )
        print(
            f"poll interval: WaitForHosts = poll_seconds {options.poll_seconds} x wait_scale"
            f" {options.wait_scale} = {options.poll_seconds * options.wait_scale * 1000:.0f} ms,"
            " a floor under the overhead per wave; Bake 0 s. Config: one app, one environment,"
            " migrate, no post_migrate"
        )
        stack = LocalStack(options)
        try:
            stack.start()
            _instrument_rollout_service()
            for fleet in args.fleet_sizes:
                floor = {"stage": args.t_stage, "migrate": args.t_migrate, "host": args.t_host}
                results.append(run_fleet(stack, config, fleet, floor))
                print_steps(results[-1])
        finally:
            stack.stop()
    if results:
        print_summary(results, args.t_host)
        print_caps(results, args.batch_percent, args.fixed_batch)
    print(f"\ntotal {time.monotonic() - began:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
