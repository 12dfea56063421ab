"""Signature and token checks against published vectors and every corpus delivery."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.webhooks.errors import SignatureError
from chalicelib.webhooks.signatures import (
    sign_sha1,
    sign_sha256,
    verify_bitbucket,
    verify_github,
    verify_gitlab,
)

from .corpus import case_ids, load_case, secrets, vector_payload, vectors

GITHUB_SECRET = secrets()["github_webhook_secret"]
GITLAB_TOKEN = secrets()["gitlab_secret_token"]
BITBUCKET_SECRET = secrets()["bitbucket_webhook_secret"]
OTHER_SECRET = "not-the-secret-0000"


def _vector(vector_id: str) -> dict[str, Any]:
    return next(v for v in vectors() if v["id"] == vector_id)


# --- published vectors ---------------------------------------------------------------------


def test_github_documented_vector_is_accepted() -> None:
    vector = _vector("github-docs")
    body = vector_payload(vector)
    assert body == b"Hello, World!"
    assert sign_sha256(vector["secret"], body) == vector["expected"]
    verify_github(body, {"X-Hub-Signature-256": vector["expected"]}, [vector["secret"]])


def test_github_documented_vector_fails_after_one_byte_of_the_body_changes() -> None:
    vector = _vector("github-docs")
    with pytest.raises(SignatureError):
        verify_github(
            b"Hello, World?", {"X-Hub-Signature-256": vector["expected"]}, [vector["secret"]]
        )


def test_github_documented_vector_fails_with_a_changed_secret() -> None:
    vector = _vector("github-docs")
    body = vector_payload(vector)
    with pytest.raises(SignatureError):
        verify_github(body, {"X-Hub-Signature-256": vector["expected"]}, [vector["secret"] + "!"])


def test_drone_sha256_vector_over_the_push_fixture_is_accepted() -> None:
    vector = _vector("drone-go-scm-push-sha256")
    body = vector_payload(vector)
    assert sign_sha256(vector["secret"], body) == vector["expected"]
    verify_github(body, {"X-Hub-Signature-256": vector["expected"]}, [vector["secret"]])


def test_drone_sha1_vector_is_accepted_only_when_sha1_is_allowed() -> None:
    vector = _vector("drone-go-scm-push-sha1")
    body = vector_payload(vector)
    assert sign_sha1(vector["secret"], body) == vector["expected"]
    headers = {"X-Hub-Signature": vector["expected"]}
    verify_github(body, headers, [vector["secret"]], allow_sha1=True)
    with pytest.raises(SignatureError, match="missing X-Hub-Signature-256"):
        verify_github(body, headers, [vector["secret"]])


def test_atlassian_vector_is_accepted_as_a_bitbucket_signature() -> None:
    vector = _vector("atlassian-hello-world")
    body = vector_payload(vector)
    assert body == b"Hello World!"
    verify_bitbucket(body, {"X-Hub-Signature": vector["expected"]}, [vector["secret"]])
    with pytest.raises(SignatureError):
        verify_bitbucket(
            b"Hello World?", {"X-Hub-Signature": vector["expected"]}, [vector["secret"]]
        )


# --- every corpus delivery -----------------------------------------------------------------


@pytest.mark.parametrize("case_id", case_ids("github"))
def test_every_github_case_verifies_with_the_corpus_secret(case_id: str) -> None:
    case = load_case(case_id)
    verify_github(case.body, case.headers, [GITHUB_SECRET])
    sha1_only = case.with_headers(X_Hub_Signature_256=None)
    verify_github(case.body, sha1_only, [GITHUB_SECRET], allow_sha1=True)
    with pytest.raises(SignatureError):
        verify_github(case.body, case.headers, [OTHER_SECRET])


@pytest.mark.parametrize("case_id", case_ids("gitlab"))
def test_every_gitlab_case_verifies_with_the_corpus_token(case_id: str) -> None:
    case = load_case(case_id)
    verify_gitlab(case.headers, [GITLAB_TOKEN])
    with pytest.raises(SignatureError):
        verify_gitlab(case.headers, [OTHER_SECRET])


@pytest.mark.parametrize("case_id", case_ids("bitbucket"))
def test_every_bitbucket_case_verifies_with_the_corpus_secret(case_id: str) -> None:
    case = load_case(case_id)
    verify_bitbucket(case.body, case.headers, [BITBUCKET_SECRET])
    with pytest.raises(SignatureError):
        verify_bitbucket(case.body, case.headers, [OTHER_SECRET])


# --- GitHub rules --------------------------------------------------------------------------

BODY = b'{"zen": "Design for failure."}'


def test_accepts_a_signature_made_with_either_secret_during_rotation() -> None:
    for secret in ("old-secret", "new-secret"):
        headers = {"X-Hub-Signature-256": sign_sha256(secret, BODY)}
        verify_github(BODY, headers, ["old-secret", "new-secret"])


def test_rejects_a_signature_made_with_another_secret() -> None:
    headers = {"X-Hub-Signature-256": sign_sha256(OTHER_SECRET, BODY)}
    with pytest.raises(SignatureError, match="does not match"):
        verify_github(BODY, headers, ["old-secret", "new-secret"])


def test_rejects_every_delivery_when_no_secret_is_configured() -> None:
    headers = {"X-Hub-Signature-256": sign_sha256("", BODY)}
    with pytest.raises(SignatureError, match="no webhook secret"):
        verify_github(BODY, headers, [])


def test_never_accepts_an_hmac_keyed_with_an_empty_secret() -> None:
    headers = {"X-Hub-Signature-256": sign_sha256("", BODY)}
    with pytest.raises(SignatureError, match="no webhook secret"):
        verify_github(BODY, headers, [""])
    with pytest.raises(SignatureError, match="does not match"):
        verify_github(BODY, headers, ["", "real-secret"])


def test_a_bare_string_secret_is_one_secret_not_its_characters() -> None:
    verify_github(BODY, {"X-Hub-Signature-256": sign_sha256("abc", BODY)}, "abc")
    with pytest.raises(SignatureError):
        verify_github(BODY, {"X-Hub-Signature-256": sign_sha256("a", BODY)}, "abc")


def test_rejects_a_delivery_without_a_signature() -> None:
    with pytest.raises(SignatureError, match="missing X-Hub-Signature-256"):
        verify_github(BODY, {"Content-Type": "application/json"}, ["s"])


def test_ignores_sha1_unless_allowed() -> None:
    headers = {"X-Hub-Signature": sign_sha1("s", BODY)}
    with pytest.raises(SignatureError):
        verify_github(BODY, headers, ["s"])
    verify_github(BODY, headers, ["s"], allow_sha1=True)


def test_a_valid_sha1_cannot_rescue_a_wrong_sha256() -> None:
    headers = {
        "X-Hub-Signature-256": sign_sha256(OTHER_SECRET, BODY),
        "X-Hub-Signature": sign_sha1("s", BODY),
    }
    with pytest.raises(SignatureError, match="X-Hub-Signature-256 does not match"):
        verify_github(BODY, headers, ["s"], allow_sha1=True)


def test_rejects_a_sha1_signature_sent_in_the_sha256_header() -> None:
    with pytest.raises(SignatureError, match="must start with 'sha256='"):
        verify_github(BODY, {"X-Hub-Signature-256": sign_sha1("s", BODY)}, ["s"])


def test_signature_header_names_and_hex_case_do_not_matter() -> None:
    signature = sign_sha256("s", BODY)
    verify_github(BODY, {"x-hub-signature-256": signature.upper()}, ["s"])
    verify_github(BODY, {"X-HUB-SIGNATURE-256": f" {signature} "}, ["s"])


@pytest.mark.parametrize(
    "value", ["", "sha256=", "sha256=zz", "sha256=" + "é" * 64, "md5=abc", "sha256=" + "0" * 64]
)
def test_rejects_malformed_signature_headers(value: str) -> None:
    with pytest.raises(SignatureError):
        verify_github(BODY, {"X-Hub-Signature-256": value}, ["s"])


# --- GitLab and Bitbucket rules ------------------------------------------------------------


def test_gitlab_token_may_be_either_secret_during_rotation() -> None:
    verify_gitlab({"X-Gitlab-Token": "old"}, ["old", "new"])
    verify_gitlab({"x-gitlab-token": "new"}, ["old", "new"])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Gitlab-Token": ""},
        {"X-Gitlab-Token": "ol"},
        {"X-Gitlab-Token": "old "},
        {"X-Gitlab-Token": "ölđ"},
    ],
    ids=["missing", "empty", "prefix", "trailing-space", "non-ascii"],
)
def test_gitlab_rejects_a_missing_or_wrong_token(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verify_gitlab(headers, ["old", "new"])


def test_gitlab_rejects_every_token_when_no_secret_is_configured() -> None:
    with pytest.raises(SignatureError, match="no webhook secret"):
        verify_gitlab({"X-Gitlab-Token": ""}, [""])


def test_bitbucket_accepts_either_secret_during_rotation() -> None:
    for secret in ("old", "new"):
        verify_bitbucket(BODY, {"X-Hub-Signature": sign_sha256(secret, BODY)}, ["old", "new"])


def test_bitbucket_rejects_a_missing_signature() -> None:
    # Bitbucket sends no signature when the webhook has no secret: such a hook cannot be trusted.
    with pytest.raises(SignatureError, match="missing X-Hub-Signature"):
        verify_bitbucket(BODY, {"X-Event-Key": "repo:push"}, ["old"])


def test_bitbucket_rejects_a_sha1_signature() -> None:
    with pytest.raises(SignatureError, match="must start with 'sha256='"):
        verify_bitbucket(BODY, {"X-Hub-Signature": sign_sha1("old", BODY)}, ["old"])


def test_bitbucket_does_not_read_githubs_sha256_header_name() -> None:
    with pytest.raises(SignatureError, match="missing X-Hub-Signature"):
        verify_bitbucket(BODY, {"X-Hub-Signature-256": sign_sha256("old", BODY)}, ["old"])
