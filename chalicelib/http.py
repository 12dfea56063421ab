"""HTTP translation helpers for app.py: JSON responses, error mapping, request parsing, views."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from chalice import Response  # type: ignore[attr-defined]

from .domain import jsontext
from .domain.environment import EnvironmentState
from .domain.errors import (
    ConfigError,
    ConflictError,
    InvalidCursorError,
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
log = logging.getLogger("roadie.http")


class HttpError(Exception):
    """An error with its HTTP status, raised by request parsing."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def json_response(status: int, body: Any, headers: Mapping[str, Any] | None = None) -> Response:
    return Response(
        body=json.dumps(body, sort_keys=False, default=str),
        status_code=status,
        headers={"Content-Type": JSON, **(headers or {})},
    )


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Response:
    return json_response(status, {"error": code, "message": message, **extra}, headers)


_STATUS_FOR: list[tuple[type[Exception], int]] = [
    (InvalidCursorError, 400),
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
            status = next((s for kind, s in _STATUS_FOR if isinstance(exc, kind)), 500)
            if status >= 500:
                # our side failed (a bad config, AWS unavailable): the stack says where
                log.error("%s answered %s: %s", exc.code, status, exc, exc_info=exc)
            return error_response(status, exc.code, str(exc))

    return wrapper  # type: ignore[return-value]


def _snake(name: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error")).lower()
    return words or "error"


def uniform_error(response: Response) -> Response:
    """Chalice's own error answers (405, 415, a view's ``ChaliceViewError``, an unhandled
    500) in this API's one shape, ``{"error": <code>, "message": <text>}``; every other
    response as it is. Runs inside the app, so it holds on AWS as it does locally."""
    if response.status_code < 400:
        return response
    body = response.body
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError:
            body = {"Message": body if isinstance(body, str) else body.decode("utf-8", "replace")}
    if isinstance(body, dict) and set(body) >= {"error", "message"}:
        return response
    code = body.get("Code") if isinstance(body, dict) else None
    message = body.get("Message") if isinstance(body, dict) else None
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
    return error_response(
        response.status_code,
        _snake(code) if isinstance(code, str) else "error",
        message if isinstance(message, str) else "the request was refused",
        headers=headers,
    )


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


MAX_API_BODY = 64 * 1024  # a deploy request is a few hundred bytes


def json_object(raw: str | bytes | None) -> dict[str, Any]:
    """The request body as a JSON object, or a 4xx that says why not: 400 for what is not a
    JSON object (nesting and number length are bounded: no input recurses), 413 for a body
    over ``MAX_API_BODY``, 422 for a lone surrogate in any key or string (naming where)."""
    if not raw:
        raise HttpError(400, "bad_request", "request body must be a JSON object")
    if len(raw) > MAX_API_BODY:
        raise HttpError(413, "payload_too_large", f"request body is over {MAX_API_BODY} bytes")
    try:
        body = jsontext.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(400, "bad_request", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise HttpError(400, "bad_request", "request body must be a JSON object")
    where = jsontext.find_surrogate(body)
    if where is not None:
        raise HttpError(422, "invalid", f"field {where!r} holds a lone surrogate (not Unicode)")
    return body


def query_values(request_params: Any, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query string as one value per name: an unknown name, a repeated name or a lone
    surrogate is a 400 (a repeat would otherwise silently mean its last value)."""
    if request_params is None:
        return {}
    out: dict[str, str] = {}
    for name in sorted(request_params):
        values = request_params.getlist(name)
        if name not in allowed:
            raise HttpError(400, "bad_request", f"unknown query parameter {name[:64]!r}")
        if len(values) != 1:
            raise HttpError(400, "bad_request", f"query parameter {name!r} is given more than once")
        if jsontext.has_surrogate(values[0]):
            raise HttpError(400, "bad_request", f"query parameter {name!r} is not valid text")
        out[name] = values[0]
    return out


def required(query: Mapping[str, str], name: str) -> str:
    """A query parameter the route cannot do without: absent or empty is a 400."""
    value = query.get(name, "")
    if not value:
        raise HttpError(400, "bad_request", f"query parameter {name!r} is required")
    return value


_ASCII_DIGITS = re.compile(r"[0-9]{1,6}")


def whole_number(text: str, name: str, low: int, high: int) -> int:
    """``text`` as an integer in ``low..high``: ASCII digits only (no sign, space, or other
    script's digits, which ``int`` would take), else a 400 naming the allowed range."""
    if not _ASCII_DIGITS.fullmatch(text) or not low <= int(text) <= high:
        raise HttpError(400, "bad_request", f"{name} must be a whole number {low}..{high}")
    return int(text)


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
        "commit_at": deploy.commit_at,
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
        "notifications": deploy.notifications,
        "links": {
            "self": f"/deploys/{deploy.deploy_id}",
            "execution": deploy.execution_arn,
            "log": f"/deploys/{deploy.deploy_id}/log",  # each host's whole output
        },
    }
