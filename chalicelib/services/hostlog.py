"""A deploy's full host output, per host and phase, in pages (``GET /deploys/{id}/log``).

The host-result rows tell which SSM commands ran where (one row per host per step, with its
command id); each names two log streams (stdout, stderr) in the app's host log group. A page
walks those streams in rollout order (step, then the plan's host order, stdout before stderr)
and returns up to ``limit`` lines, grouped per stream, with a cursor to read on.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from ..domain.errors import InvalidCursorError, NotFoundError
from ..domain.hostlog import OUTPUT_STREAMS, host_log_group, output_stream
from ..domain.model import Deploy, HostCommand, HostResult
from ..domain.rollout import RolloutPlan
from .evidence import host_names, plan_hosts
from .ports import CommandLogReader, DeployStore, HostResultStore

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Source:
    """One host's output stream of one step."""

    instance_id: str
    name: str
    step: int
    phase: str  # the step's label: stage, migrate, batch-2.switch, rollback, ...
    command: str
    command_id: str
    stream: str

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.instance_id,
            "name": self.name,
            "step": self.step,
            "phase": self.phase,
            "command": self.command,
            "command_id": self.command_id,
            "stream": self.stream,
        }


@dataclass(frozen=True)
class Block:
    source: Source
    lines: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.source.to_json(), "lines": list(self.lines)}


@dataclass(frozen=True)
class HostLogPage:
    deploy_id: str
    log_group: str
    host: str | None
    phase: str | None
    blocks: tuple[Block, ...] = field(default_factory=tuple)
    next_cursor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "deploy_id": self.deploy_id,
            "log_group": self.log_group,
            "host": self.host,
            "phase": self.phase,
            "output": [b.to_json() for b in self.blocks],
            "next_cursor": self.next_cursor,
        }


def step_labels(deploy: Deploy) -> dict[str, str]:
    """Command id -> the label of the step (``deploy.phases`` key) that sent it."""
    labels: dict[str, str] = {}
    for key, entry in deploy.phases.items():
        ids = entry.get("command_ids")
        for command_id in ids if isinstance(ids, list) else []:
            labels.setdefault(str(command_id), key)
    return labels


def known_phases(deploy: Deploy) -> set[str]:
    """Every name a ``phase`` filter may use: the plan's step labels, the phases recorded
    (convergence attempts included) and the host script's phases."""
    names = set(deploy.phases) | {c.value for c in HostCommand}
    if "rollback" in deploy.plan:
        names |= {s.label for s in RolloutPlan.from_json(deploy.plan).steps}
    return names


def sources(
    deploy: Deploy, rows: list[HostResult], host: str | None, phase: str | None
) -> list[Source]:
    order = {h: i for i, h in enumerate(plan_hosts(deploy))}
    names = host_names(deploy)
    labels = step_labels(deploy)
    found = []
    for row in sorted(rows, key=lambda r: (r.step, order.get(r.instance_id, 0), r.instance_id)):
        label = labels.get(row.command_id, row.command.value)
        if not row.command_id or (host is not None and row.instance_id != host):
            continue
        if phase is not None and phase not in (label, row.command.value):
            continue
        for stream in OUTPUT_STREAMS:
            found.append(
                Source(
                    instance_id=row.instance_id,
                    name=names.get(row.instance_id, ""),
                    step=row.step,
                    phase=label,
                    command=row.command.value,
                    command_id=row.command_id,
                    stream=stream,
                )
            )
    return found


def encode_cursor(position: int, token: str | None, query: list[str | None]) -> str:
    raw = json.dumps([position, token, *query], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, query: list[str | None]) -> tuple[int, str | None]:
    """The position in ``cursor``, checked against the query it is used with."""
    invalid = InvalidCursorError("cursor is not one this API returned for this query")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise invalid from exc
    if not isinstance(data, list) or len(data) != 2 + len(query) or data[2:] != query:
        raise invalid
    position, token = data[0], data[1]
    if type(position) is not int or position < 0 or not (token is None or isinstance(token, str)):
        raise invalid
    return position, token


@dataclass
class HostLogService:
    deploys: DeployStore
    host_results: HostResultStore
    logs: CommandLogReader
    log_group_prefix: str

    def page(
        self,
        deploy_id: str,
        *,
        host: str | None = None,
        phase: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> HostLogPage:
        """Up to ``limit`` lines of the deploy's host output (``host``/``phase``: only that
        host's, that step's). A host the deploy does not target, or a phase it has no such
        step, is a ``NotFoundError``; one that has not run yet has no output (an empty page).
        """
        deploy = self.deploys.get(deploy_id)
        rows = list(self.host_results.for_deploy(deploy_id))
        targets = set(plan_hosts(deploy)) | {r.instance_id for r in rows}
        if host is not None and host not in targets:
            raise NotFoundError(f"deploy {deploy_id} targets no host {host!r}")
        if phase is not None and phase not in known_phases(deploy):
            raise NotFoundError(f"deploy {deploy_id} has no phase {phase!r}")
        query = [deploy_id, host, phase]
        position, token = decode_cursor(cursor, query) if cursor is not None else (0, None)
        found = sources(deploy, rows, host, phase)
        if position > len(found):
            raise InvalidCursorError("cursor is not one this API returned for this query")
        group = host_log_group(self.log_group_prefix, deploy.app)
        blocks: list[Block] = []
        left = max(1, min(limit, MAX_LIMIT))
        while position < len(found) and left > 0:
            source = found[position]
            stream = output_stream(source.command_id, source.instance_id, source.stream)
            chunk = self.logs.read(group, stream, token, left)
            if chunk.lines:
                blocks.append(Block(source, chunk.lines))
                left -= len(chunk.lines)
            token = chunk.next_token
            if token is None:
                position += 1
        more = position < len(found)
        return HostLogPage(
            deploy_id=deploy_id,
            log_group=group,
            host=host,
            phase=phase,
            blocks=tuple(blocks),
            next_cursor=encode_cursor(position, token, query) if more else None,
        )
