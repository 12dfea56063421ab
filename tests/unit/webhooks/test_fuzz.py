"""Mutated deliveries: whatever the body, ``parse`` returns an event or raises a WebhookError."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from chalicelib.webhooks import CIEvent, Ignored, PushEvent, WebhookError, parse

from .corpus import PROVIDERS, Case, case_ids, load_case

MUTATIONS_PER_PROVIDER = 400
SEED = 20240611

# The fields the parsers read; mutations aim at these half of the time.
READ_KEYS = frozenset(
    {
        "ref",
        "after",
        "before",
        "deleted",
        "forced",
        "created",
        "compare",
        "head_commit",
        "id",
        "message",
        "author",
        "name",
        "username",
        "timestamp",
        "url",
        "repository",
        "full_name",
        "pusher",
        "sender",
        "login",
        "zen",
        "action",
        "workflow_run",
        "check_suite",
        "head_branch",
        "head_sha",
        "conclusion",
        "head_repository",
        "pushed_at",
        "pull_requests",
        "base",
        "repo",
        "triggering_actor",
        "actor",
        "object_kind",
        "checkout_sha",
        "project",
        "path_with_namespace",
        "web_url",
        "commits",
        "user_username",
        "user_name",
        "push",
        "changes",
        "new",
        "old",
        "type",
        "target",
        "hash",
        "links",
        "html",
        "href",
        "nickname",
        "display_name",
        "user",
        "raw",
        "date",
        "closed",
    }
)
ODD_VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    True,
    "",
    "x" * 300,
    "0" * 40,
    "A" * 40,
    "refs/heads/\x00",
    "\u202e\ud800",
    [],
    [None],
    {},
    {"id": None},
    {"full_name": 1},
    [{"new": None, "old": None}],
]
TOP_LEVEL_JUNK = [b"[]", b"[{}]", b'"push"', b"0", b"-1e999", b"null", b"true", b"{}", b'{"": {}}']


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return found
    for key, child in items:
        path = (*prefix, key)
        found.append(path)
        found.extend(_paths(child, path))
    return found


def _mutate_json(rng: random.Random, case: Case, paths: list[tuple[Any, ...]]) -> bytes:
    payload = case.payload()
    for _ in range(rng.randint(1, 3)):
        targeted = [p for p in paths if p[-1] in READ_KEYS]
        path = rng.choice(targeted if targeted and rng.random() < 0.5 else paths)
        parent: Any = payload
        try:
            for key in path[:-1]:
                parent = parent[key]
            if rng.random() < 0.25 and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation already replaced part of this path
    return json.dumps(payload).encode("utf-8", errors="surrogatepass")


def _mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    choice = rng.randrange(5)
    if choice == 0:
        return bytes(data[: rng.randrange(len(data) + 1)])  # truncated
    if choice == 1:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)  # flipped bytes
        return bytes(data)
    if choice == 2:
        start = rng.randrange(len(data))
        return bytes(data[:start] + rng.randbytes(rng.randint(1, 16)) + data[start:])
    if choice == 3:
        return rng.randbytes(rng.randint(0, 64))
    return rng.choice(TOP_LEVEL_JUNK)


def _mutate_headers(rng: random.Random, case: Case) -> dict[str, str]:
    event_header = {
        "github": "X_GitHub_Event",
        "gitlab": "X_Gitlab_Event",
        "bitbucket": "X_Event_Key",
    }
    if rng.random() < 0.8:
        return case.headers
    other = load_case(rng.choice(case_ids(case.provider)))
    name = event_header[case.provider]
    return case.with_headers(**{name: other.headers[name.replace("_", "-")]})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_mutated_bodies_give_an_event_or_a_webhook_error(provider: str) -> None:
    rng = random.Random(f"{SEED}-{provider}")
    cases = [load_case(case_id) for case_id in case_ids(provider)]
    paths = {case.case_id: _paths(case.payload()) for case in cases}
    outcomes: dict[str, int] = {}
    for attempt in range(MUTATIONS_PER_PROVIDER):
        case = rng.choice(cases)
        if rng.random() < 0.6:
            body = _mutate_json(rng, case, paths[case.case_id])
        else:
            body = _mutate_bytes(rng, case.body)
        headers = _mutate_headers(rng, case)
        try:
            event = parse(provider, body, headers)
        except WebhookError as exc:
            assert 400 <= exc.status < 500
            assert str(exc), f"attempt {attempt}: an error without a message"
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
        except Exception as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"attempt {attempt} on {case.case_id}: {type(exc).__name__}: {exc}")
        else:
            assert isinstance(event, PushEvent | CIEvent | Ignored)
            outcomes[type(event).__name__] = outcomes.get(type(event).__name__, 0) + 1
    # The mutations must reach the provider rules, not just the JSON decoder.
    assert outcomes.get("PayloadError", 0) > 50
    assert outcomes.get("PushEvent", 0) + outcomes.get("Ignored", 0) > 50


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("junk", TOP_LEVEL_JUNK)
def test_json_that_is_not_a_delivery_is_a_webhook_error_or_ignored(
    provider: str, junk: bytes
) -> None:
    case = load_case(case_ids(provider)[0])
    try:
        event = parse(provider, junk, case.headers)
    except WebhookError as exc:
        assert exc.status == 400
    else:
        assert isinstance(event, Ignored)
