"""Webhook deliveries to deploys: authenticate, parse, route by config, deploy exactly once.

Order matters: the body size and the signature are checked before anything is parsed or
stored, so a rejected request touches no table and starts nothing. Authentic events that
deploy nothing answer 2xx with the reason (GitLab disables hooks that keep failing).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import AppConfig, EnvironmentConfig, PipelineConfig
from ..domain.model import Requester
from ..webhooks import (
    MAX_BODY_BYTES,
    PROVIDERS,
    CIEvent,
    Commit,
    Ignored,
    PayloadTooLargeError,
    PushEvent,
    UnknownProviderError,
    WebhookEvent,
    parse,
    verify_bitbucket,
    verify_github,
    verify_gitlab,
)
from .deploys import DeployService
from .ports import DeliveryLog, SecretSource

MAX_MESSAGE = 1000
Target = tuple[AppConfig, EnvironmentConfig]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass
class WebhookService:
    pipeline: PipelineConfig
    secrets: SecretSource
    deliveries: DeliveryLog
    deploys: DeployService
    allow_github_sha1: bool = False

    def receive(
        self, provider: str, body: bytes, headers: Mapping[str, str], lambda_context: Any = None
    ) -> Answer:
        if provider not in PROVIDERS:
            raise UnknownProviderError(f"unknown webhook provider {provider!r}")
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"body is over the {MAX_BODY_BYTES}-byte limit")
        self._authenticate(provider, body, headers)
        event = parse(provider, body, headers)
        key = f"{provider}:{event.delivery_id}"
        digest = hashlib.sha256(body).hexdigest()
        stored = self.deliveries.once(key, digest, lambda: self._act(event), lambda_context)
        return Answer(int(stored["status"]), dict(stored["body"]))

    def _authenticate(self, provider: str, body: bytes, headers: Mapping[str, str]) -> None:
        secrets = self.secrets.active(provider)
        if provider == "github":
            verify_github(body, headers, secrets, allow_sha1=self.allow_github_sha1)
        elif provider == "gitlab":
            verify_gitlab(headers, secrets)
        else:
            verify_bitbucket(body, headers, secrets)

    def _act(self, event: WebhookEvent) -> dict[str, Any]:
        base = {"provider": event.provider, "delivery_id": event.delivery_id}
        if isinstance(event, Ignored):
            return _ignored(base, event.reason)
        if isinstance(event, PushEvent):
            return self._push(event, base)
        return self._ci(event, base)

    def _push(self, event: PushEvent, base: dict[str, Any]) -> dict[str, Any]:
        targets = self._targets(event.repository)
        if not targets:
            return _ignored(base, f"repository {event.repository} is not configured in Roadie")
        if event.branch is not None:
            matched = [(a, e) for a, e in targets if e.branch == event.branch]
            what = f"branch {event.branch}"
        else:
            tag = event.tag or ""
            matched = [
                (a, e)
                for a, e in targets
                if any(fnmatch.fnmatchcase(tag, p) for p in e.tag_patterns)
            ]
            what = f"tag {tag}"
        if not matched:
            return _ignored(base, f"no environment of {event.repository} deploys {what}")
        outcomes = []
        for app, env in matched:
            if env.trigger != "push":
                reason = (
                    "waits for CI to pass on this commit"
                    if env.trigger == "ci"
                    else "deploys only on request"
                )
                outcomes.append(_skipped(app, env, reason))
                continue
            outcomes.append(self._deploy(app, env, event.after, event, base))
        return _answer(base, outcomes)

    def _ci(self, event: CIEvent, base: dict[str, Any]) -> dict[str, Any]:
        matched = [
            (a, e)
            for a, e in self._targets(event.repository)
            if e.branch == event.branch and e.trigger == "ci"
        ]
        if not matched:
            return _ignored(base, f"no environment deploys branch {event.branch} on CI results")
        if not event.succeeded:
            return _ignored(
                base,
                f"CI concluded {event.conclusion or 'without success'} for {event.sha[:12]}; "
                "nothing deployed",
            )
        return _answer(base, [self._deploy(a, e, event.sha, event, base) for a, e in matched])

    def _targets(self, repository: str) -> list[Target]:
        wanted = repository.lower()
        return [
            (app, env)
            for app in self.pipeline.apps.values()
            if app.repository.lower() == wanted
            for env in app.environments.values()
        ]

    def _deploy(
        self,
        app: AppConfig,
        env: EnvironmentConfig,
        sha: str,
        event: PushEvent | CIEvent,
        base: dict[str, Any],
    ) -> dict[str, Any]:
        head = event.head_commit
        deploy, created = self.deploys.request(
            app=app.name,
            environment=env.name,
            requester=Requester(name=event.pusher or event.provider, via=event.provider),
            sha=sha,
            reason=_reason(event, head),
            trigger=_trigger(event, base),
        )
        return {
            "app": app.name,
            "environment": env.name,
            "deploy_id": deploy.deploy_id,
            "status": deploy.status.value,
            "existing": not created,
        }


def _reason(event: PushEvent | CIEvent, head: Commit | None) -> str:
    subject = head.message.splitlines()[0][:200] if head and head.message else ""
    if isinstance(event, PushEvent):
        where = event.branch or event.tag or event.ref
        lead = f"{'force-' if event.forced else ''}push to {where}"
    else:
        lead = f"CI passed on {event.branch}"
    return f"{lead}: {subject}" if subject else lead


def _trigger(event: PushEvent | CIEvent, base: dict[str, Any]) -> dict[str, Any]:
    head = event.head_commit
    trigger: dict[str, Any] = {**base, "pusher": event.pusher}
    if isinstance(event, PushEvent):
        trigger.update(
            event="push",
            ref=event.ref,
            before=event.before,
            after=event.after,
            range=f"{event.before}..{event.after}" if event.before else event.after,
            compare_url=event.compare_url,
            forced=event.forced,
        )
    else:
        trigger.update(
            event="ci", branch=event.branch, after=event.sha, conclusion=event.conclusion
        )
    if head is not None:
        trigger["head_commit"] = {
            "sha": head.sha,
            "message": head.message[:MAX_MESSAGE],
            "author": head.author,
            "timestamp": head.timestamp,
            "url": head.url,
        }
    return trigger


def _ignored(base: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"status": 200, "body": {**base, "result": "ignored", "reason": reason}}


def _skipped(app: AppConfig, env: EnvironmentConfig, reason: str) -> dict[str, Any]:
    return {"app": app.name, "environment": env.name, "skipped": reason}


def _answer(base: dict[str, Any], outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    deployed = [o for o in outcomes if "deploy_id" in o]
    if not deployed:
        reasons = "; ".join(f"{o['app']}/{o['environment']} {o['skipped']}" for o in outcomes)
        return _ignored({**base, "environments": outcomes}, reasons)
    body = {
        **base,
        "result": "deploy",
        "deploy_id": deployed[0]["deploy_id"],
        "deploys": outcomes,
    }
    return {"status": 202, "body": body}
