"""Rollout planning: a fleet and a policy become an ordered, batched plan (data, no I/O).

Rules, in order:
1. Hosts are ordered deterministically (zone, name, instance id) so the same fleet always gives
   the same plan; the migration host, when there is one, is moved to the front so it is staged
   first and switched in the first batch.
2. ``stage`` runs on every host (no traffic impact), then ``migrate`` runs once on one host,
   then each switch batch runs ``switch`` and then ``verify`` (and bakes before the next batch);
   ``post_migrate`` runs once, last, only after every host runs the new release.
   The plan also carries a ``rollback`` step over every host, run only if a switched batch
   fails: rolling back is idempotent per host, so sending it to all of them is safe.
3. No SSM command targets more than ``MAX_TARGETS_PER_COMMAND`` instances: larger steps are
   split into chunks that run in parallel.

A plan has one JSON shape (``RolloutPlan.to_json``): the execution input carries it (without the
host names) and the deploy record stores it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import PlanningError
from .model import Host, HostCommand

MAX_TARGETS_PER_COMMAND = 50


@dataclass(frozen=True)
class BatchSize:
    """How many hosts switch at once: a count, or a percentage of the fleet."""

    value: int
    percent: bool = False

    def __post_init__(self) -> None:
        if self.value < 1 or (self.percent and self.value > 100):
            raise PlanningError(f"batch size {self.describe()} is out of range")

    @classmethod
    def parse(cls, raw: int | str) -> BatchSize:
        """``2`` or ``"2"`` is a count; ``"25%"`` is a percentage."""
        if isinstance(raw, bool):
            raise PlanningError(f"batch size must be a count or a percentage, got {raw!r}")
        if isinstance(raw, int):
            return cls(raw)
        text = raw.strip()
        try:
            if text.endswith("%"):
                return cls(int(text[:-1]), percent=True)
            return cls(int(text))
        except ValueError as exc:
            raise PlanningError(f"batch size must be a count or a percentage, got {raw!r}") from exc

    def hosts_per_batch(self, fleet_size: int) -> int:
        if self.percent:
            return max(1, math.ceil(fleet_size * self.value / 100))
        return min(self.value, max(fleet_size, 1))

    def describe(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


@dataclass(frozen=True)
class PhaseTimeouts:
    """Seconds a host may take per command before it counts as timed out."""

    stage: int = 900
    migrate: int = 1800
    switch: int = 300
    verify: int = 300
    post_migrate: int = 1800
    rollback: int = 300

    def for_command(self, command: HostCommand) -> int:
        return int(getattr(self, command.value))


@dataclass(frozen=True)
class Step:
    """One command sent to a set of hosts; ``batch`` numbers switch/verify waves from 1."""

    command: HostCommand
    hosts: tuple[str, ...]
    timeout_seconds: int
    batch: int = 0
    bake_seconds: int = 0  # after a verified batch: watch it this long before the next one

    @property
    def chunks(self) -> tuple[tuple[str, ...], ...]:
        """The hosts split into groups of at most ``MAX_TARGETS_PER_COMMAND``."""
        size = MAX_TARGETS_PER_COMMAND
        return tuple(self.hosts[i : i + size] for i in range(0, len(self.hosts), size))

    @property
    def label(self) -> str:
        """``stage``, ``migrate``, ``batch-2.switch``, ... (keys of the record's ``phases``)."""
        return f"batch-{self.batch}.{self.command.value}" if self.batch else self.command.value

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command.value,
            "hosts": list(self.hosts),
            "chunks": [list(chunk) for chunk in self.chunks],  # derived: read by no one back
            "timeout": self.timeout_seconds,
            "batch": self.batch,
            "bake": self.bake_seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            command=HostCommand(data["command"]),
            hosts=tuple(str(h) for h in data["hosts"]),
            timeout_seconds=int(data["timeout"]),
            batch=int(data.get("batch", 0)),
            bake_seconds=int(data.get("bake", 0)),
        )


@dataclass(frozen=True)
class RolloutPolicy:
    """The parts of an environment's config that shape a rollout."""

    batch_size: BatchSize = BatchSize(1)
    migration_host: str = "first"  # "first", or an instance id / Name tag in the fleet
    run_migrations: bool = True
    run_post_migrations: bool = False
    timeouts: PhaseTimeouts = field(default_factory=PhaseTimeouts)
    bake_seconds: int = 0


@dataclass(frozen=True)
class RolloutPlan:
    """The ordered steps of one rollout, plus the facts a reader or rollback needs."""

    hosts: tuple[Host, ...]
    migration_host: Host | None
    steps: tuple[Step, ...]
    batch_size: int
    rollback: Step  # every targeted host back to the previous release (idempotent per host)

    @property
    def switch_batches(self) -> tuple[tuple[str, ...], ...]:
        return tuple(s.hosts for s in self.steps if s.command is HostCommand.SWITCH)

    @property
    def first_switch(self) -> int:
        """The cursor of the first switch (from there on, hosts may run the new release)."""
        for index, step in enumerate(self.steps):
            if step.command is HostCommand.SWITCH:
                return index
        return len(self.steps)

    @property
    def rollback_cursor(self) -> int:
        """The cursor one past the last step: the rollback step."""
        return len(self.steps)

    def step_at(self, cursor: int) -> Step:
        """The step at ``cursor``; one past the last step is the rollback step."""
        return self.steps[cursor] if cursor < len(self.steps) else self.rollback

    def rollback_only(self) -> RolloutPlan:
        """This plan with no steps but its rollback (a recovery execution runs just that)."""
        return replace(self, migration_host=None, steps=())

    def to_json(self, *, names: bool = True) -> dict[str, Any]:
        """The plan's one JSON shape; ``names=False`` leaves out the hosts' Name tags (the
        execution input, which never needs them, stays small)."""
        data: dict[str, Any] = {
            "hosts": [h.instance_id for h in self.hosts],
            "migration_host": self.migration_host.instance_id if self.migration_host else None,
            "batch_size": self.batch_size,
            "steps": [s.to_json() for s in self.steps],
            "rollback": self.rollback.to_json(),
        }
        if names:
            data["host_names"] = {h.instance_id: h.name for h in self.hosts if h.name}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutPlan:
        """Inverse of ``to_json`` (zones are not kept). A recovery plan of the first version
        (``{"steps": [], "rollback": ...}``) reads as its rollback's hosts."""
        rollback = Step.from_json(data["rollback"])
        names = data.get("host_names") or {}
        ids = data.get("hosts", rollback.hosts)
        hosts = tuple(Host(str(i), str(names.get(i, ""))) for i in ids)
        chosen = data.get("migration_host")
        migration_host = next((h for h in hosts if h.instance_id == chosen), None)
        if chosen and migration_host is None:
            migration_host = Host(str(chosen))
        return cls(
            hosts=hosts,
            migration_host=migration_host,
            steps=tuple(Step.from_json(s) for s in data["steps"]),
            batch_size=int(data.get("batch_size", 0)),
            rollback=rollback,
        )

    def to_dict(self) -> dict[str, Any]:
        """The execution input's form (``to_json(names=False)``), under the name bench/ uses."""
        return self.to_json(names=False)


def order_hosts(hosts: Sequence[Host]) -> list[Host]:
    """Deterministic order, independent of how the fleet was listed."""
    return sorted(set(hosts), key=lambda h: (h.zone, h.name, h.instance_id))


def _pick_migration_host(hosts: list[Host], choice: str) -> Host:
    if choice == "first":
        return hosts[0]
    for host in hosts:
        if choice in (host.instance_id, host.name):
            return host
    raise PlanningError(f"migration host {choice!r} is not in the fleet")


def plan_rollout(hosts: Sequence[Host], policy: RolloutPolicy) -> RolloutPlan:
    """Plan stage -> migrate once -> switch+verify in batches -> post-migrate once."""
    ordered = order_hosts(hosts)
    if not ordered:
        raise PlanningError("no hosts to deploy to")
    needs_migration_host = policy.run_migrations or policy.run_post_migrations
    migration_host = (
        _pick_migration_host(ordered, policy.migration_host) if needs_migration_host else None
    )
    if migration_host is not None:
        ordered.remove(migration_host)
        ordered.insert(0, migration_host)
    ids = tuple(h.instance_id for h in ordered)
    timeouts = policy.timeouts
    per_batch = policy.batch_size.hosts_per_batch(len(ids))

    steps = [Step(HostCommand.STAGE, ids, timeouts.stage)]
    if policy.run_migrations and migration_host is not None:
        steps.append(Step(HostCommand.MIGRATE, (migration_host.instance_id,), timeouts.migrate))
    for number, start in enumerate(range(0, len(ids), per_batch), start=1):
        batch = ids[start : start + per_batch]
        last = start + per_batch >= len(ids)
        steps.append(Step(HostCommand.SWITCH, batch, timeouts.switch, batch=number))
        steps.append(
            Step(
                HostCommand.VERIFY,
                batch,
                timeouts.verify,
                batch=number,
                bake_seconds=0 if last else policy.bake_seconds,
            )
        )
    if policy.run_post_migrations and migration_host is not None:
        steps.append(
            Step(HostCommand.POST_MIGRATE, (migration_host.instance_id,), timeouts.post_migrate)
        )
    rollback = Step(HostCommand.ROLLBACK, ids, timeouts.rollback)
    return RolloutPlan(tuple(ordered), migration_host, tuple(steps), per_batch, rollback)
