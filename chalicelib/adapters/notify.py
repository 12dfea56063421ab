"""Deploys on the SCM and in chat, through each provider's REST API (``StatusBoard``).

GitHub: a Deployment (``POST /repos/{owner}/{repo}/deployments`` with ``ref`` = the SHA,
``auto_merge: false``, ``required_contexts: []``) and its statuses (``POST
.../deployments/{id}/statuses``: ``in_progress``, then ``success``, ``failure``, ``error`` or
``inactive``), each with ``log_url`` and ``environment_url``. GitLab: a commit status (``POST
/projects/:id/statuses/:sha``: ``running``, then ``success``, ``failed`` or ``canceled``, named
``roadie/<env>``). Bitbucket Cloud: a commit build status (``POST /repositories/{workspace}/
{repo}/commit/{sha}/statuses/build``: ``INPROGRESS``, then ``SUCCESSFUL``, ``FAILED`` or
``STOPPED``, keyed ``roadie-<env>``). Slack: an incoming webhook's JSON ``text``.

Every report (one or two requests) has one deadline, ``budget_seconds`` in all; no redirect is
followed (a token never leaves for another host); any failure is an ``UnavailableError`` that
names the provider and host, never a token or the Slack URL (which is itself a secret).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ..domain.errors import UnavailableError
from ..domain.notice import CANCELLED, ERROR, FAILURE, IN_PROGRESS, SUCCESS, Notice
from ..domain.pipeline import AppConfig
from .scm import MAX_BODY, USER_AGENT, TokenSource, _describe

GITHUB_STATES = {
    IN_PROGRESS: "in_progress",
    SUCCESS: "success",
    FAILURE: "failure",
    ERROR: "error",
    CANCELLED: "inactive",
}
GITLAB_STATES = {
    IN_PROGRESS: "running",
    SUCCESS: "success",
    FAILURE: "failed",
    ERROR: "failed",
    CANCELLED: "canceled",
}
BITBUCKET_STATES = {
    IN_PROGRESS: "INPROGRESS",
    SUCCESS: "SUCCESSFUL",
    FAILURE: "FAILED",
    ERROR: "FAILED",
    CANCELLED: "STOPPED",
}
SLACK_ICONS = {SUCCESS: ":white_check_mark:", CANCELLED: ":no_entry_sign:"}
GITHUB_DEPLOYMENT = "github_deployment_id"  # the key kept on the record
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")  # the only hosts a plain http:// URL may name


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError


class Deadline:
    """One report's time budget, shared by its requests."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self, what: str) -> float:
        left = self._end - self._clock()
        if left <= 0:
            raise UnavailableError(f"{what}: out of time for this report")
        return left


class ProviderBoard:
    """Reports to the app's SCM (``app.scm``) and its Slack webhook (``app.notify``)."""

    def __init__(self, tokens: TokenSource, budget_seconds: float = 3.0) -> None:
        self._tokens = tokens
        self._budget = budget_seconds
        self._opener = urllib.request.build_opener(_NoRedirects)

    # -- StatusBoard

    def started(self, app: AppConfig, notice: Notice) -> dict[str, object]:
        deadline = Deadline(self._budget)
        if self._provider(app) == "github":
            deployment = self._github_deployment(app, notice, deadline)
            self._github_status(app, notice, deployment, deadline)
            return {GITHUB_DEPLOYMENT: deployment}
        self._commit_status(app, notice, deadline)
        return {}

    def finished(self, app: AppConfig, notice: Notice, memo: Mapping[str, object]) -> None:
        deadline = Deadline(self._budget)
        if self._provider(app) == "github":
            deployment = memo.get(GITHUB_DEPLOYMENT)
            if not isinstance(deployment, int) or isinstance(deployment, bool):
                # its start was never shown (the API was down): show the end on a new one
                deployment = self._github_deployment(app, notice, deadline)
            self._github_status(app, notice, deployment, deadline)
        else:
            self._commit_status(app, notice, deadline)

    def chat(self, app: AppConfig, notice: Notice) -> None:
        reference = app.notify.slack_webhook
        if reference is None:
            return
        deadline = Deadline(self._budget)
        url = self._tokens.read(reference)
        parts = urlsplit(url)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
        ):
            raise UnavailableError(f"slack webhook {reference} is not an https:// URL")
        self._post("slack", url, {}, {"text": slack_text(notice)}, deadline, expect_json=False)

    # -- providers

    @staticmethod
    def _provider(app: AppConfig) -> str:
        if app.scm is None:
            raise UnavailableError(f"apps.{app.name}: no scm to report deploys to")
        return app.scm.provider

    def _headers(self, app: AppConfig) -> dict[str, str]:
        assert app.scm is not None
        token = self._tokens.read(app.scm.token) if app.scm.token else ""
        if app.scm.provider == "github":
            headers = {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            }
        else:
            headers = {"Accept": "application/json"}
        if token and app.scm.provider == "gitlab":
            headers["PRIVATE-TOKEN"] = token
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _github_deployment(self, app: AppConfig, notice: Notice, deadline: Deadline) -> int:
        assert app.scm is not None
        url = f"{app.scm.api_url}/repos/{quote(app.repository, safe='/')}/deployments"
        body = {
            "ref": notice.sha,
            "environment": notice.environment,
            "auto_merge": False,
            "required_contexts": [],
            "description": f"Roadie deploy {notice.deploy_id}",
            "payload": {"deploy_id": notice.deploy_id, "app": notice.app},
            "production_environment": notice.environment == "production",
        }
        answer = self._post("github", url, self._headers(app), body, deadline)
        deployment = answer.get("id") if answer else None
        if not isinstance(deployment, int) or isinstance(deployment, bool):
            raise UnavailableError(f"github API at {urlsplit(url).netloc} gave no deployment id")
        return deployment

    def _github_status(
        self, app: AppConfig, notice: Notice, deployment: int, deadline: Deadline
    ) -> None:
        assert app.scm is not None
        url = (
            f"{app.scm.api_url}/repos/{quote(app.repository, safe='/')}/deployments/"
            f"{deployment}/statuses"
        )
        body: dict[str, Any] = {
            "state": GITHUB_STATES[notice.state],
            "description": notice.description,
            "environment": notice.environment,
        }
        if notice.log_url:
            body["log_url"] = notice.log_url
        if notice.environment_url:
            body["environment_url"] = notice.environment_url
        self._post("github", url, self._headers(app), body, deadline)

    def _commit_status(self, app: AppConfig, notice: Notice, deadline: Deadline) -> None:
        assert app.scm is not None
        api, provider = app.scm.api_url, app.scm.provider
        link = notice.log_url or notice.environment_url
        body: dict[str, Any]
        if provider == "gitlab":
            url = f"{api}/projects/{quote(app.repository, safe='')}/statuses/{notice.sha}"
            body = {
                "state": GITLAB_STATES[notice.state],
                "name": f"roadie/{notice.environment}",
                "description": notice.description,
            }
            if link:
                body["target_url"] = link
        elif provider == "bitbucket":
            workspace, _, slug = app.repository.partition("/")
            url = (
                f"{api}/repositories/{quote(workspace, safe='')}/{quote(slug, safe='')}"
                f"/commit/{notice.sha}/statuses/build"
            )
            body = {
                "state": BITBUCKET_STATES[notice.state],
                "key": f"roadie-{notice.environment}",
                "name": f"Roadie {notice.environment}",
                "description": notice.description,
            }
            if link:
                body["url"] = link
        else:
            raise UnavailableError(f"apps.{app.name}.scm: {provider} takes no commit statuses")
        self._post(provider, url, self._headers(app), body, deadline)

    # -- shared

    def _post(
        self,
        provider: str,
        url: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any],
        deadline: Deadline,
        *,
        expect_json: bool = True,
    ) -> dict[str, Any] | None:
        # the Slack URL is a secret: errors name only the provider
        where = f"{provider} API at {urlsplit(url).netloc}" if provider != "slack" else "slack"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode("utf-8"),
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=deadline.remaining(where)) as response:
                answer = response.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise UnavailableError(f"{where} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise UnavailableError(f"{where} did not answer: {_describe(exc)}") from None
        if not expect_json:
            return None
        try:
            parsed = json.loads(answer) if len(answer) <= MAX_BODY else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UnavailableError(f"{where} answered something not a JSON object")
        return parsed


def slack_text(notice: Notice) -> str:
    """One line a channel reads: what, where, who, how it ended, and where to look."""
    icon = SLACK_ICONS.get(notice.state, ":x:")
    text = (
        f"{icon} {notice.app} {notice.environment}: deploy {notice.deploy_id} of "
        f"{notice.sha[:12]} by {_escape(notice.requested_by)} {notice.status.value}"
    )
    if notice.detail:
        text += f": {_escape(notice.detail)}"
    if notice.log_url:
        text += f" <{notice.log_url}|log>"
    return text


def _escape(text: str) -> str:
    """Slack's three control characters, so a name or message cannot make a link or mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
