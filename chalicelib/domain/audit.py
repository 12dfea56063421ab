"""The audit trail's event: who did what to which app and environment, from where, and when.

``source`` is one of ``SOURCES``: what set the action off (a push, a CI result, an API call, a
rollback request, or Roadie's own schedule: the reconciler and the rollout's end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Deploy

SOURCES = ("push", "ci", "api", "rollback", "schedule")
SYSTEM = "roadie"  # the principal of what Roadie does by itself


@dataclass(frozen=True)
class AuditEvent:
    app: str
    environment: str
    at: str  # ISO-8601 UTC
    action: str  # "deploy.requested", "environment.freeze", "webhook.ignored", ...
    principal: str
    source: str
    event_id: str
    deploy_id: str | None = None
    delivery_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "at": self.at,
            "app": self.app,
            "environment": self.environment,
            "action": self.action,
            "principal": self.principal,
            "source": self.source,
            "deploy_id": self.deploy_id,
            "delivery_id": self.delivery_id,
            "detail": dict(self.detail),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AuditEvent:
        return cls(
            app=str(raw["app"]),
            environment=str(raw["environment"]),
            at=str(raw["at"]),
            action=str(raw["action"]),
            principal=str(raw["principal"]),
            source=str(raw["source"]),
            event_id=str(raw["event_id"]),
            deploy_id=raw.get("deploy_id"),
            delivery_id=raw.get("delivery_id"),
            detail=dict(raw.get("detail") or {}),
        )


def deploy_source(deploy: Deploy) -> str:
    """What asked for ``deploy``: a rollback request, a push, a CI result, or the API."""
    if deploy.rollback_of:
        return "rollback"
    event = (deploy.trigger or {}).get("event")
    if event in ("push", "ci"):
        return str(event)
    return "api"


def delivery_of(deploy: Deploy) -> str | None:
    found = (deploy.trigger or {}).get("delivery_id")
    return str(found) if found else None
