"""Per-host step results of a deploy."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ...domain.model import (
    HostCommand,
    HostResult,
    HostStatus,
)
from .models import (
    HostResultModel,
)


class HostResultRepository:
    """Per-host, per-step results of a rollout (one item each, batch-written)."""

    def put_many(self, results: Iterable[HostResult]) -> None:
        with HostResultModel.batch_write() as batch:
            for result in results:
                batch.save(
                    HostResultModel(
                        result.deploy_id,
                        f"{result.instance_id}#{result.step:03d}",
                        instance_id=result.instance_id,
                        step=result.step,
                        batch=result.batch,
                        command=result.command.value,
                        status=result.status.value,
                        exit_code=result.exit_code,
                        stdout_tail=result.stdout_tail,
                        stderr_tail=result.stderr_tail,
                        started_at=result.started_at,
                        finished_at=result.finished_at,
                        command_id=result.command_id,
                        detail=result.detail,
                    )
                )

    def for_deploy(self, deploy_id: str) -> Iterator[HostResult]:
        for item in HostResultModel.query(deploy_id, consistent_read=True):
            yield HostResult(
                deploy_id=item.deploy_id,
                instance_id=item.instance_id,
                step=int(item.step),
                batch=int(item.batch),
                command=HostCommand(item.command),
                status=HostStatus(item.status),
                exit_code=int(item.exit_code) if item.exit_code is not None else None,
                stdout_tail=item.stdout_tail,
                stderr_tail=item.stderr_tail,
                started_at=item.started_at,
                finished_at=item.finished_at,
                command_id=item.command_id,
                detail=item.detail,
            )
