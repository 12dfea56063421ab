"""GitHub deliveries: every corpus case, form encoding, CI events and the payload rules."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.webhooks import (
    CIEvent,
    Ignored,
    PayloadError,
    PushEvent,
    SignatureError,
    WebhookEvent,
    parse,
    sign_sha256,
    verify_github,
)

from .corpus import Case, case_ids, load_case, secrets

ZERO = "0" * 40
SHA_A = "a" * 40
SHA_B = "b" * 40

# What each corpus case must become: the kind, and for Ignored the exact reason.
EXPECTED: dict[str, tuple[type[Any], str]] = {
    **{f"github/push/{n}": (PushEvent, "") for n in (1, 2, 3, 5, 7, 8, 9, 10)},
    "github/push/4": (Ignored, "branch deleted"),
    "github/push/6": (Ignored, "tag deleted"),
    "github/ping/1": (Ignored, "ping: hook is set up"),
    "github/ping/2": (Ignored, "ping: hook is set up"),
    "github/workflow_run/1": (CIEvent, ""),
    "github/workflow_run/2": (Ignored, "workflow_run action 'requested' is not handled"),
    "github/workflow_run/3": (CIEvent, ""),
    "github/check_suite/1": (CIEvent, ""),
    "github/check_suite/2": (CIEvent, ""),
    "github/check_suite/3": (Ignored, "check_suite action 'requested' is not handled"),
    **{
        f"github/{event}/{n}": (Ignored, f"event '{event}' is not handled")
        for event, count in [
            ("create", 2),
            ("delete", 2),
            ("deployment", 3),
            ("deployment_status", 2),
            ("pull_request", 4),
            ("release", 4),
        ]
        for n in range(1, count + 1)
    },
}


def _parse(case: Case, body: bytes | None = None, **headers: str | None) -> WebhookEvent:
    return parse("github", case.body if body is None else body, case.with_headers(**headers))


def test_every_corpus_case_has_an_expectation() -> None:
    assert set(case_ids("github")) == set(EXPECTED)


@pytest.mark.parametrize("case_id", case_ids("github"))
def test_every_corpus_case_parses_to_the_expected_kind(case_id: str) -> None:
    case = load_case(case_id)
    kind, reason = EXPECTED[case_id]
    event = _parse(case)
    assert type(event) is kind
    assert event.provider == "github"
    assert event.delivery_id == case.headers["X-GitHub-Delivery"]
    if isinstance(event, Ignored):
        assert event.reason == reason
        assert event.event == case.headers["X-GitHub-Event"]


@pytest.mark.parametrize("case_id", [c for c in case_ids("github") if EXPECTED[c][0] is PushEvent])
def test_push_cases_carry_the_facts_of_their_meta(case_id: str) -> None:
    case = load_case(case_id)
    facts = case.facts
    event = _parse(case)
    assert isinstance(event, PushEvent)
    assert event.repository == facts["repository"]
    assert event.ref == facts["ref"]
    assert event.after == facts["after"]
    assert event.before == ("" if facts["before"] == ZERO else facts["before"])
    assert event.forced is facts["forced"]
    assert event.created is facts["created"]
    assert event.pusher
    assert event.head_commit is not None
    assert event.head_commit.sha == event.after
    assert event.pushed_at == case.payload()["repository"]["pushed_at"]


@pytest.mark.parametrize(("value", "expected"), [(1700000000, 1700000000), (0, 0), (None, None)])
def test_a_push_carries_the_repositorys_push_time(value: Any, expected: int | None) -> None:
    event = _parse(PUSH, PUSH.with_payload(lambda p: p["repository"].update(pushed_at=value)))
    assert isinstance(event, PushEvent)
    assert event.pushed_at == expected


def test_a_push_time_in_iso_form_or_absent_is_no_push_time() -> None:
    iso = PUSH.with_payload(lambda p: p["repository"].update(pushed_at="2024-05-01T12:00:00Z"))
    absent = PUSH.with_payload(lambda p: p["repository"].pop("pushed_at"))
    for body in (iso, absent):
        event = _parse(PUSH, body)
        assert isinstance(event, PushEvent) and event.pushed_at is None


@pytest.mark.parametrize("value", [-1, 1.5, True, [], {}])
def test_a_push_time_that_is_not_whole_seconds_is_400(value: Any) -> None:
    body = PUSH.with_payload(lambda p: p["repository"].update(pushed_at=value))
    with pytest.raises(PayloadError, match=r"repository\.pushed_at"):
        _parse(PUSH, body)


def test_pushes_to_main_and_master_are_branch_pushes() -> None:
    branches = {
        case_id: event.branch
        for case_id in case_ids("github")
        if isinstance(event := _parse(load_case(case_id)), PushEvent)
    }
    assert branches["github/push/1"] == "master"
    assert branches["github/push/2"] == "main"
    assert branches["github/push/7"] == "master"


def test_a_force_push_is_an_ordinary_push_marked_forced() -> None:
    event = _parse(load_case("github/push/3"))
    assert isinstance(event, PushEvent)
    assert (event.branch, event.forced) == ("main", True)


def test_a_tag_push_is_a_push_with_a_tag_and_no_branch() -> None:
    event = _parse(load_case("github/push/9"))
    assert isinstance(event, PushEvent)
    assert (event.tag, event.branch, event.before) == ("v0.0.1", None, "")


def test_head_commit_keeps_the_providers_fields() -> None:
    event = _parse(load_case("github/push/1"))
    assert isinstance(event, PushEvent)
    assert event.head_commit is not None
    assert event.head_commit.message == "Update README"
    assert event.head_commit.author == "Codertocat"
    assert event.head_commit.timestamp == "2018-06-15T13:01:51-07:00"
    assert event.compare_url.startswith("https://github.com/Codertocat/Hello-World/compare/")


# --- form-encoded deliveries ---------------------------------------------------------------


def test_a_form_encoded_delivery_parses_like_the_json_one() -> None:
    case = load_case("github/push/2")
    secret = secrets()["github_webhook_secret"]
    form_body = urlencode({"payload": case.body.decode("utf-8")}).encode("ascii")
    headers = case.with_headers(
        Content_Type="application/x-www-form-urlencoded",
        X_Hub_Signature_256=sign_sha256(secret, form_body),
    )
    verify_github(form_body, headers, [secret])
    assert parse("github", form_body, headers) == _parse(case)


def test_the_json_signature_does_not_cover_the_form_body() -> None:
    case = load_case("github/push/2")
    form_body = urlencode({"payload": case.body.decode("utf-8")}).encode("ascii")
    with pytest.raises(SignatureError, match="does not match"):
        verify_github(form_body, case.headers, [secrets()["github_webhook_secret"]])


# --- event header and body must agree ------------------------------------------------------


@pytest.mark.parametrize(
    ("case_id", "header"),
    [
        ("github/ping/1", "push"),
        ("github/push/2", "ping"),
        ("github/push/2", "workflow_run"),
        ("github/push/2", "check_suite"),
        ("github/workflow_run/1", "check_suite"),
        ("github/check_suite/1", "workflow_run"),
    ],
)
def test_an_event_header_that_does_not_match_the_body_is_400(case_id: str, header: str) -> None:
    with pytest.raises(PayloadError):
        _parse(load_case(case_id), X_GitHub_Event=header)


def test_an_unhandled_event_is_ignored_whatever_its_body() -> None:
    event = _parse(load_case("github/push/2"), X_GitHub_Event="star")
    assert isinstance(event, Ignored)
    assert event.reason == "event 'star' is not handled"


def test_a_long_event_name_is_cut_short_in_the_reason() -> None:
    event = _parse(load_case("github/ping/1"), X_GitHub_Event="e" * 200)
    assert isinstance(event, Ignored)
    assert len(event.reason) < 100


# --- push rules ----------------------------------------------------------------------------

PUSH = load_case("github/push/2")
TAG = load_case("github/push/5")


def _set(**changes: Any) -> Any:
    def mutate(payload: dict[str, Any]) -> None:
        payload.update(changes)

    return mutate


def test_deleted_true_is_a_delete_even_with_a_non_zero_after() -> None:
    event = _parse(PUSH, PUSH.with_payload(_set(deleted=True)))
    assert isinstance(event, Ignored)
    assert event.reason == "branch deleted"


def test_a_zero_after_is_a_delete_even_without_deleted() -> None:
    event = _parse(PUSH, PUSH.with_payload(_set(after=ZERO, deleted=False)))
    assert isinstance(event, Ignored)
    assert event.reason == "branch deleted"


def test_an_annotated_tag_deploys_the_tagged_commit_not_the_tag_object() -> None:
    event = _parse(TAG, TAG.with_payload(_set(after=SHA_A)))
    assert isinstance(event, PushEvent)
    assert event.after == TAG.facts["after"]
    assert event.tag_object_sha == SHA_A


def test_upper_case_shas_are_lower_cased() -> None:
    upper = PUSH.facts["after"].upper()

    def mutate(payload: dict[str, Any]) -> None:
        payload["after"] = upper
        payload["head_commit"]["id"] = upper

    event = _parse(PUSH, PUSH.with_payload(mutate))
    assert isinstance(event, PushEvent)
    assert event.after == PUSH.facts["after"]


@pytest.mark.parametrize(
    "after",
    ["abc123", "g" * 40, "a" * 39, "a" * 41, "a" * 40 + "\n", " " + "a" * 39, "a" * 64],
    ids=["short", "not-hex", "39", "41", "newline", "space", "sha256-length"],
)
def test_an_after_that_is_not_a_40_hex_sha_is_400(after: str) -> None:
    with pytest.raises(PayloadError, match="'after' is not a 40-character hex SHA"):
        _parse(PUSH, PUSH.with_payload(_set(after=after)))


def test_a_bad_head_commit_sha_is_400() -> None:
    def mutate(payload: dict[str, Any]) -> None:
        payload["head_commit"]["id"] = "123"

    with pytest.raises(PayloadError, match=r"head_commit\.id"):
        _parse(PUSH, PUSH.with_payload(mutate))


@pytest.mark.parametrize(
    "ref",
    [
        "refs/heads/main\n",
        "refs/heads/ma\x00in",
        "refs/heads/\x1b[31m",
        "refs/heads/\x85",
        "refs/heads/" + "x" * 245,
        "",
    ],
    ids=["newline", "nul", "escape", "c1-control", "256-chars", "empty"],
)
def test_a_ref_with_control_characters_or_over_255_chars_is_400(ref: str) -> None:
    with pytest.raises(PayloadError, match="'ref'"):
        _parse(PUSH, PUSH.with_payload(_set(ref=ref)))


def test_a_ref_of_255_chars_with_shell_characters_is_kept_verbatim() -> None:
    prefix = "refs/heads/$(rm -rf /);`id`|&"
    ref = prefix + "x" * (255 - len(prefix))
    event = _parse(PUSH, PUSH.with_payload(_set(ref=ref)))
    assert isinstance(event, PushEvent)
    assert event.ref == ref


@pytest.mark.parametrize(
    "changes",
    [
        {"forced": "yes"},
        {"deleted": 1},
        {"ref": ["refs/heads/main"]},
        {"after": None},
        {"repository": "woodpecker-ci/woodpecker"},
        {"repository": {"full_name": 7}},
        {"repository": {"full_name": ""}},
        {"head_commit": []},
        {"head_commit": {"id": None}},
        {"head_commit": {"id": SHA_A, "author": "me"}},
        {"pusher": "6543"},
        {"compare": 1},
        {"before": "not-a-sha"},
    ],
    ids=lambda changes: ",".join(f"{k}={v!r}"[:40] for k, v in changes.items()),
)
def test_a_push_field_of_the_wrong_type_is_400(changes: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        _parse(PUSH, PUSH.with_payload(_set(**changes)))


def test_the_pusher_falls_back_to_the_sender_login() -> None:
    event = _parse(PUSH, PUSH.with_payload(_set(pusher=None)))
    assert isinstance(event, PushEvent)
    assert event.pusher == PUSH.payload()["sender"]["login"]


def test_a_push_without_head_commit_is_still_a_push() -> None:
    event = _parse(TAG, TAG.with_payload(_set(head_commit=None)))
    assert isinstance(event, PushEvent)
    assert (event.head_commit, event.after) == (None, TAG.facts["after"])


def test_a_ping_without_zen_is_400() -> None:
    ping = load_case("github/ping/1")
    with pytest.raises(PayloadError, match="zen"):
        _parse(ping, ping.with_payload(lambda payload: payload.pop("zen")))


# --- CI events -----------------------------------------------------------------------------

RUN = load_case("github/workflow_run/1")
SUITE = load_case("github/check_suite/1")


def test_a_successful_workflow_run_is_a_successful_ci_event() -> None:
    event = _parse(RUN)
    assert isinstance(event, CIEvent)
    assert event.repository == "octo-org/octo-repo"
    assert (event.branch, event.sha) == ("master", "3484a3fb816e0859fd6e1cea078d76385ff50625")
    assert (event.succeeded, event.conclusion, event.pusher) == (True, "success", "Codertocat")
    assert event.head_commit is not None
    assert event.head_commit.author == "Matthias Fax"


@pytest.mark.parametrize(
    "case_id", ["github/workflow_run/1", "github/check_suite/1", "github/check_suite/2"]
)
def test_ci_cases_carry_the_facts_of_their_meta(case_id: str) -> None:
    case = load_case(case_id)
    facts = case.facts[case_id.split("/")[1]]
    event = _parse(case)
    assert isinstance(event, CIEvent)
    assert (event.branch, event.sha) == (facts["head_branch"], facts["head_sha"])
    assert event.succeeded is (facts["conclusion"] == "success")
    assert event.repository == case.facts["repository"]


def test_a_completed_run_without_a_conclusion_did_not_succeed() -> None:
    event = _parse(load_case("github/workflow_run/3"))
    assert isinstance(event, CIEvent)
    assert (event.succeeded, event.conclusion) == (False, "")


@pytest.mark.parametrize("conclusion", ["failure", "cancelled", "timed_out", "neutral", "skipped"])
def test_a_run_that_did_not_succeed_is_a_failed_ci_event(conclusion: str) -> None:
    def mutate(payload: dict[str, Any]) -> None:
        payload["workflow_run"]["conclusion"] = conclusion

    event = _parse(RUN, RUN.with_payload(mutate))
    assert isinstance(event, CIEvent)
    assert (event.succeeded, event.conclusion) == (False, conclusion)


def test_a_run_names_the_repository_its_branch_comes_from() -> None:
    event = _parse(RUN)
    assert isinstance(event, CIEvent)
    assert event.head_repository == event.repository == "octo-org/octo-repo"


def test_a_run_for_a_forks_pull_request_says_so_and_the_service_decides() -> None:
    def mutate(payload: dict[str, Any]) -> None:
        payload["workflow_run"]["head_repository"]["full_name"] = "mallory/octo-repo"

    event = _parse(RUN, RUN.with_payload(mutate))
    assert isinstance(event, CIEvent)
    assert (event.repository, event.head_repository) == ("octo-org/octo-repo", "mallory/octo-repo")


def test_a_run_of_a_deleted_fork_names_no_head_repository() -> None:
    event = _parse(RUN, RUN.with_payload(lambda p: p["workflow_run"].update(head_repository=None)))
    assert isinstance(event, CIEvent)
    assert event.head_repository == ""


@pytest.mark.parametrize("case_id", ["github/check_suite/1", "github/check_suite/2"])
def test_a_check_suite_of_the_repositorys_own_branch_names_the_repository(case_id: str) -> None:
    event = _parse(load_case(case_id))
    assert isinstance(event, CIEvent)
    assert event.head_repository == event.repository == "Codertocat/Hello-World"


def test_a_check_suite_whose_pull_request_comes_from_a_fork_names_the_fork() -> None:
    suite = load_case("github/check_suite/2")

    def mutate(payload: dict[str, Any]) -> None:
        head = payload["check_suite"]["pull_requests"][0]["head"]
        head["repo"]["url"] = "https://api.github.com/repos/mallory/Hello-World"

    event = _parse(suite, suite.with_payload(mutate))
    assert isinstance(event, CIEvent)
    assert event.head_repository == "mallory/Hello-World"


def test_a_check_suite_pull_request_of_the_wrong_shape_is_400() -> None:
    suite = load_case("github/check_suite/2")
    body = suite.with_payload(lambda p: p["check_suite"]["pull_requests"][0].update(head=[]))
    with pytest.raises(PayloadError, match=r"pull_requests\[0\]\.head"):
        _parse(suite, body)


def test_a_check_suite_without_a_head_branch_is_ignored() -> None:
    def mutate(payload: dict[str, Any]) -> None:
        payload["check_suite"]["head_branch"] = None

    event = _parse(SUITE, SUITE.with_payload(mutate))
    assert isinstance(event, Ignored)
    assert event.reason == "check_suite has no head branch"


@pytest.mark.parametrize("field", ["head_sha", "head_branch", "conclusion"])
def test_a_ci_field_of_the_wrong_type_is_400(field: str) -> None:
    def mutate(payload: dict[str, Any]) -> None:
        payload["check_suite"][field] = 42

    with pytest.raises(PayloadError, match=f"check_suite.{field}"):
        _parse(SUITE, SUITE.with_payload(mutate))
