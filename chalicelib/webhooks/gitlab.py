"""GitLab deliveries (decoded JSON + X-Gitlab-Event) to PushEvent, CIEvent or Ignored."""

from __future__ import annotations

from . import fields as f
from .errors import PayloadError
from .events import CIEvent, Commit, Ignored, PushEvent, WebhookEvent
from .fields import JsonObject

PROVIDER = "gitlab"
EVENT_HEADER = "x-gitlab-event"
# Idempotency-Key (GitLab 17.4+) stays the same across retries; X-Gitlab-Event-UUID (14.8+)
# is the best older GitLab offers.
DELIVERY_HEADERS = ("idempotency-key", "x-gitlab-event-uuid")

# The events we read, and the object_kind their body must declare.
_OBJECT_KINDS = {
    "Push Hook": "push",
    "Tag Push Hook": "tag_push",
    "Pipeline Hook": "pipeline",
}
# A pipeline in any other status (created, pending, running, manual, ...) may still change.
_FINAL_STATUSES = frozenset({"success", "failed", "canceled"})


def parse_event(event: str, delivery_id: str, payload: JsonObject) -> WebhookEvent:
    """Turn one GitLab delivery into an event; object_kind must agree with X-Gitlab-Event."""
    expected_kind = _OBJECT_KINDS.get(event)
    if expected_kind is None:
        return _ignored(delivery_id, event, f"event '{f.printable(event)}' is not handled")
    kind = f.string(payload, "object_kind")
    if kind != expected_kind:
        raise PayloadError(
            f"X-Gitlab-Event '{event}' does not match object_kind '{f.printable(kind)}'"
        )
    if kind == "pipeline":
        return _pipeline(delivery_id, event, payload)
    return _push(delivery_id, event, payload)


def _ignored(delivery_id: str, event: str, reason: str) -> Ignored:
    return Ignored(provider=PROVIDER, delivery_id=delivery_id, event=event, reason=reason)


def _project(payload: JsonObject) -> JsonObject:
    return f.obj(payload, "project")


def _repository(project: JsonObject) -> str:
    path = f.string(project, "path_with_namespace", "project")
    return f.repository(path, "project.path_with_namespace")


def _push(delivery_id: str, event: str, payload: JsonObject) -> WebhookEvent:
    project = _project(payload)
    repository = _repository(project)
    ref = f.ref(f.string(payload, "ref"), "ref")
    raw_after = f.string(payload, "after")
    checkout_sha = f.opt_string(payload, "checkout_sha")
    if f.is_zero_sha(raw_after) or checkout_sha is None:
        kind = "tag" if payload.get("object_kind") == "tag_push" else "branch"
        return _ignored(delivery_id, event, f"{kind} deleted")
    ref_sha = f.sha(raw_after, "after")
    # checkout_sha is the commit the ref resolves to; for an annotated tag, "after" is the
    # tag object's own SHA.
    after = f.sha(checkout_sha, "checkout_sha")
    raw_before = f.opt_string(payload, "before") or ""
    before = "" if not raw_before or f.is_zero_sha(raw_before) else f.sha(raw_before, "before")
    web_url = f.opt_string(project, "web_url", "project") or ""
    compare_url = (
        f"{web_url.rstrip('/')}/-/compare/{before}...{after}" if web_url and before else ""
    )
    pusher = f.first_string(payload, ("user_username", "user_name"))
    return PushEvent(
        provider=PROVIDER,
        delivery_id=delivery_id,
        repository=repository,
        ref=ref,
        before=before,
        after=after,
        pusher=f.name(pusher, "user_username"),
        forced=False,  # GitLab does not say whether a push was forced
        compare_url=compare_url,
        head_commit=_head_commit(f.array(payload, "commits"), after),
        created=not before,
        tag_object_sha=ref_sha if ref_sha != after else "",
    )


def _head_commit(commits: list[object], after: str) -> Commit | None:
    """The listed commit whose id is ``after``, else the newest (GitLab lists oldest first)."""
    if not commits:
        return None
    entries = [f.as_object(item, f"commits[{index}]") for index, item in enumerate(commits)]
    for index, entry in enumerate(entries):
        commit_id = f.opt_string(entry, "id", f"commits[{index}]")
        if commit_id is not None and commit_id.lower() == after:
            return _commit(entry, f"commits[{index}]")
    return _commit(entries[-1], f"commits[{len(entries) - 1}]")


def _commit(data: JsonObject | None, where: str) -> Commit | None:
    if data is None:
        return None
    return Commit(
        sha=f.sha(f.string(data, "id", where), f"{where}.id"),
        message=f.opt_string(data, "message", where) or "",
        author=f.first_string(f.opt_obj(data, "author", where), ("name", "email"), where),
        timestamp=f.opt_string(data, "timestamp", where) or "",
        url=f.opt_string(data, "url", where) or "",
    )


def _pipeline(delivery_id: str, event: str, payload: JsonObject) -> WebhookEvent:
    repository = _repository(_project(payload))
    attributes = f.obj(payload, "object_attributes")
    where = "object_attributes"
    status = f.string(attributes, "status", where)
    branch = f.ref(f.string(attributes, "ref", where), f"{where}.ref")
    sha = f.sha(f.string(attributes, "sha", where), f"{where}.sha")
    if f.boolean(attributes, "tag", where):
        return _ignored(delivery_id, event, "pipeline ran for a tag, not a branch")
    if f.opt_string(attributes, "source", where) == "merge_request_event":
        # Its ref is refs/merge-requests/<iid>/head and its SHA may come from a fork.
        return _ignored(delivery_id, event, "pipeline ran for a merge request, not a branch")
    if status not in _FINAL_STATUSES:
        return _ignored(delivery_id, event, f"pipeline status '{f.printable(status)}' is not final")
    user = f.opt_obj(payload, "user")
    return CIEvent(
        provider=PROVIDER,
        delivery_id=delivery_id,
        repository=repository,
        # A branch pipeline runs in the project that has the branch; a fork's code runs in
        # this project only as a merge request pipeline, ignored above.
        head_repository=repository,
        branch=branch,
        sha=sha,
        succeeded=status == "success",
        conclusion=status,
        pusher=f.name(f.first_string(user, ("username", "name"), "user"), "user.username"),
        head_commit=_commit(f.opt_obj(payload, "commit"), "commit"),
    )
