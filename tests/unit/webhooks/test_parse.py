"""What ``parse`` checks before any provider rule: size, content type, headers, UTF-8, JSON."""

from __future__ import annotations

import pytest

from chalicelib.webhooks import (
    MAX_BODY_BYTES,
    Ignored,
    PayloadError,
    PayloadTooLargeError,
    PushEvent,
    SignatureError,
    UnknownProviderError,
    UnsupportedMediaTypeError,
    WebhookError,
    delivery_id,
    event_name,
    parse,
)

from .corpus import Case, load_case

PING = load_case("github/ping/1")
GITLAB_PUSH = load_case("gitlab/push/2")
BITBUCKET_PUSH = load_case("bitbucket/repo_push/1")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (WebhookError, 400, "bad_request"),
        (SignatureError, 401, "bad_signature"),
        (PayloadError, 400, "bad_payload"),
        (UnsupportedMediaTypeError, 415, "unsupported_media_type"),
        (PayloadTooLargeError, 413, "payload_too_large"),
        (UnknownProviderError, 404, "unknown_provider"),
    ],
)
def test_each_error_carries_its_http_status_and_code(
    error: type[WebhookError], status: int, code: str
) -> None:
    assert issubclass(error, WebhookError)
    assert (error.status, error.code) == (status, code)
    assert str(error("why")) == "why"


# --- size ----------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_before_anything_else_is_read() -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)
    with pytest.raises(PayloadTooLargeError) as raised:
        parse("github", body, {})
    assert raised.value.status == 413


def test_a_body_exactly_at_the_limit_is_read() -> None:
    body = b'{"zen": "z"}'
    body += b" " * (MAX_BODY_BYTES - len(body))
    event = parse("github", body, PING.headers)
    assert isinstance(event, Ignored)


# --- content type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8"],
)
def test_accepts_json_content_types(content_type: str) -> None:
    headers = PING.with_headers(Content_Type=content_type)
    assert isinstance(parse("github", PING.body, headers), Ignored)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "multipart/form-data", "application/json; charset=latin-1"],
)
def test_rejects_other_content_types_with_415(content_type: str) -> None:
    headers = PING.with_headers(Content_Type=content_type)
    with pytest.raises(UnsupportedMediaTypeError) as raised:
        parse("github", PING.body, headers)
    assert raised.value.status == 415


def test_github_without_a_content_type_is_415() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        parse("github", PING.body, PING.with_headers(Content_Type=None))


@pytest.mark.parametrize("case", [GITLAB_PUSH, BITBUCKET_PUSH], ids=lambda c: c.provider)
def test_gitlab_and_bitbucket_without_a_content_type_are_read_as_json(case: Case) -> None:
    event = parse(case.provider, case.body, case.with_headers(Content_Type=None))
    assert isinstance(event, PushEvent)


@pytest.mark.parametrize("case", [GITLAB_PUSH, BITBUCKET_PUSH], ids=lambda c: c.provider)
def test_only_github_may_send_a_form(case: Case) -> None:
    headers = case.with_headers(Content_Type="application/x-www-form-urlencoded")
    with pytest.raises(UnsupportedMediaTypeError):
        parse(case.provider, case.body, headers)


# --- headers -------------------------------------------------------------------------------


def test_header_names_are_case_insensitive() -> None:
    lower = {name.lower(): value for name, value in PING.headers.items()}
    upper = {name.upper(): value for name, value in PING.headers.items()}
    assert parse("github", PING.body, lower) == parse("github", PING.body, upper)


@pytest.mark.parametrize("header", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_a_missing_event_or_delivery_header_is_400(header: str) -> None:
    headers = PING.with_headers(**{header.replace("-", "_"): None})
    with pytest.raises(PayloadError, match=f"missing {header}"):
        parse("github", PING.body, headers)


def test_a_delivery_id_with_control_characters_is_400() -> None:
    with pytest.raises(PayloadError, match="malformed"):
        delivery_id("github", {"X-GitHub-Delivery": "abc\x00def"})


def test_delivery_ids_come_from_each_providers_header() -> None:
    assert delivery_id("github", {"x-github-delivery": "g-1"}) == "g-1"
    assert delivery_id("bitbucket", {"X-Request-UUID": "b-1"}) == "b-1"
    both = {"Idempotency-Key": "retry-stable", "X-Gitlab-Event-UUID": "per-attempt"}
    assert delivery_id("gitlab", both) == "retry-stable"
    assert delivery_id("gitlab", {"X-Gitlab-Event-UUID": "per-attempt"}) == "per-attempt"
    with pytest.raises(PayloadError, match="Idempotency-Key or X-Gitlab-Event-UUID"):
        delivery_id("gitlab", {})


def test_event_names_come_from_each_providers_header() -> None:
    assert event_name("github", {"X-GitHub-Event": "push"}) == "push"
    assert event_name("gitlab", {"X-Gitlab-Event": "Push Hook"}) == "Push Hook"
    assert event_name("bitbucket", {"X-Event-Key": "repo:push"}) == "repo:push"


def test_an_unknown_provider_is_a_webhook_error() -> None:
    with pytest.raises(UnknownProviderError):
        parse("svn", b"{}", {})
    with pytest.raises(UnknownProviderError):
        delivery_id("svn", {})


# --- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"zen": "\xff"}', b'{"zen": "\xc3"}', b'{"zen": "\xed\xa0\x80"}', b"\xef\xbb\xbf{}"],
    ids=["invalid-byte", "truncated-sequence", "encoded-surrogate", "byte-order-mark"],
)
def test_a_body_that_is_not_strict_utf8_json_is_400(body: bytes) -> None:
    with pytest.raises(PayloadError) as raised:
        parse("github", body, PING.headers)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'"push"', b"42", b"null", b"true", b'{"zen": ', b"{'zen': 1}", b"[" * 100_000],
    ids=["empty", "array", "string", "number", "null", "bool", "truncated", "python", "deep"],
)
def test_a_body_that_is_not_a_json_object_is_400(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse("github", body, PING.headers)


@pytest.mark.parametrize(
    "body", [b'{"zen": NaN}', b'{"zen": -Infinity}', b'{"n": 1' + b"0" * 5000 + b"}"]
)
def test_numbers_json_does_not_allow_are_400(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse("github", body, PING.headers)


# --- form-encoded GitHub deliveries --------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload",
        b"zen=1",
        b"payload=%7B%7D&payload=%7B%7D",
        b"payload=%FF",
        b"a=1&" * 30 + b"payload=%7B%7D",
    ],
    ids=["empty", "no-value", "no-payload", "two-payloads", "bad-escape", "too-many-fields"],
)
def test_a_malformed_form_is_400(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse("github", body, {**PING.headers, **FORM})


def test_a_form_whose_payload_is_not_json_is_400() -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        parse("github", b"payload=%7Bzen", {**PING.headers, **FORM})


def test_a_lone_surrogate_escape_in_a_kept_string_is_400() -> None:
    case = load_case("github/push/2")
    body = case.with_payload(lambda payload: payload.update(ref="refs/heads/\ud800"))
    assert b'"refs/heads/\\ud800"' in body
    with pytest.raises(PayloadError, match="not valid Unicode"):
        parse("github", body, case.headers)


def test_an_escaped_surrogate_pair_is_an_ordinary_character() -> None:
    case = load_case("github/push/2")
    body = case.with_payload(lambda payload: payload.update(ref="refs/heads/\U0001f680"))
    assert b'"refs/heads/\\ud83d\\ude80"' in body
    event = parse("github", body, case.headers)
    assert isinstance(event, PushEvent)
    assert event.branch == "\U0001f680"
