"""GitLab deliveries: every corpus case, header/object_kind agreement, pipelines, tags."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.webhooks import CIEvent, Ignored, PayloadError, PushEvent, WebhookEvent, parse

from .corpus import Case, case_ids, load_case

ZERO = "0" * 40
SHA_A = "a" * 40

EXPECTED: dict[str, tuple[type[Any], str]] = {
    "gitlab/push/1": (PushEvent, ""),
    "gitlab/push/2": (PushEvent, ""),
    "gitlab/push/3": (PushEvent, ""),
    "gitlab/push/4": (Ignored, "branch deleted"),
    "gitlab/push/5": (PushEvent, ""),
    "gitlab/tag_push/1": (PushEvent, ""),
    "gitlab/tag_push/2": (PushEvent, ""),
    "gitlab/tag_push/3": (Ignored, "tag deleted"),
    "gitlab/tag_push/4": (PushEvent, ""),
}


def _parse(case: Case, body: bytes | None = None, **headers: str | None) -> WebhookEvent:
    return parse("gitlab", case.body if body is None else body, case.with_headers(**headers))


def test_every_corpus_case_has_an_expectation() -> None:
    assert set(case_ids("gitlab")) == set(EXPECTED)


@pytest.mark.parametrize("case_id", case_ids("gitlab"))
def test_every_corpus_case_parses_to_the_expected_kind(case_id: str) -> None:
    case = load_case(case_id)
    kind, reason = EXPECTED[case_id]
    event = _parse(case)
    assert type(event) is kind
    assert event.provider == "gitlab"
    assert event.delivery_id == case.headers["Idempotency-Key"]
    if isinstance(event, Ignored):
        assert event.reason == reason
        assert event.event == case.headers["X-Gitlab-Event"]


@pytest.mark.parametrize("case_id", [c for c in case_ids("gitlab") if EXPECTED[c][0] is PushEvent])
def test_push_cases_carry_the_facts_of_their_meta(case_id: str) -> None:
    case = load_case(case_id)
    facts = case.facts
    event = _parse(case)
    assert isinstance(event, PushEvent)
    assert event.repository == facts["project"]
    assert event.ref == facts["ref"]
    assert event.after == facts["checkout_sha"]
    assert event.before == ("" if facts["before"] == ZERO else facts["before"])
    assert event.forced is False
    assert event.pusher
    if event.head_commit is not None:
        assert event.head_commit.sha == event.after


def test_pushes_to_master_and_main_are_branch_pushes() -> None:
    branches = [_parse(load_case(f"gitlab/push/{n}")) for n in (1, 2, 5)]
    assert [e.branch for e in branches if isinstance(e, PushEvent)] == ["master", "master", "main"]


def test_a_gitlab_push_gives_no_push_time() -> None:
    event = _parse(load_case("gitlab/push/1"))
    assert isinstance(event, PushEvent)
    assert event.pushed_at is None


def test_the_pusher_is_the_username() -> None:
    event = _parse(load_case("gitlab/push/1"))
    assert isinstance(event, PushEvent)
    assert event.pusher == "jsmith"


def test_the_pusher_falls_back_to_the_name_when_the_username_is_missing() -> None:
    # GitLab's own docs example of a tag event has no user_username.
    event = _parse(load_case("gitlab/tag_push/1"))
    assert isinstance(event, PushEvent)
    assert event.pusher == "John Smith"


def test_the_compare_url_is_built_from_the_project_url() -> None:
    event = _parse(load_case("gitlab/push/1"))
    assert isinstance(event, PushEvent)
    assert event.compare_url == (
        "http://example.com/mike/diaspora/-/compare/"
        "95790bf891e76fee5e1747ab589903a6a1f80f22...da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    )


def test_a_new_branch_has_no_before_and_no_compare_url() -> None:
    event = _parse(load_case("gitlab/push/3"))
    assert isinstance(event, PushEvent)
    assert (event.before, event.compare_url, event.created) == ("", "", True)


def test_head_commit_is_the_listed_commit_whose_id_is_after() -> None:
    # The docs example lists two commits, oldest first; after is the second.
    event = _parse(load_case("gitlab/push/1"))
    assert isinstance(event, PushEvent)
    assert event.head_commit is not None
    assert event.head_commit.sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert event.head_commit.author == "GitLab dev user"
    assert event.head_commit.timestamp == "2012-01-03T23:36:29+02:00"


def test_head_commit_falls_back_to_the_newest_listed_commit() -> None:
    case = load_case("gitlab/push/1")

    def mutate(payload: dict[str, Any]) -> None:
        payload["commits"][0]["id"] = "b" * 40
        payload["commits"][-1]["id"] = SHA_A  # neither is "after" any more

    event = _parse(case, case.with_payload(mutate))
    assert isinstance(event, PushEvent)
    assert event.head_commit is not None
    assert event.head_commit.sha == SHA_A


def test_an_annotated_tag_deploys_checkout_sha_not_the_tag_object() -> None:
    case = load_case("gitlab/tag_push/4")
    event = _parse(case)
    assert isinstance(event, PushEvent)
    assert event.tag == "v22"
    assert event.after == case.facts["checkout_sha"]
    assert event.tag_object_sha == case.facts["after"]
    assert event.head_commit is not None
    assert event.head_commit.sha == event.after


@pytest.mark.parametrize("change", [{"after": ZERO}, {"checkout_sha": None}])
def test_a_zero_after_or_a_null_checkout_sha_is_a_delete(change: dict[str, Any]) -> None:
    case = load_case("gitlab/push/2")
    event = _parse(case, case.with_payload(lambda payload: payload.update(change)))
    assert isinstance(event, Ignored)
    assert event.reason == "branch deleted"


@pytest.mark.parametrize(
    ("case_id", "header"),
    [
        ("gitlab/push/2", "Tag Push Hook"),
        ("gitlab/tag_push/2", "Push Hook"),
        ("gitlab/push/2", "Pipeline Hook"),
    ],
)
def test_an_event_header_that_disagrees_with_object_kind_is_400(case_id: str, header: str) -> None:
    with pytest.raises(PayloadError, match="does not match object_kind"):
        _parse(load_case(case_id), X_Gitlab_Event=header)


@pytest.mark.parametrize("header", ["System Hook", "Merge Request Hook", "Note Hook", "Job Hook"])
def test_other_events_are_ignored(header: str) -> None:
    event = _parse(load_case("gitlab/push/2"), X_Gitlab_Event=header)
    assert isinstance(event, Ignored)
    assert event.reason == f"event '{header}' is not handled"


def test_the_delivery_id_falls_back_to_the_event_uuid() -> None:
    case = load_case("gitlab/push/2")
    event = _parse(case, Idempotency_Key=None)
    assert event.delivery_id == case.headers["X-Gitlab-Event-UUID"]


@pytest.mark.parametrize(
    "changes",
    [
        {"object_kind": None},
        {"project": None},
        {"project": {"path_with_namespace": None}},
        {"checkout_sha": "abc"},
        {"after": "abc"},
        {"ref": "refs/heads/\nmain"},
        {"commits": {}},
        {"commits": [None]},
        {"commits": [{"id": 5}]},
        {"user_username": ["x"]},
    ],
    ids=lambda changes: ",".join(f"{k}={v!r}"[:40] for k, v in changes.items()),
)
def test_a_push_field_of_the_wrong_type_is_400(changes: dict[str, Any]) -> None:
    case = load_case("gitlab/push/2")
    with pytest.raises(PayloadError):
        _parse(case, case.with_payload(lambda payload: payload.update(changes)))


# --- Pipeline Hook -------------------------------------------------------------------------
# Shaped after the "Pipeline events" example in GitLab's webhook_events docs (trimmed); the
# corpus holds no pipeline delivery.


def _pipeline(**attributes: Any) -> dict[str, Any]:
    object_attributes = {
        "id": 31,
        "iid": 3,
        "ref": "main",
        "tag": False,
        "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
        "before_sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
        "source": "push",
        "status": "success",
        "stages": ["build", "test", "deploy"],
        "created_at": "2016-08-12 15:23:28 UTC",
        "finished_at": "2016-08-12 15:26:29 UTC",
        "duration": 63,
    }
    object_attributes.update(attributes)
    return {
        "object_kind": "pipeline",
        "object_attributes": object_attributes,
        "user": {"id": 1, "name": "Administrator", "username": "root"},
        "project": {
            "id": 1,
            "name": "Gitlab Test",
            "web_url": "http://192.168.64.1:3005/gitlab-org/gitlab-test",
            "path_with_namespace": "gitlab-org/gitlab-test",
            "default_branch": "main",
        },
        "commit": {
            "id": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
            "message": "test\n",
            "title": "test",
            "timestamp": "2016-08-12T17:23:21+02:00",
            "url": "http://example.com/gitlab-org/gitlab-test/commit/bcbb5ec3",
            "author": {"name": "User", "email": "user@gitlab.com"},
        },
        "builds": [],
    }


PIPELINE_HEADERS = {
    "Content-Type": "application/json",
    "X-Gitlab-Event": "Pipeline Hook",
    "Idempotency-Key": "7d0a1b5e-0000-5000-8000-000000000001",
}


def _parse_pipeline(payload: dict[str, Any]) -> WebhookEvent:
    return parse("gitlab", json.dumps(payload).encode(), PIPELINE_HEADERS)


@pytest.mark.parametrize(
    ("status", "succeeded"), [("success", True), ("failed", False), ("canceled", False)]
)
def test_a_finished_pipeline_is_a_ci_event(status: str, succeeded: bool) -> None:
    event = _parse_pipeline(_pipeline(status=status))
    assert isinstance(event, CIEvent)
    assert (event.succeeded, event.conclusion) == (succeeded, status)
    assert (event.repository, event.branch) == ("gitlab-org/gitlab-test", "main")
    assert event.head_repository == event.repository  # a branch pipeline runs where it lives
    assert event.sha == "bcbb5ec396a2c0f828686f14fac9b80b780504f2"
    assert event.pusher == "root"
    assert event.head_commit is not None
    assert event.head_commit.author == "User"


@pytest.mark.parametrize("status", ["created", "pending", "running", "manual", "skipped"])
def test_a_pipeline_that_has_not_finished_is_ignored(status: str) -> None:
    event = _parse_pipeline(_pipeline(status=status))
    assert isinstance(event, Ignored)
    assert event.reason == f"pipeline status '{status}' is not final"


def test_a_tag_pipeline_is_ignored() -> None:
    event = _parse_pipeline(_pipeline(tag=True, ref="v1.0.0"))
    assert isinstance(event, Ignored)
    assert event.reason == "pipeline ran for a tag, not a branch"


def test_a_merge_request_pipeline_is_ignored() -> None:
    payload = _pipeline(source="merge_request_event", ref="refs/merge-requests/1/head")
    event = _parse_pipeline(payload)
    assert isinstance(event, Ignored)
    assert event.reason == "pipeline ran for a merge request, not a branch"


@pytest.mark.parametrize(
    "attributes",
    [{"sha": "bcbb5ec3"}, {"status": None}, {"ref": 7}, {"tag": "false"}],
    ids=["short-sha", "no-status", "ref-number", "tag-string"],
)
def test_a_pipeline_field_of_the_wrong_type_is_400(attributes: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        _parse_pipeline(_pipeline(**attributes))
