"""Bitbucket Cloud deliveries: every corpus case and the push.changes[] rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.webhooks import Ignored, PayloadError, PushEvent, WebhookEvent, parse

from .corpus import Case, case_ids, load_case

EXPECTED: dict[str, tuple[type[Any], str]] = {
    "bitbucket/repo_push/1": (PushEvent, ""),
    "bitbucket/repo_push/2": (PushEvent, ""),
    "bitbucket/repo_push/3": (Ignored, "branch deleted"),
    "bitbucket/repo_push/4": (PushEvent, ""),
    "bitbucket/repo_push/5": (Ignored, "tag deleted"),
    "bitbucket/repo_push/6": (PushEvent, ""),
}
PUSH = load_case("bitbucket/repo_push/1")


def _parse(case: Case, body: bytes | None = None, **headers: str | None) -> WebhookEvent:
    return parse("bitbucket", case.body if body is None else body, case.with_headers(**headers))


def _change(payload: dict[str, Any]) -> dict[str, Any]:
    change: dict[str, Any] = payload["push"]["changes"][0]
    return change


def test_every_corpus_case_has_an_expectation() -> None:
    assert set(case_ids("bitbucket")) == set(EXPECTED)


@pytest.mark.parametrize("case_id", case_ids("bitbucket"))
def test_every_corpus_case_parses_to_the_expected_kind(case_id: str) -> None:
    case = load_case(case_id)
    kind, reason = EXPECTED[case_id]
    event = _parse(case)
    assert type(event) is kind
    assert event.provider == "bitbucket"
    assert event.delivery_id == case.headers["X-Request-UUID"]
    if isinstance(event, Ignored):
        assert event.reason == reason
        assert event.event == "repo:push"


@pytest.mark.parametrize(
    "case_id", [c for c in case_ids("bitbucket") if EXPECTED[c][0] is PushEvent]
)
def test_push_cases_carry_the_facts_of_their_meta(case_id: str) -> None:
    case = load_case(case_id)
    change = case.facts["changes"][0]
    event = _parse(case)
    assert isinstance(event, PushEvent)
    assert event.repository == case.facts["repository"]
    prefix = "refs/heads/" if change["new"]["type"] == "branch" else "refs/tags/"
    assert event.ref == prefix + change["new"]["name"]
    assert event.after == change["new"]["hash"]
    assert event.before == (change["old"]["hash"] if change["old"] else "")
    assert (event.forced, event.created) == (change["forced"], change["created"])
    assert event.head_commit is not None
    assert event.head_commit.sha == event.after


def test_pushes_to_master_and_main_are_branch_pushes() -> None:
    events = [_parse(load_case(f"bitbucket/repo_push/{n}")) for n in (1, 6)]
    assert [e.branch for e in events if isinstance(e, PushEvent)] == ["master", "main"]


def test_a_tag_push_keeps_slashes_in_the_tag_name() -> None:
    event = _parse(load_case("bitbucket/repo_push/4"))
    assert isinstance(event, PushEvent)
    assert (event.tag, event.ref) == ("feature/x", "refs/tags/feature/x")


def test_the_compare_url_is_the_changes_html_link() -> None:
    event = _parse(PUSH)
    assert isinstance(event, PushEvent)
    assert event.compare_url == (
        "https://bitbucket.org/brydzewski/foo/branches/compare/"
        "141977fedf5cf35aa290ac87d4b5177ac4cd9de1..40e7580cf11311d84a6e5e97e2cbba6df1675750"
    )


def test_head_commit_comes_from_the_new_target() -> None:
    event = _parse(PUSH)
    assert isinstance(event, PushEvent)
    assert event.head_commit is not None
    assert event.head_commit.message == "Update README\n"
    assert event.head_commit.author == "Brad Rydzewski"
    assert event.head_commit.timestamp == "2018-07-02T20:26:56+00:00"


def test_the_commit_author_falls_back_to_the_raw_name_without_email() -> None:
    def mutate(payload: dict[str, Any]) -> None:
        _change(payload)["new"]["target"]["author"] = {"raw": "Jane Doe <jane@example.com>"}

    event = _parse(PUSH, PUSH.with_payload(mutate))
    assert isinstance(event, PushEvent) and event.head_commit is not None
    assert event.head_commit.author == "Jane Doe"


@pytest.mark.parametrize(
    ("actor", "pusher"),
    [
        ({"nickname": "nick", "username": "user", "display_name": "Display"}, "nick"),
        ({"nickname": None, "username": "user", "display_name": "Display"}, "user"),
        ({"display_name": "Display"}, "Display"),
    ],
)
def test_the_pusher_is_the_nickname_else_username_else_display_name(
    actor: dict[str, Any], pusher: str
) -> None:
    event = _parse(PUSH, PUSH.with_payload(lambda payload: payload.update(actor=actor)))
    assert isinstance(event, PushEvent)
    assert event.pusher == pusher


def test_the_first_change_with_a_new_branch_or_tag_wins() -> None:
    deleted = load_case("bitbucket/repo_push/3").payload()["push"]["changes"][0]

    def mutate(payload: dict[str, Any]) -> None:
        payload["push"]["changes"].insert(0, deleted)
        payload["push"]["changes"].append(copy.deepcopy(deleted))

    event = _parse(PUSH, PUSH.with_payload(mutate))
    assert isinstance(event, PushEvent)
    assert event.branch == "master"


def test_a_push_without_changes_is_ignored() -> None:
    def mutate(payload: dict[str, Any]) -> None:
        payload["push"]["changes"] = []

    event = _parse(PUSH, PUSH.with_payload(mutate))
    assert isinstance(event, Ignored)
    assert event.reason == "push changed no branch or tag"


def test_a_change_of_another_ref_type_is_ignored() -> None:
    def mutate(payload: dict[str, Any]) -> None:
        _change(payload)["new"]["type"] = "named_branch"

    event = _parse(PUSH, PUSH.with_payload(mutate))
    assert isinstance(event, Ignored)


@pytest.mark.parametrize(
    "event_key", ["pullrequest:created", "repo:commit_status_updated", "issue:created"]
)
def test_other_event_keys_are_ignored(event_key: str) -> None:
    event = _parse(PUSH, X_Event_Key=event_key)
    assert isinstance(event, Ignored)
    assert event.reason == f"event '{event_key}' is not handled"


@pytest.mark.parametrize("hash_value", ["141977f", "141977fedf5c", "z" * 40, None, 40])
def test_a_new_target_hash_that_is_not_a_full_sha_is_400(hash_value: object) -> None:
    def mutate(payload: dict[str, Any]) -> None:
        _change(payload)["new"]["target"]["hash"] = hash_value

    with pytest.raises(PayloadError, match=r"push\.changes\[0\]\.new\.target\.hash"):
        _parse(PUSH, PUSH.with_payload(mutate))


def test_a_short_old_hash_is_400_too() -> None:
    def mutate(payload: dict[str, Any]) -> None:
        _change(payload)["old"]["target"]["hash"] = "40e7580"

    with pytest.raises(PayloadError, match=r"old\.target\.hash"):
        _parse(PUSH, PUSH.with_payload(mutate))


@pytest.mark.parametrize(
    "mutation",
    [
        lambda p: p.update(push=None),
        lambda p: p.update(push={"changes": {}}),
        lambda p: p.update(push={"changes": [None]}),
        lambda p: p.update(repository={"full_name": None}),
        lambda p: _change(p).update(new="master"),
        lambda p: _change(p).update(forced="no"),
        lambda p: _change(p)["new"].update(name=None),
        lambda p: _change(p)["new"].update(name="bad\x07name"),
        lambda p: _change(p)["new"].update(target=None),
        lambda p: _change(p)["links"].update(html="https://x"),
        lambda p: p["actor"].update(username=1),
    ],
    ids=[
        "push-null",
        "changes-object",
        "change-null",
        "repository-null",
        "new-string",
        "forced-string",
        "name-null",
        "name-control",
        "target-null",
        "html-string",
        "actor-number",
    ],
)
def test_a_field_of_the_wrong_type_is_400(mutation: Any) -> None:
    with pytest.raises(PayloadError):
        _parse(PUSH, PUSH.with_payload(mutation))
