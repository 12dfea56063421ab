"""Webhook deliveries to deploys: authenticate, parse, route by config, deploy exactly once.

Order matters: the body size and the signature are checked before anything is parsed or
stored, so a rejected request touches no table and starts nothing. ``receive`` returns a
``WebhookOutcome`` (accepted, existing or ignored; never an HTTP status, which ``http.py``
maps); authentic events that deploy nothing are ignored with the reason, and answered 2xx
(GitLab disables hooks that keep failing).

A CI result deploys only the branch's current head
--------------------------------------------------
An environment with ``trigger = "ci"`` deploys a commit once CI passes on it. CI results
arrive in any order (CI for an older commit can finish after a newer push) and can describe
a fork's branch of the same name, so every authentic push to a branch that such an
environment deploys records that branch's head (``BranchHeads``: one DynamoDB item per
provider + repository + branch), even though the push itself deploys nothing there. A CI
event for such a branch then decides, in this order (``_ci``):

==========================================================  ====================================
the CI event                                                outcome (nothing else is recorded)
==========================================================  ====================================
no ``trigger = "ci"`` environment deploys its branch        ignored, as before
CI did not succeed                                          ignored: "CI concluded failure"
its head repository is not the app's repository (a fork,    ignored, each environment skipped:
or unknown: a deleted fork's run)                           "CI ran for <repo>, not <app repo>"
no push to the branch has been recorded                     ignored: "... head is unknown"
its SHA is not the recorded head                            ignored: "CI passed for <sha>
                                                            but the head of <branch> is <head>"
its SHA is the recorded head                                accepted, deploy (as before)
==========================================================  ====================================

No recorded head deploys nothing: without it Roadie cannot tell the current commit from a
stale one, and presuming "current" is the very bug this guards against. It happens for the
first CI result after a branch becomes CI-gated (or after this shipped), and when CI reports
before its push's delivery arrives; the next push, or a deploy by hand, settles it.

Which push is the head (``supersedes``, and the same rule as a DynamoDB condition in
``adapters.dynamo.BranchHeadRepository``, so a late older delivery loses the conditional
write even when two invocations race):

- when both the recorded push and the new one carry the provider's push time (GitHub's
  ``repository.pushed_at``, epoch seconds), the later time wins; within the same second only
  a push that continues the recorded one (its ``before`` is the recorded head) wins;
- otherwise (GitLab and Bitbucket send no push time) the ``before``/``after`` chain decides:
  a push whose ``before`` is the recorded head continues it and wins; one whose ``after`` is
  the recorded head or that head's own ``before`` is a repeat or the predecessor, and loses;
  any other push is taken as newer (deliveries in between were lost, and refusing it would
  freeze the branch's head for good).

Why the provider's time first: the chain cannot order pushes that do not touch. A push
delivered two or more pushes late looks exactly like one that follows lost deliveries, and a
force-push back to an earlier commit repeats SHAs; a time orders both. GitHub's time is the
repository's last push (any branch) as of the payload, which GitHub builds as it takes the
push: so a later push carries a later or equal time (a tie, in the same second, is settled
by the chain). GitLab gives no time, so there one gap remains: a push delivered two or more
pushes late, sharing no SHA with the recorded head, is taken as the head until the next push
(CI for the real head then answers with the reason, and deploys nothing). The receipt time
would not help: a late delivery is exactly one received late.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import AppConfig, EnvironmentConfig, PipelineConfig
from ..domain import correlation
from ..domain.errors import RoadieError
from ..domain.model import Requester
from ..domain.webhook_outcome import OutcomeKind, WebhookOutcome
from ..webhooks import (
    MAX_BODY_BYTES,
    PROVIDERS,
    CIEvent,
    Commit,
    Ignored,
    PayloadTooLargeError,
    PushEvent,
    UnknownProviderError,
    WebhookError,
    WebhookEvent,
    parse,
    verify_bitbucket,
    verify_github,
    verify_gitlab,
)
from .audit import Observer
from .deploys import DeployService
from .ports import BranchHeads, DeliveryLog, SecretSource

MAX_MESSAGE = 1000
MAX_SUBJECT = 200
SHORT_SHA = 12
Target = tuple[AppConfig, EnvironmentConfig]


@dataclass(frozen=True)
class PushedHead:
    """A branch head as one push reported it (what ``BranchHeads`` keeps per branch)."""

    sha: str
    before: str  # "" when the push created the branch
    pushed_at: int | None  # the provider's push time, epoch seconds; None if it gives none


def supersedes(recorded: PushedHead | None, push: PushedHead) -> bool:
    """Whether ``push`` makes a newer head than the ``recorded`` one (see the module doc)."""
    if recorded is None:
        return True
    continues = bool(push.before) and push.before == recorded.sha
    if push.pushed_at is not None and recorded.pushed_at is not None:
        if push.pushed_at != recorded.pushed_at:
            return push.pushed_at > recorded.pushed_at
        return continues
    return continues or push.sha not in (recorded.sha, recorded.before)


def head_key(provider: str, repository: str, branch: str) -> str:
    """The ``BranchHeads`` key of one branch (repository names are case-insensitive)."""
    return f"{provider}#{repository.lower()}#{branch}"


@dataclass
class WebhookService:
    pipeline: PipelineConfig
    secrets: SecretSource
    deliveries: DeliveryLog
    deploys: DeployService
    heads: BranchHeads
    allow_github_sha1: bool = False
    observer: Observer | None = None  # None: decisions are logged, not audited

    def receive(
        self, provider: str, body: bytes, headers: Mapping[str, str], lambda_context: Any = None
    ) -> WebhookOutcome:
        try:
            outcome = self._receive(provider, body, headers, lambda_context)
        except (WebhookError, RoadieError) as exc:
            status = getattr(exc, "status", None)
            log.warning(
                "%s webhook refused (%s): %s",
                provider,
                status or exc.code,
                exc,
                extra={"decision": "rejected", "http_status": status, "reason": exc.code},
            )
            raise
        body_out = outcome.body
        log.info(
            "%s webhook %s: %s",
            provider,
            outcome.kind.value,
            body_out.get("deploy_id") or body_out.get("reason", ""),
            extra={
                "decision": outcome.kind.value,
                "webhook_deploy_id": body_out.get("deploy_id"),
                "reason": body_out.get("reason"),
            },
        )
        return outcome

    def _receive(
        self, provider: str, body: bytes, headers: Mapping[str, str], lambda_context: Any
    ) -> WebhookOutcome:
        if provider not in PROVIDERS:
            raise UnknownProviderError(f"unknown webhook provider {provider!r}")
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"body is over the {MAX_BODY_BYTES}-byte limit")
        self._authenticate(provider, body, headers)
        event = parse(provider, body, headers)
        correlation.bind(delivery_id=event.delivery_id)
        key = f"{provider}:{event.delivery_id}"
        digest = hashlib.sha256(body).hexdigest()
        stored = self.deliveries.once(key, digest, lambda: self._decide(event), lambda_context)
        return WebhookOutcome.from_json(stored)

    def _decide(self, event: WebhookEvent) -> dict[str, Any]:
        """Act on a delivery seen for the first time, and audit the decision per
        environment it concerns (a delivery that names none, like a ping, is only logged)."""
        outcome = self._act(event)
        if self.observer is not None:
            body = outcome.body
            source = "ci" if isinstance(event, CIEvent) else "push"
            principal = getattr(event, "pusher", "") or event.provider
            entries = body.get("deploys") or body.get("environments") or []
            for entry in entries:
                deployed = "deploy_id" in entry
                self.observer.record(
                    app=str(entry["app"]),
                    environment=str(entry["environment"]),
                    action="webhook.accepted" if deployed else "webhook.ignored",
                    principal=principal,
                    source=source,
                    deploy_id=entry.get("deploy_id"),
                    delivery_id=event.delivery_id,
                    provider=event.provider,
                    reason=entry.get("skipped"),
                    existing=entry.get("existing"),
                )
        return outcome.to_json()

    def _authenticate(self, provider: str, body: bytes, headers: Mapping[str, str]) -> None:
        secrets = self.secrets.active(provider)
        if provider == "github":
            verify_github(body, headers, secrets, allow_sha1=self.allow_github_sha1)
        elif provider == "gitlab":
            verify_gitlab(headers, secrets)
        else:
            verify_bitbucket(body, headers, secrets)

    def _act(self, event: WebhookEvent) -> WebhookOutcome:
        base = {"provider": event.provider, "delivery_id": event.delivery_id}
        if isinstance(event, Ignored):
            return _ignored(base, event.reason)
        if isinstance(event, PushEvent):
            return self._push(event, base)
        return self._ci(event, base)

    def _push(self, event: PushEvent, base: dict[str, Any]) -> WebhookOutcome:
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
        newer = ""
        if event.branch is not None and any(e.trigger == "ci" for _, e in matched):
            newer = self._record_head(event, event.branch)
        outcomes = []
        for app, env in matched:
            if env.trigger == "ci":
                reason = "waits for CI to pass on this commit"
                if newer:
                    reason = (
                        f"will not deploy {_short(event.after)}: a newer push to "
                        f"{event.branch} ({_short(newer)}) is recorded, so CI for this one "
                        "deploys nothing"
                    )
                outcomes.append(_skipped(app, env, reason))
            elif env.trigger != "push":
                outcomes.append(_skipped(app, env, "deploys only on request"))
            else:
                outcomes.append(self._deploy(app, env, event.after, event, base))
        return _answer(base, outcomes)

    def _record_head(self, event: PushEvent, branch: str) -> str:
        """Record the push as its branch's head; "" if it is, else the newer head kept."""
        key = head_key(event.provider, event.repository, branch)
        if self.heads.record(
            key,
            sha=event.after,
            before=event.before,
            pushed_at=event.pushed_at,
            delivery_id=event.delivery_id,
        ):
            return ""
        kept = self.heads.head(key)
        # the same push again (another delivery of it) is not a stale one
        return "" if kept is None or kept == event.after else kept

    def _ci(self, event: CIEvent, base: dict[str, Any]) -> WebhookOutcome:
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
        refusal = self._ci_refusal(event, matched[0][0])
        if refusal:
            return _answer(base, [_skipped(a, e, refusal) for a, e in matched])
        return _answer(base, [self._deploy(a, e, event.sha, event, base) for a, e in matched])

    def _ci_refusal(self, event: CIEvent, app: AppConfig) -> str:
        """Why a CI success must not deploy its SHA ("" if it may): see the module doc.

        Every matched environment belongs to an app of ``event.repository``, so one answer
        holds for all of them."""
        if event.head_repository.lower() != app.repository.lower():
            where = event.head_repository or "a repository it does not name (a deleted fork?)"
            return f"CI ran for {where}, not {app.repository}; nothing deployed"
        head = self.heads.head(head_key(event.provider, event.repository, event.branch))
        if head is None:
            return (
                f"CI passed for {_short(event.sha)} but no push to {event.branch} has been "
                "recorded, so its head is unknown; nothing deployed (push again, or deploy "
                "by hand)"
            )
        if head != event.sha:
            return (
                f"CI passed for {_short(event.sha)} but the head of {event.branch} is "
                f"{_short(head)}"
            )
        return ""

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
            sha_known=True,  # the provider reported it in a delivery we authenticated
            commit_at=head.timestamp if head is not None and head.sha == sha else None,
        )
        return {
            "app": app.name,
            "environment": env.name,
            "deploy_id": deploy.deploy_id,
            "status": deploy.status.value,
            "existing": not created,
        }


log = logging.getLogger("roadie.webhooks")


def _short(sha: str) -> str:
    return sha[:SHORT_SHA]


def _reason(event: PushEvent | CIEvent, head: Commit | None) -> str:
    subject = head.message.splitlines()[0][:MAX_SUBJECT] if head and head.message else ""
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


def _ignored(base: dict[str, Any], reason: str) -> WebhookOutcome:
    return WebhookOutcome(OutcomeKind.IGNORED, {**base, "result": "ignored", "reason": reason})


def _skipped(app: AppConfig, env: EnvironmentConfig, reason: str) -> dict[str, Any]:
    return {"app": app.name, "environment": env.name, "skipped": reason}


def _answer(base: dict[str, Any], outcomes: list[dict[str, Any]]) -> WebhookOutcome:
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
    if all(o["existing"] for o in deployed):
        return WebhookOutcome(OutcomeKind.EXISTING, body)
    return WebhookOutcome(OutcomeKind.ACCEPTED, body)
