"""Bitbucket Cloud deliveries (decoded JSON + X-Event-Key) to PushEvent or Ignored."""

from __future__ import annotations

from . import fields as f
from .events import BRANCH_PREFIX, TAG_PREFIX, Commit, Ignored, PushEvent, WebhookEvent
from .fields import JsonObject

PROVIDER = "bitbucket"
EVENT_HEADER = "x-event-key"
DELIVERY_HEADER = "x-request-uuid"

_REF_PREFIXES = {"branch": BRANCH_PREFIX, "tag": TAG_PREFIX}


def parse_event(event: str, delivery_id: str, payload: JsonObject) -> WebhookEvent:
    """Turn one Bitbucket delivery into an event; only ``repo:push`` is read."""
    if event != "repo:push":
        return _ignored(delivery_id, event, f"event '{f.printable(event)}' is not handled")
    repository = f.repository(
        f.string(f.obj(payload, "repository"), "full_name", "repository"),
        "repository.full_name",
    )
    changes = f.array(f.obj(payload, "push"), "changes", "push")
    deleted_kind = ""
    for index, item in enumerate(changes):
        where = f"push.changes[{index}]"
        change = f.as_object(item, where)
        new = f.opt_obj(change, "new", where)
        if new is None:
            old = f.opt_obj(change, "old", where)
            old_type = f.first_string(old, ("type",), f"{where}.old")
            deleted_kind = deleted_kind or (old_type if old_type == "tag" else "branch")
            continue
        ref_type = f.string(new, "type", f"{where}.new")
        if ref_type in _REF_PREFIXES:
            return _push(
                delivery_id,
                payload,
                repository=repository,
                change=change,
                new=new,
                ref_type=ref_type,
                where=where,
            )
    if deleted_kind:
        return _ignored(delivery_id, event, f"{deleted_kind} deleted")
    return _ignored(delivery_id, event, "push changed no branch or tag")


def _ignored(delivery_id: str, event: str, reason: str) -> Ignored:
    return Ignored(provider=PROVIDER, delivery_id=delivery_id, event=event, reason=reason)


def _push(
    delivery_id: str,
    payload: JsonObject,
    *,
    repository: str,
    change: JsonObject,
    new: JsonObject,
    ref_type: str,
    where: str,
) -> PushEvent:
    name = f.string(new, "name", f"{where}.new")
    ref = f.ref(_REF_PREFIXES[ref_type] + name, f"{where}.new.name")
    target = f.obj(new, "target", f"{where}.new")
    after = f.sha(f.string(target, "hash", f"{where}.new.target"), f"{where}.new.target.hash")
    before = ""
    old = f.opt_obj(change, "old", where)
    old_target = f.opt_obj(old, "target", f"{where}.old") if old is not None else None
    if old_target is not None:
        before_hash = f.string(old_target, "hash", f"{where}.old.target")
        before = f.sha(before_hash, f"{where}.old.target.hash")
    links = f.opt_obj(change, "links", where)
    html = f.opt_obj(links, "html", f"{where}.links") if links is not None else None
    pusher = f.first_string(f.opt_obj(payload, "actor"), ("nickname", "username", "display_name"))
    return PushEvent(
        provider=PROVIDER,
        delivery_id=delivery_id,
        repository=repository,
        ref=ref,
        before=before,
        after=after,
        pusher=f.name(pusher, "actor.nickname"),
        forced=f.boolean(change, "forced", where),
        compare_url=f.first_string(html, ("href",), f"{where}.links.html"),
        head_commit=_commit(target, after, f"{where}.new.target"),
        created=f.boolean(change, "created", where) or old is None,
    )


def _commit(target: JsonObject, sha: str, where: str) -> Commit:
    author = f.opt_obj(target, "author", where)
    author_name = ""
    if author is not None:
        user = f.opt_obj(author, "user", f"{where}.author")
        author_name = f.first_string(user, ("display_name", "nickname"), f"{where}.author.user")
        if not author_name:
            raw = f.first_string(author, ("raw",), f"{where}.author")
            author_name = _without_email(raw)
    links = f.opt_obj(target, "links", where)
    html = f.opt_obj(links, "html", f"{where}.links") if links is not None else None
    return Commit(
        sha=sha,
        message=f.opt_string(target, "message", where) or "",
        author=author_name,
        timestamp=f.opt_string(target, "date", where) or "",
        url=f.first_string(html, ("href",), f"{where}.links.html"),
    )


def _without_email(raw: str) -> str:
    """``"Jane Doe <jane@example.com>"`` -> ``"Jane Doe"`` (string ops: no regex backtracking)."""
    stripped = raw.strip()
    start = stripped.rfind("<")
    if start > 0 and stripped.endswith(">"):
        return stripped[:start].strip()
    return stripped
