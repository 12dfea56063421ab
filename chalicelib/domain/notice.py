"""What a deploy tells the places developers look (its commit on the SCM, a chat channel).

A ``Notice`` is the plain facts of one report; ``state_of`` folds every deploy status into the
few states every provider has (``in_progress``, ``success``, ``failure``, ``error``,
``cancelled``); each provider adapter spells them its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Deploy, DeployStatus

IN_PROGRESS = "in_progress"
SUCCESS = "success"
FAILURE = "failure"  # the release did not make it (hosts failed, rolled back, diverged)
ERROR = "error"  # our infrastructure failed
CANCELLED = "cancelled"  # someone stopped it, or a newer deploy replaced it

_STATES = {
    DeployStatus.QUEUED: IN_PROGRESS,
    DeployStatus.RUNNING: IN_PROGRESS,
    DeployStatus.SUCCEEDED: SUCCESS,
    DeployStatus.FAILED: FAILURE,
    DeployStatus.TIMED_OUT: FAILURE,
    DeployStatus.ROLLED_BACK: FAILURE,
    DeployStatus.DIVERGED: FAILURE,
    DeployStatus.ERRORED: ERROR,
    DeployStatus.CANCELLED: CANCELLED,
    DeployStatus.SUPERSEDED: CANCELLED,
}
# The trigger events whose deploys belong on their commit (a deploy button press does not).
SCM_TRIGGERS = ("push", "ci")
MAX_DESCRIPTION = 140  # GitHub's limit on a deployment status description


def state_of(status: DeployStatus) -> str:
    return _STATES[status]


@dataclass(frozen=True)
class Notice:
    deploy_id: str
    app: str
    environment: str
    repository: str
    sha: str
    status: DeployStatus
    state: str
    description: str
    requested_by: str
    log_url: str
    environment_url: str = ""
    detail: str = ""  # why it did not succeed, for a chat message

    @classmethod
    def of(cls, deploy: Deploy, repository: str, log_url: str, environment_url: str = "") -> Notice:
        state = state_of(deploy.status)
        if state == IN_PROGRESS:
            description = f"Roadie is deploying {deploy.sha[:12]} to {deploy.environment}"
        else:
            description = f"Roadie deploy {deploy.status.value} ({deploy.deploy_id})"
        error = deploy.error or {}
        detail = str(error.get("message", "")) if state != SUCCESS else ""
        return cls(
            deploy_id=deploy.deploy_id,
            app=deploy.app,
            environment=deploy.environment,
            repository=repository,
            sha=deploy.sha,
            status=deploy.status,
            state=state,
            description=description[:MAX_DESCRIPTION],
            requested_by=deploy.requested_by,
            log_url=log_url,
            environment_url=environment_url,
            detail=detail[:500],
        )


def on_commit(deploy: Deploy) -> bool:
    """Whether ``deploy`` came from a push or a CI result (so its commit hears about it)."""
    return deploy.trigger.get("event") in SCM_TRIGGERS
