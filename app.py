"""Roadie's Chalice app: HTTP routes and the rollout's Lambda tasks. Handlers only translate."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from chalice import Chalice  # type: ignore[attr-defined]
from chalice.app import Request

from chalicelib import bootstrap
from chalicelib.domain.contract import DispatchTask, FinishTask, PollTask, RecoverTask
from chalicelib.domain.model import Deploy, Requester
from chalicelib.http import (
    DEPLOY_ID_RE,
    JSON,
    HttpError,
    bearer_token,
    deploy_detail,
    deploy_summary,
    environment_view,
    error_response,
    fields,
    flag,
    json_object,
    json_response,
    query_values,
    required,
    translate_errors,
    uniform_error,
    webhook_response,
    whole_number,
)

app = Chalice(app_name="roadie", configure_logs=False)
LIST_QUERY = ("app", "environment", "status", "limit", "cursor")
LOG_QUERY = ("host", "phase", "cursor", "limit")
AUDIT_QUERY = ("app", "environment", "since", "limit", "cursor")
DORA_QUERY = ("app", "environment", "days")


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


def api_route(
    path: str,
    methods: list[str],
    *,
    public: bool = False,
    query: tuple[str, ...] = (),
    **options: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a route, the one place the HTTP face is applied: Roadie's errors become JSON
    answers (``translate_errors``) and, unless ``public``, the bearer token is checked first,
    the query string may name only ``query`` (each once), and the view gets the caller as its
    first argument. Webhooks (``public``) ignore query strings: a provider's URL may carry one.
    """

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        @translate_errors
        def answer(**params: Any) -> Any:
            if public:
                return view(**params)
            requester = _requester()
            query_values(_request().query_params, query)
            return view(requester, **params)

        @functools.wraps(view)
        def handler(**params: Any) -> Any:
            # the request's log keys; an error Roadie does not answer itself is logged here
            with bootstrap.request_scope(
                deploy_id=params.get("deploy_id"),
                app=params.get("app_name"),
                environment=params.get("environment"),
            ):
                return answer(**params)

        app.route(path, methods=methods, **options)(handler)
        return view

    return register


@app.middleware("http")
def one_error_shape(event: Request, get_response: Callable[[Request], Any]) -> Any:
    return uniform_error(get_response(event))


@app.route("/healthz", methods=["GET"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@api_route("/deploys", methods=["POST"])
def create_deploy(requester: Requester) -> Any:
    raw = json_object(_request().raw_body)
    force = flag(raw, "force")
    body = fields(
        {k: v for k, v in raw.items() if k != "force"},
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
        force=force,
    )
    return _accepted(deploy, created)


def _accepted(deploy: Deploy, created: bool) -> Any:
    location = f"/deploys/{deploy.deploy_id}"
    # 200: the same SHA is already deploying or queued there, and that deploy is the answer
    return json_response(
        202 if created else 200,
        {**deploy_summary(deploy), "existing": not created, "links": {"self": location}},
        {"Location": location},
    )


@api_route("/deploys", methods=["GET"], query=LIST_QUERY)
def list_deploys(requester: Requester) -> Any:
    query = query_values(_request().query_params, LIST_QUERY)
    deploys, cursor = bootstrap.container().deploys.list(
        app=query.get("app"),
        environment=query.get("environment"),
        status=query.get("status"),
        limit=whole_number(query.get("limit", "25"), "limit", 1, 100),
        cursor=query.get("cursor"),
    )
    return json_response(
        200, {"deploys": [deploy_summary(d) for d in deploys], "next_cursor": cursor}
    )


@api_route("/deploys/{deploy_id}/cancel", methods=["POST"])
def cancel_deploy(requester: Requester, deploy_id: str) -> Any:
    if not DEPLOY_ID_RE.match(deploy_id):
        return error_response(404, "not_found", f"no deploy {deploy_id!r}")
    deploy = bootstrap.container().deploys.cancel(deploy_id, requester)
    # 202: a running deploy stops at its next step boundary and rolls switched hosts back
    return json_response(200 if deploy.status.value == "cancelled" else 202, deploy_summary(deploy))


@api_route("/deploys/{deploy_id}/rollback", methods=["POST"])
def rollback_deploy(requester: Requester, deploy_id: str) -> Any:
    if not DEPLOY_ID_RE.match(deploy_id):
        return error_response(404, "not_found", f"no deploy {deploy_id!r}")
    raw = json_object(_request().raw_body or b"{}")
    force = flag(raw, "force")
    body = fields({k: v for k, v in raw.items() if k != "force"}, (), ("reason",))
    deploy, created = bootstrap.container().deploys.rollback(
        deploy_id, requester, reason=body.get("reason", ""), force=force
    )
    return _accepted(deploy, created)


@api_route("/environments/{app_name}/{environment}", methods=["GET"])
def get_environment(requester: Requester, app_name: str, environment: str) -> Any:
    state = bootstrap.container().deploys.environment_state(app_name, environment)
    return json_response(200, environment_view(state, time.time()))


@api_route("/environments/{app_name}/{environment}/lock", methods=["PUT"])
def freeze_environment(requester: Requester, app_name: str, environment: str) -> Any:
    body = fields(json_object(_request().raw_body), ("reason",), ())
    state = bootstrap.container().deploys.freeze(app_name, environment, body["reason"], requester)
    return json_response(200, environment_view(state, time.time()))


@api_route("/environments/{app_name}/{environment}/lock", methods=["DELETE"])
def unfreeze_environment(requester: Requester, app_name: str, environment: str) -> Any:
    state = bootstrap.container().deploys.unfreeze(app_name, environment, requester)
    return json_response(200, environment_view(state, time.time()))


@api_route("/deploys/{deploy_id}", methods=["GET"])
def get_deploy(requester: Requester, deploy_id: str) -> Any:
    if not DEPLOY_ID_RE.match(deploy_id):
        return error_response(404, "not_found", f"no deploy {deploy_id!r}")
    deploy, results = bootstrap.container().deploys.get(deploy_id)
    return json_response(200, deploy_detail(deploy, results))


@api_route("/deploys/{deploy_id}/log", methods=["GET"], query=LOG_QUERY)
def get_deploy_log(requester: Requester, deploy_id: str) -> Any:
    if not DEPLOY_ID_RE.match(deploy_id):
        return error_response(404, "not_found", f"no deploy {deploy_id!r}")
    query = query_values(_request().query_params, LOG_QUERY)
    page = bootstrap.container().host_logs.page(
        deploy_id,
        host=query.get("host"),
        phase=query.get("phase"),
        cursor=query.get("cursor"),
        limit=whole_number(query.get("limit", "200"), "limit", 1, 1000),
    )
    return json_response(200, page.to_json())


@api_route("/audit", methods=["GET"], query=AUDIT_QUERY)
def audit_trail(requester: Requester) -> Any:
    query = query_values(_request().query_params, AUDIT_QUERY)
    if "app" not in query or "environment" not in query:
        raise HttpError(400, "bad_request", "query parameters app and environment are required")
    events, cursor = bootstrap.container().audit.page(
        query["app"],
        query["environment"],
        since=query.get("since"),
        limit=whole_number(query.get("limit", "50"), "limit", 1, 100),
        cursor=query.get("cursor"),
    )
    return json_response(200, {"events": [e.to_json() for e in events], "next_cursor": cursor})


@api_route("/metrics/dora", methods=["GET"], query=DORA_QUERY)
def dora_metrics(requester: Requester) -> Any:
    query = query_values(_request().query_params, DORA_QUERY)
    app_name, environment = required(query, "app"), required(query, "environment")
    days = whole_number(query.get("days", "30"), "days", 1, 365)
    report = bootstrap.container().deploys.dora(app_name, environment, days)
    return json_response(200, report.to_json())


def _webhook(provider: str) -> Any:
    request = _request()
    raw = request.raw_body or b""
    outcome = bootstrap.container().webhooks.receive(
        provider,
        raw if isinstance(raw, bytes) else raw.encode(),
        dict(request.headers),
        app.lambda_context,
    )
    return webhook_response(outcome)


@api_route(
    "/webhooks/github",
    public=True,
    methods=["POST"],
    content_types=["application/json", "application/x-www-form-urlencoded"],
)
def github_webhook() -> Any:
    return _webhook("github")


@api_route("/webhooks/gitlab", methods=["POST"], public=True, content_types=[JSON])
def gitlab_webhook() -> Any:
    return _webhook("gitlab")


@api_route("/webhooks/bitbucket", methods=["POST"], public=True, content_types=[JSON])
def bitbucket_webhook() -> Any:
    return _webhook("bitbucket")


@app.lambda_function(name="rollout_dispatch")
@bootstrap.invocation("rollout_dispatch")
def rollout_dispatch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bootstrap.container().rollout.dispatch_step(DispatchTask.from_json(event)).to_json()


@app.lambda_function(name="rollout_poll")
@bootstrap.invocation("rollout_poll")
def rollout_poll(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bootstrap.container().rollout.poll_step(PollTask.from_json(event)).to_json()


@app.lambda_function(name="rollout_recover")
@bootstrap.invocation("rollout_recover")
def rollout_recover(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bootstrap.container().rollout.recover_step(RecoverTask.from_json(event)).to_json()


@app.schedule("rate(1 minute)", name="reconcile")
@bootstrap.invocation("reconcile", source="schedule")
def reconcile(event: Any) -> list[dict[str, str]]:
    return bootstrap.container().reconciler.run()


@app.lambda_function(name="rollout_finish")
@bootstrap.invocation("rollout_finish")
def rollout_finish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return bootstrap.container().rollout.finish_step(FinishTask.from_json(event)).to_json()
