"""HTTP translation helpers for app.py: JSON responses, error mapping, request parsing, views."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from chalice import Response  # type: ignore[attr-defined]

from .domain.environment import EnvironmentState
from .domain.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    RoadieError,
    UnavailableError,
    ValidationError,
)
from .domain.model import Deploy, HostResult
from .domain.rollout import RolloutPlan
from .domain.webhook_outcome import OutcomeKind, WebhookOutcome
from .services.clock import parse_iso
from .webhooks import WebhookError

JSON = "application/json"
DEPLOY_ID_RE = re.compile(r"^d-[0-9]{8}t[0-9]{6}-[0-9a-f]{8}$")
F = TypeVar("F", bound=Callable[..., Any])


class HttpError(Exception):
    """An error with its HTTP status, raised by request parsing."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, sort_keys=False, default=str),
        status_code=status,
        headers={"Content-Type": JSON, **(headers or {})},
    )


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    return json_response(status, {"error": code, "message": message, **extra})


_STATUS_FOR: list[tuple[type[Exception], int]] = [
    (ValidationError, 422),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ConfigError, 500),
    (UnavailableError, 503),
]


def translate_errors(view: F) -> F:
    """Turn Roadie's errors into JSON error responses with the right status."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except HttpError as exc:
            return error_response(exc.status, exc.code, str(exc))
        except WebhookError as exc:
            return error_response(exc.status, exc.code, str(exc))
        except RoadieError as exc:
            for kind, status in _STATUS_FOR:
                if isinstance(exc, kind):
                    return error_response(status, exc.code, str(exc))
            return error_response(500, exc.code, str(exc))

    return wrapper  # type: ignore[return-value]


# A webhook's answer by outcome (README "Git push triggers"). A SHA already deploying or
# queued answers 202 like a new deploy: the delivery is accepted and names the deploy.
# Refusals are errors (``WebhookError.status``, ``DeliveryReusedError`` -> 409) and never
# reach this table.
WEBHOOK_STATUS: dict[OutcomeKind, int] = {
    OutcomeKind.ACCEPTED: 202,
    OutcomeKind.EXISTING: 202,
    OutcomeKind.IGNORED: 200,
}


def webhook_response(outcome: WebhookOutcome) -> Response:
    """The HTTP answer to a webhook delivery: its outcome's status, its body as JSON."""
    return json_response(WEBHOOK_STATUS[outcome.kind], dict(outcome.body))


def json_object(raw: str | bytes | None) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says why not."""
    if not raw:
        raise HttpError(400, "bad_request", "request body must be a JSON object")
    try:
        body = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(400, "bad_request", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise HttpError(400, "bad_request", "request body must be a JSON object")
    return body


def fields(
    body: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, str]:
    """String fields of a JSON object; unknown, missing or non-string fields are a 422."""
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise HttpError(422, "invalid", f"unknown field {unknown[0]!r}")
    out: dict[str, str] = {}
    for name in required + optional:
        if name not in body or body[name] is None:
            if name in required:
                raise HttpError(422, "invalid", f"field {name!r} is required")
            continue
        if not isinstance(body[name], str):
            raise HttpError(422, "invalid", f"field {name!r} must be a string")
        out[name] = body[name]
    return out


def flag(body: Mapping[str, Any], name: str) -> bool:
    """An optional boolean field (default False); anything but true/false is a 422."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise HttpError(422, "invalid", f"field {name!r} must be true or false")
    return value


def environment_view(state: EnvironmentState, now: float) -> dict[str, Any]:
    return {
        "app": state.app,
        "environment": state.environment,
        "current_sha": state.current_sha,
        "current_deploy_id": state.current_deploy_id,
        "running_deploy_id": state.holder(now),
        "queued_deploy_id": state.queued_deploy_id,
        "frozen": state.frozen,
        "frozen_reason": state.frozen_reason,
        "frozen_by": state.frozen_by,
        "frozen_at": state.frozen_at,
        "audit": list(state.audit),
        "fleet_state": state.fleet_state.value,
        "diverged_deploy_id": state.diverged_deploy_id,
        "hosts": [report.to_json() for report in state.fleet],
    }


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def deploy_summary(deploy: Deploy) -> dict[str, Any]:
    return {
        "deploy_id": deploy.deploy_id,
        "app": deploy.app,
        "environment": deploy.environment,
        "sha": deploy.sha,
        "ref": deploy.ref or None,
        "status": deploy.status.value,
        "phase": deploy.phase.value,
        "requested_by": deploy.requested_by,
        "requested_via": deploy.requested_via,
        "reason": deploy.reason,
        "created_at": deploy.created_at,
        "started_at": deploy.started_at,
        "finished_at": deploy.finished_at,
        "force": deploy.force,
        "rollback_of": deploy.rollback_of,
        "superseded_by": deploy.superseded_by,
        "cancel_requested_by": deploy.cancel_requested_by,
        "fleet": deploy.fleet or None,
    }


def plan_view(recorded: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's summary of a deploy's recorded plan, and the hosts' names. A record written
    before plans were stored whole (``RolloutPlan.to_json``) already holds the summary."""
    if "rollback" not in recorded:
        names = recorded.get("host_names")
        view = {k: v for k, v in recorded.items() if k != "host_names"}
        return view, dict(names) if isinstance(names, dict) else {}
    plan = RolloutPlan.from_json(recorded)
    view = {
        "hosts": [h.instance_id for h in plan.hosts],
        "migration_host": plan.migration_host.instance_id if plan.migration_host else None,
        "batch_size": plan.batch_size,
        "batches": [list(b) for b in plan.switch_batches],
        "steps": [
            {"command": s.command.value, "batch": s.batch, "hosts": len(s.hosts)}
            for s in plan.steps
        ],
    }
    return view, {h.instance_id: h.name for h in plan.hosts if h.name}


def deploy_detail(deploy: Deploy, results: list[HostResult]) -> dict[str, Any]:
    hosts: dict[str, dict[str, Any]] = {}
    plan, names = plan_view(deploy.plan)
    batches = plan.get("batches", [])
    batch_of: dict[str, int] = {}
    for number, batch in enumerate(batches if isinstance(batches, list) else [], start=1):
        for host_id in batch:
            batch_of[host_id] = number
    for host_id in plan.get("hosts", []):
        hosts[host_id] = {
            "instance_id": host_id,
            "name": names.get(host_id, ""),
            "batch": batch_of.get(host_id),
            "status": "pending",
            "steps": [],
        }
    for result in sorted(results, key=lambda r: (r.instance_id, r.step)):
        host = hosts.setdefault(
            result.instance_id,
            {"instance_id": result.instance_id, "name": "", "batch": None, "steps": []},
        )
        host["status"] = f"{result.command.value}:{result.status.value}"
        host["steps"].append(
            {
                "step": result.step,
                "command": result.command.value,
                "status": result.status.value,
                "exit_code": result.exit_code,
                "started_at": result.started_at,
                "finished_at": result.finished_at,
                "stdout_tail": result.stdout_tail,
                "stderr_tail": result.stderr_tail,
                "detail": result.detail,
                "command_id": result.command_id,
            }
        )
    duration = None
    if deploy.finished_at and deploy.started_at:
        duration = round(
            (parse_iso(deploy.finished_at) - parse_iso(deploy.started_at)).total_seconds(), 3
        )
    return {
        **deploy_summary(deploy),
        "previous_sha": deploy.previous_sha,
        "duration_s": duration,
        "updated_at": deploy.updated_at,
        "error": deploy.error,
        "plan": plan,
        "phases": deploy.phases,
        "hosts": list(hosts.values()),
        "trigger": deploy.trigger,
        "links": {"self": f"/deploys/{deploy.deploy_id}", "execution": deploy.execution_arn},
    }
