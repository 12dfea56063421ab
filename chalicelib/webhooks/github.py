"""GitHub deliveries (decoded JSON + X-GitHub-Event) to PushEvent, CIEvent or Ignored."""

from __future__ import annotations

from . import fields as f
from .events import TAG_PREFIX, CIEvent, Commit, Ignored, PushEvent, WebhookEvent
from .fields import JsonObject

PROVIDER = "github"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"


def parse_event(event: str, delivery_id: str, payload: JsonObject) -> WebhookEvent:
    """Turn one GitHub delivery into an event; the body must fit the named event."""
    if event == "push":
        return _push(delivery_id, payload)
    if event == "ping":
        # Every ping carries GitHub's zen line; a body without one is not a ping.
        f.string(payload, "zen")
        return _ignored(delivery_id, event, "ping: hook is set up")
    if event == "workflow_run":
        return _workflow_run(delivery_id, payload)
    if event == "check_suite":
        return _check_suite(delivery_id, payload)
    return _ignored(delivery_id, event, f"event '{f.printable(event)}' is not handled")


def _ignored(delivery_id: str, event: str, reason: str) -> Ignored:
    return Ignored(provider=PROVIDER, delivery_id=delivery_id, event=event, reason=reason)


def _repository(payload: JsonObject) -> str:
    repo = f.obj(payload, "repository")
    return f.repository(f.string(repo, "full_name", "repository"), "repository.full_name")


def _push(delivery_id: str, payload: JsonObject) -> WebhookEvent:
    repository = _repository(payload)
    ref = f.ref(f.string(payload, "ref"), "ref")
    raw_after = f.string(payload, "after")
    if f.boolean(payload, "deleted") or f.is_zero_sha(raw_after):
        kind = "tag" if ref.startswith(TAG_PREFIX) else "branch"
        return _ignored(delivery_id, "push", f"{kind} deleted")
    after = f.sha(raw_after, "after")
    raw_before = f.opt_string(payload, "before") or ""
    before = "" if not raw_before or f.is_zero_sha(raw_before) else f.sha(raw_before, "before")
    pusher = f.first_string(f.opt_obj(payload, "pusher"), ("name",), "pusher") or f.first_string(
        f.opt_obj(payload, "sender"), ("login",), "sender"
    )
    head_commit = _commit(f.opt_obj(payload, "head_commit"), "head_commit")
    tag_object_sha = ""
    if ref.startswith(TAG_PREFIX) and head_commit is not None and head_commit.sha != after:
        # An annotated tag: "after" is the tag object, head_commit the commit it tags.
        tag_object_sha, after = after, head_commit.sha
    return PushEvent(
        provider=PROVIDER,
        delivery_id=delivery_id,
        repository=repository,
        ref=ref,
        before=before,
        after=after,
        pusher=f.name(pusher, "pusher.name"),
        forced=f.boolean(payload, "forced"),
        compare_url=f.opt_string(payload, "compare") or "",
        head_commit=head_commit,
        created=f.boolean(payload, "created") or not before,
        tag_object_sha=tag_object_sha,
        # A push delivery gives the repository's last push time in epoch seconds (other
        # events give it as ISO 8601 text, read as "no time").
        pushed_at=f.opt_epoch_seconds(f.obj(payload, "repository"), "pushed_at", "repository"),
    )


def _workflow_run(delivery_id: str, payload: JsonObject) -> WebhookEvent:
    run = f.obj(payload, "workflow_run")
    repository = _repository(payload)
    action = f.string(payload, "action")
    if action != "completed":
        return _ignored(
            delivery_id,
            "workflow_run",
            f"workflow_run action '{f.printable(action)}' is not handled",
        )
    # A run for a fork's pull request has the fork as head_repository and a head_branch that
    # names a branch of the fork (which may well be called "main"); a deleted fork's run has
    # none. The service decides (a fork's run deploys nothing); the parser only reports it.
    head_repository = _full_name(run, "head_repository")
    pusher = (
        f.first_string(f.opt_obj(run, "triggering_actor", "workflow_run"), ("login",))
        or f.first_string(f.opt_obj(run, "actor", "workflow_run"), ("login",))
        or f.first_string(f.opt_obj(payload, "sender"), ("login",), "sender")
    )
    return _ci_event(delivery_id, "workflow_run", repository, head_repository, run, pusher)


def _full_name(run: JsonObject, key: str) -> str:
    repo = f.opt_obj(run, key, "workflow_run")
    return f.first_string(repo, ("full_name",), f"workflow_run.{key}")


def _check_suite(delivery_id: str, payload: JsonObject) -> WebhookEvent:
    suite = f.obj(payload, "check_suite")
    repository = _repository(payload)
    action = f.string(payload, "action")
    if action != "completed":
        return _ignored(
            delivery_id,
            "check_suite",
            f"check_suite action '{f.printable(action)}' is not handled",
        )
    pusher = f.first_string(f.opt_obj(payload, "sender"), ("login",), "sender")
    head_repository = _suite_head_repository(suite, repository)
    return _ci_event(delivery_id, "check_suite", repository, head_repository, suite, pusher)


def _suite_head_repository(suite: JsonObject, repository: str) -> str:
    """Where a check suite's branch lives. A check suite names no head repository: GitHub
    sends a fork's suite with head_branch null and no pull requests. When pull requests are
    listed, one whose head repository differs from its base names a fork; else the suite is
    the repository's own. (The SHA must also be the branch's pushed head to deploy: that, not
    this, is what keeps a fork's commit out.)"""
    for index, item in enumerate(f.array(suite, "pull_requests", "check_suite")):
        where = f"check_suite.pull_requests[{index}]"
        pull = f.as_object(item, where)
        head = _repo_url(pull, "head", where)
        base = _repo_url(pull, "base", where)
        if head.lower() != base.lower():
            # https://api.github.com/repos/<owner>/<name> (GHES: .../api/v3/repos/...)
            _, found, name = head.partition("/repos/")
            return f.name(name if found and name else head or "an unnamed fork", where)
    return repository


def _repo_url(pull: JsonObject, side: str, where: str) -> str:
    ref = f.opt_obj(pull, side, where)
    repo = f.opt_obj(ref, "repo", f"{where}.{side}") if ref is not None else None
    return f.first_string(repo, ("url",), f"{where}.{side}.repo")


def _ci_event(
    delivery_id: str,
    event: str,
    repository: str,
    head_repository: str,
    data: JsonObject,
    pusher: str,
) -> WebhookEvent:
    branch = f.opt_string(data, "head_branch", event)
    if branch is None:
        return _ignored(delivery_id, event, f"{event} has no head branch")
    conclusion = f.opt_string(data, "conclusion", event) or ""
    return CIEvent(
        provider=PROVIDER,
        delivery_id=delivery_id,
        repository=repository,
        head_repository=f.name(head_repository, f"{event}.head_repository"),
        branch=f.ref(branch, f"{event}.head_branch"),
        sha=f.sha(f.string(data, "head_sha", event), f"{event}.head_sha"),
        succeeded=conclusion == "success",
        conclusion=f.printable(conclusion),
        pusher=f.name(pusher, "sender.login"),
        head_commit=_commit(f.opt_obj(data, "head_commit", event), f"{event}.head_commit"),
    )


def _commit(data: JsonObject | None, where: str) -> Commit | None:
    if data is None:
        return None
    author = f.opt_obj(data, "author", where)
    return Commit(
        sha=f.sha(f.string(data, "id", where), f"{where}.id"),
        message=f.opt_string(data, "message", where) or "",
        author=f.first_string(author, ("name", "username"), f"{where}.author"),
        timestamp=f.opt_string(data, "timestamp", where) or "",
        url=f.opt_string(data, "url", where) or "",
    )
