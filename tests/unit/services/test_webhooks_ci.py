"""A CI result deploys only the branch's current head: the decision, with in-memory fakes.

Deliveries go through ``WebhookService.receive`` as signed corpus bodies (tests/events), so
parsing and routing are the real ones; the branch heads, the delivery log and the deploy
service are fakes. ``FakeBranchHeads`` applies ``supersedes``, the rule the DynamoDB
condition mirrors (tests/functional/test_webhooks.py runs the same cases against moto).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from chalicelib.config import parse_pipeline
from chalicelib.domain.webhook_outcome import OutcomeKind, WebhookOutcome
from chalicelib.services.webhooks import (
    PushedHead,
    WebhookService,
    head_key,
    supersedes,
)
from chalicelib.webhooks import sign_sha256

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "tests" / "events"
SECRETS = json.loads((EVENTS / "secrets.json").read_text())
PIPELINE = (ROOT / "tests" / "functional" / "pipeline-corpus.toml").read_text()
# Codertocat/Hello-World: production deploys pushes to master, staging waits for CI on main
HELLO = "Codertocat/Hello-World"
MAIN = head_key("github", HELLO, "main")
OLD, NEW, NEWER = "1" * 40, "2" * 40, "3" * 40
T = 1_700_000_000


@dataclass
class FakeBranchHeads:
    """BranchHeads in memory, with the rule the adapter's conditional write applies."""

    heads: dict[str, PushedHead] = field(default_factory=dict)
    reads: int = 0

    def record(
        self, key: str, *, sha: str, before: str, pushed_at: int | None, delivery_id: str
    ) -> bool:
        push = PushedHead(sha, before, pushed_at)
        if not supersedes(self.heads.get(key), push):
            return False
        self.heads[key] = push
        return True

    def head(self, key: str) -> str | None:
        self.reads += 1
        found = self.heads.get(key)
        return found.sha if found else None


class FakeDeliveries:
    def once(self, key: str, body_sha256: str, handler: Callable[[], Any], ctx: Any = None) -> Any:
        return handler()


@dataclass
class FakeDeploys:
    requests: list[dict[str, Any]] = field(default_factory=list)
    ids: Any = field(default_factory=itertools.count)
    created: bool = True  # False: every request finds the same SHA already deploying

    def request(self, **kwargs: Any) -> tuple[Any, bool]:
        self.requests.append(kwargs)
        deploy = SimpleNamespace(
            deploy_id=f"d-{next(self.ids)}", status=SimpleNamespace(value="queued")
        )
        return deploy, self.created


class FakeSecrets:
    def active(self, provider: str) -> list[str]:
        key = {"github": "github_webhook_secret", "gitlab": "gitlab_secret_token"}[provider]
        return [SECRETS[key]]


@dataclass
class World:
    service: WebhookService
    heads: FakeBranchHeads
    deploys: FakeDeploys
    deliveries: Any = field(default_factory=lambda: itertools.count(1))

    def github(self, event: str, payload: dict[str, Any]) -> WebhookOutcome:
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": f"delivery-{next(self.deliveries)}",
            "X-Hub-Signature-256": sign_sha256(SECRETS["github_webhook_secret"], body),
        }
        return self.service.receive("github", body, headers)

    def gitlab(self, event: str, payload: dict[str, Any]) -> WebhookOutcome:
        headers = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": event,
            "X-Gitlab-Token": SECRETS["gitlab_secret_token"],
            "Idempotency-Key": f"delivery-{next(self.deliveries)}",
        }
        return self.service.receive("gitlab", json.dumps(payload).encode(), headers)

    def push(
        self, after: str, before: str = "", *, pushed_at: int | None = T, ref: str = "main"
    ) -> WebhookOutcome:
        return self.github("push", github_push(after, before, pushed_at=pushed_at, ref=ref))

    def check_suite(self, sha: str, **changes: Any) -> WebhookOutcome:
        return self.github("check_suite", check_suite(sha, **changes))


# An app whose GitLab pipelines gate its only environment (the corpus config has none).
GITLAB_CI_APP = """
[apps.gl-ci]
repository = "acme/gl-shop"
source = { kind = "git", url = "${ROADIE_STATE_DIR}/sources/shop" }
[apps.gl-ci.environments.production]
branch = "main"
trigger = "ci"
hosts = { tags = { App = "gl-ci", Environment = "production" } }
"""


@pytest.fixture
def world() -> World:
    heads, deploys = FakeBranchHeads(), FakeDeploys()
    service = WebhookService(
        pipeline=parse_pipeline(PIPELINE + GITLAB_CI_APP, {"ROADIE_STATE_DIR": "/nonexistent"}),
        secrets=FakeSecrets(),
        deliveries=FakeDeliveries(),
        deploys=cast(Any, deploys),
        heads=heads,
    )
    return World(service, heads, deploys)


def corpus(case_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{case_id}.json").read_text())
    return loaded


def github_push(after: str, before: str, *, pushed_at: int | None, ref: str) -> dict[str, Any]:
    payload = corpus("github/push/1")  # Codertocat/Hello-World
    payload.update(ref=f"refs/heads/{ref}", after=after, before=before or "0" * 40)
    payload["created"] = not before
    payload["head_commit"]["id"] = after
    if pushed_at is None:
        payload["repository"].pop("pushed_at")
    else:
        payload["repository"]["pushed_at"] = pushed_at
    return payload


def check_suite(sha: str, *, conclusion: str = "success", fork_pull: str = "") -> dict[str, Any]:
    payload = corpus("github/check_suite/1")  # Codertocat/Hello-World, head_branch main
    payload["check_suite"].update(head_sha=sha, conclusion=conclusion)
    payload["check_suite"]["head_commit"]["id"] = sha
    if fork_pull:
        pulls = corpus("github/check_suite/2")["check_suite"]["pull_requests"]
        pulls[0]["head"]["repo"]["url"] = f"https://api.github.com/repos/{fork_pull}"
        payload["check_suite"]["pull_requests"] = pulls
    return payload


def workflow_run(sha: str, head_repository: str | None) -> dict[str, Any]:
    payload = corpus("github/workflow_run/1")  # octo-org/octo-repo, master, trigger ci
    run = payload["workflow_run"]
    run["head_sha"] = sha
    if head_repository is None:
        run["head_repository"] = None
    else:
        run["head_repository"]["full_name"] = head_repository
    return payload


def skipped(answer: WebhookOutcome) -> list[str]:
    assert answer.kind is OutcomeKind.IGNORED and answer.body["result"] == "ignored", answer
    return [o["skipped"] for o in answer.body.get("environments", [])]


# --- the decision table ----------------------------------------------------------------------


def test_ci_for_the_recorded_head_deploys_it(world: World) -> None:
    world.push(NEW, OLD)
    answer = world.check_suite(NEW)
    assert answer.kind is OutcomeKind.ACCEPTED, answer
    assert [(d["app"], d["environment"]) for d in answer.body["deploys"]] == [
        ("hello-world", "staging")
    ]
    assert [(r["environment"], r["sha"]) for r in world.deploys.requests] == [("staging", NEW)]


def test_ci_for_an_older_commit_after_a_newer_push_deploys_nothing_and_says_why(
    world: World,
) -> None:
    world.push(OLD)
    world.push(NEW, OLD, pushed_at=T + 5)
    answer = world.check_suite(OLD)  # CI of the older commit finishes last
    assert skipped(answer) == [f"CI passed for {OLD[:12]} but the head of main is {NEW[:12]}"]
    assert answer.body["reason"] == (
        f"hello-world/staging CI passed for {OLD[:12]} but the head of main is {NEW[:12]}"
    )
    assert world.deploys.requests == []
    assert world.heads.heads[MAIN].sha == NEW  # a CI result records nothing


def test_ci_for_a_branch_whose_head_was_never_seen_deploys_nothing(world: World) -> None:
    answer = world.check_suite(NEW)
    [reason] = skipped(answer)
    assert reason.startswith(f"CI passed for {NEW[:12]} but no push to main has been recorded")
    assert "head is unknown" in reason
    assert world.deploys.requests == [] and world.heads.heads == {}


def test_a_check_suite_whose_pull_request_comes_from_a_fork_deploys_nothing(
    world: World,
) -> None:
    world.push(NEW, OLD)
    answer = world.check_suite(NEW, fork_pull="mallory/Hello-World")
    assert skipped(answer) == [f"CI ran for mallory/Hello-World, not {HELLO}; nothing deployed"]
    assert world.deploys.requests == []


def test_a_fork_check_suite_with_the_deploy_branchs_name_but_its_own_sha_deploys_nothing(
    world: World,
) -> None:
    """GitHub names no head repository on a check suite: a fork's suite for a branch called
    "main" (no pull requests listed) is stopped by its SHA, which no push to main recorded."""
    world.push(NEW, OLD)
    fork_commit = "f" * 40
    answer = world.check_suite(fork_commit)
    assert skipped(answer) == [
        f"CI passed for {fork_commit[:12]} but the head of main is {NEW[:12]}"
    ]
    assert world.deploys.requests == []


@pytest.mark.parametrize(
    ("head_repository", "named"),
    [("mallory/octo-repo", "mallory/octo-repo"), (None, "a repository it does not name")],
)
def test_a_workflow_run_from_a_fork_deploys_nothing_even_for_the_head_sha(
    world: World, head_repository: str | None, named: str
) -> None:
    octo = head_key("github", "octo-org/octo-repo", "master")
    world.heads.heads[octo] = PushedHead(NEW, OLD, T)
    answer = world.github("workflow_run", workflow_run(NEW, head_repository))
    [reason] = skipped(answer)
    assert reason.startswith(f"CI ran for {named}") and "not octo-org/octo-repo" in reason
    assert world.deploys.requests == []


def test_a_workflow_run_of_the_repositorys_own_head_deploys(world: World) -> None:
    world.heads.heads[head_key("github", "octo-org/octo-repo", "master")] = PushedHead(NEW, "", T)
    answer = world.github("workflow_run", workflow_run(NEW, "Octo-Org/Octo-Repo"))  # any case
    assert answer.kind is OutcomeKind.ACCEPTED, answer
    assert world.deploys.requests[0]["sha"] == NEW


def test_red_ci_for_the_head_still_deploys_nothing(world: World) -> None:
    world.push(NEW, OLD)
    answer = world.check_suite(NEW, conclusion="failure")
    assert answer.kind is OutcomeKind.IGNORED and "CI concluded failure" in answer.body["reason"]
    assert world.deploys.requests == []
    assert world.heads.reads == 0  # decided before reading the head


# --- pushes record the head -----------------------------------------------------------------


def test_a_push_to_a_ci_gated_branch_records_its_head_and_deploys_nothing(world: World) -> None:
    answer = world.push(NEW, OLD)
    assert skipped(answer) == ["waits for CI to pass on this commit"]
    assert world.heads.heads == {MAIN: PushedHead(NEW, OLD, T)}
    assert world.deploys.requests == []


def test_a_push_to_a_branch_no_environment_gates_on_ci_records_nothing(world: World) -> None:
    answer = world.push(NEW, OLD, ref="master")  # production deploys master on push
    assert answer.kind is OutcomeKind.ACCEPTED
    assert world.heads.heads == {}


def test_a_push_whose_sha_is_already_deploying_is_an_existing_outcome(world: World) -> None:
    world.deploys.created = False
    answer = world.push(NEW, OLD, ref="master")
    assert answer.kind is OutcomeKind.EXISTING
    assert answer.body["result"] == "deploy" and answer.body["deploys"][0]["existing"] is True


def test_an_ignored_outcome_carries_its_reason(world: World) -> None:
    answer = world.push(NEW, OLD, ref="feature")
    assert answer.kind is OutcomeKind.IGNORED
    assert answer.reason == answer.body["reason"] and "feature" in answer.reason


def test_a_late_older_push_does_not_replace_the_newer_head_and_says_so(world: World) -> None:
    world.push(NEWER, NEW, pushed_at=T + 10)
    answer = world.push(NEW, OLD, pushed_at=T)  # delivered after the newer one
    [reason] = skipped(answer)
    assert reason == (
        f"will not deploy {NEW[:12]}: a newer push to main ({NEWER[:12]}) is recorded, "
        "so CI for this one deploys nothing"
    )
    assert world.heads.heads[MAIN].sha == NEWER
    assert skipped(world.check_suite(NEW)) == [
        f"CI passed for {NEW[:12]} but the head of main is {NEWER[:12]}"
    ]
    assert world.check_suite(NEWER).kind is OutcomeKind.ACCEPTED


def test_the_same_push_delivered_twice_is_not_called_stale(world: World) -> None:
    world.push(NEW, OLD)
    assert skipped(world.push(NEW, OLD)) == ["waits for CI to pass on this commit"]


def test_gitlab_pushes_without_a_time_are_ordered_by_their_chain(world: World) -> None:
    def gl_push(after: str, before: str) -> dict[str, Any]:
        payload = corpus("gitlab/push/2")
        payload.update(ref="refs/heads/main", before=before, after=after, checkout_sha=after)
        payload["project"]["path_with_namespace"] = "acme/gl-shop"
        return payload

    def pipeline(sha: str) -> dict[str, Any]:
        return {
            "object_kind": "pipeline",
            "object_attributes": {"ref": "main", "sha": sha, "status": "success", "tag": False},
            "project": {"path_with_namespace": "acme/gl-shop"},
            "user": {"username": "root"},
        }

    world.gitlab("Push Hook", gl_push(NEWER, NEW))  # the newer push arrives first
    late = world.gitlab("Push Hook", gl_push(NEW, OLD))  # its predecessor, late: loses
    assert "a newer push to main" in skipped(late)[0]
    assert world.heads.heads[head_key("gitlab", "acme/gl-shop", "main")].sha == NEWER
    assert skipped(world.gitlab("Pipeline Hook", pipeline(NEW))) == [
        f"CI passed for {NEW[:12]} but the head of main is {NEWER[:12]}"
    ]
    assert world.gitlab("Pipeline Hook", pipeline(NEWER)).kind is OutcomeKind.ACCEPTED
    assert [r["sha"] for r in world.deploys.requests] == [NEWER]


# --- the ordering rule ------------------------------------------------------------------------

A, B, C, D = "a" * 40, "b" * 40, "c" * 40, "d" * 40
# (recorded head, the new push, does the push supersede it)
ORDER_CASES = [
    (None, PushedHead(B, A, T), True),
    (None, PushedHead(B, "", None), True),
    # both timed: the later push wins, whatever the chain says
    (PushedHead(B, A, T), PushedHead(C, B, T + 1), True),
    (PushedHead(C, B, T + 1), PushedHead(B, A, T), False),
    (PushedHead(B, A, T), PushedHead(A, B, T + 1), True),  # force-push back to A
    (PushedHead(A, B, T + 1), PushedHead(B, A, T), False),  # ... and its late predecessor
    (PushedHead(B, A, T), PushedHead(D, C, T + 1), True),
    # the same second: only a push continuing the recorded head wins
    (PushedHead(B, A, T), PushedHead(C, B, T), True),
    (PushedHead(C, B, T), PushedHead(B, A, T), False),
    (PushedHead(B, A, T), PushedHead(B, A, T), False),
    (PushedHead(B, A, T), PushedHead(D, C, T), False),
    (PushedHead(B, A, T), PushedHead(C, "", T), False),
    # no time on either side: the chain
    (PushedHead(B, A, None), PushedHead(C, B, None), True),  # continues
    (PushedHead(C, B, None), PushedHead(B, A, None), False),  # the predecessor, late
    (PushedHead(B, A, None), PushedHead(B, A, None), False),  # a repeat
    (PushedHead(B, A, None), PushedHead(B, D, None), False),  # the head again
    (PushedHead(B, A, None), PushedHead(D, C, None), True),  # a gap: deliveries were lost
    (PushedHead(B, "", None), PushedHead(C, "", None), True),  # branch deleted and re-made
    (PushedHead(B, A, None), PushedHead(A, B, None), True),  # force-push back continues B
    # time on one side only: the chain
    (PushedHead(B, A, None), PushedHead(C, B, T), True),
    (PushedHead(C, B, T), PushedHead(B, A, None), False),
    (PushedHead(C, B, None), PushedHead(B, A, T), False),
]


@pytest.mark.parametrize(("recorded", "push", "expected"), ORDER_CASES)
def test_supersedes(recorded: PushedHead | None, push: PushedHead, expected: bool) -> None:
    assert supersedes(recorded, push) is expected


def test_three_pushes_delivered_in_any_order_leave_the_newest_head_when_timed() -> None:
    pushes = [PushedHead(B, A, T), PushedHead(C, B, T + 1), PushedHead(D, C, T + 2)]
    for order in itertools.permutations(pushes):
        recorded: PushedHead | None = None
        for push in order:
            if supersedes(recorded, push):
                recorded = push
        assert recorded == pushes[-1], order


def test_two_pushes_delivered_in_either_order_leave_the_newest_head_without_a_time() -> None:
    pushes = [PushedHead(B, A, None), PushedHead(C, B, None)]
    for order in itertools.permutations(pushes):
        recorded: PushedHead | None = None
        for push in order:
            if supersedes(recorded, push):
                recorded = push
        assert recorded == pushes[-1], order


def test_a_key_names_provider_repository_in_any_case_and_branch() -> None:
    assert head_key("github", "Acme/Shop", "Main") == "github#acme/shop#Main"
    assert head_key("github", "acme/shop", "main") != head_key("gitlab", "acme/shop", "main")


def test_a_push_passes_its_head_commits_time_for_the_lead_time(world: World) -> None:
    answer = world.push(NEW, OLD, ref="master")  # production deploys master on a push
    assert answer.kind is OutcomeKind.ACCEPTED, answer
    (asked,) = world.deploys.requests
    assert (asked["sha"], asked["commit_at"]) == (NEW, "2018-06-15T13:01:51-07:00")
