"""Roadie's Chalice app: HTTP routes and the rollout's Lambda tasks. Handlers only translate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalice import Chalice  # type: ignore[attr-defined]
from chalice.app import Request

from chalicelib import bootstrap
from chalicelib.domain.model import Requester
from chalicelib.http import (
    DEPLOY_ID_RE,
    HttpError,
    bearer_token,
    deploy_detail,
    deploy_summary,
    error_response,
    fields,
    json_object,
    json_response,
    translate_errors,
)

app = Chalice(app_name="roadie", configure_logs=False)


def _request() -> Request:
    request = app.current_request
    assert request is not None, "only called while handling a request"
    return request


def _requester() -> Requester:
    token = bearer_token(_request().headers)
    name = bootstrap.container().api_tokens.identify(token) if token else None
    if name is None:
        raise HttpError(401, "unauthorized", "a valid bearer token is required")
    return Requester(name=name, via="api")


@app.route("/healthz", methods=["GET"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.route("/deploys", methods=["POST"])
@translate_errors
def create_deploy() -> Any:
    requester = _requester()
    body = fields(
        json_object(_request().raw_body),
        required=("app", "environment"),
        optional=("sha", "ref", "reason"),
    )
    if ("sha" in body) == ("ref" in body):
        raise HttpError(422, "invalid", "give exactly one of 'sha' or 'ref'")
    deploy, created = bootstrap.container().deploys.request(
        app=body["app"],
        environment=body["environment"],
        sha=body.get("sha"),
        ref=body.get("ref"),
        reason=body.get("reason", ""),
        requester=requester,
    )
    location = f"/deploys/{deploy.deploy_id}"
    # 200: the same SHA is already deploying or queued there, and that deploy is the answer
    return json_response(
        202 if created else 200,
        {**deploy_summary(deploy), "existing": not created, "links": {"self": location}},
        {"Location": location},
    )


@app.route("/deploys", methods=["GET"])
@translate_errors
def list_deploys() -> Any:
    _requester()
    query: Mapping[str, str] = _request().query_params or {}
    unknown = sorted(set(query) - {"app", "environment", "status", "limit", "cursor"})
    if unknown:
        raise HttpError(400, "bad_request", f"unknown query parameter {unknown[0]!r}")
    limit_text = query.get("limit", "25")
    if not limit_text.isdigit():
        raise HttpError(400, "bad_request", "limit must be a whole number")
    deploys, cursor = bootstrap.container().deploys.list(
        app=query.get("app"),
        environment=query.get("environment"),
        status=query.get("status"),
        limit=int(limit_text),
        cursor=query.get("cursor"),
    )
    return json_response(
        200, {"deploys": [deploy_summary(d) for d in deploys], "next_cursor": cursor}
    )


@app.route("/deploys/{deploy_id}", methods=["GET"])
@translate_errors
def get_deploy(deploy_id: str) -> Any:
    _requester()
    if not DEPLOY_ID_RE.match(deploy_id):
        return error_response(404, "not_found", f"no deploy {deploy_id!r}")
    deploy, results = bootstrap.container().deploys.get(deploy_id)
    return json_response(200, deploy_detail(deploy, results))


def _webhook(provider: str) -> Any:
    request = _request()
    raw = request.raw_body or b""
    answer = bootstrap.container().webhooks.receive(
        provider, raw if isinstance(raw, bytes) else raw.encode(), dict(request.headers)
    )
    return json_response(answer.status, answer.body)


@app.route(
    "/webhooks/github",
    methods=["POST"],
    content_types=["application/json", "application/x-www-form-urlencoded"],
)
@translate_errors
def github_webhook() -> Any:
    return _webhook("github")


@app.route("/webhooks/gitlab", methods=["POST"], content_types=["application/json"])
@translate_errors
def gitlab_webhook() -> Any:
    return _webhook("gitlab")


@app.route("/webhooks/bitbucket", methods=["POST"], content_types=["application/json"])
@translate_errors
def bitbucket_webhook() -> Any:
    return _webhook("bitbucket")


@app.lambda_function(name="rollout_dispatch")
def rollout_dispatch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bootstrap.container().rollout.dispatch(event)


@app.lambda_function(name="rollout_poll")
def rollout_poll(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bootstrap.container().rollout.poll(event)


@app.lambda_function(name="rollout_recover")
def rollout_recover(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bootstrap.container().rollout.recover(event)


@app.lambda_function(name="rollout_finish")
def rollout_finish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bootstrap.container().rollout.finish(event)
