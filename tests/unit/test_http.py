"""Domain errors become JSON answers with the right status (chalicelib/http.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain.errors import NotFoundError, RoadieError, UnavailableError, ValidationError
from chalicelib.http import translate_errors


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UnavailableError("github API at api.github.com answered HTTP 502"), 503, "unavailable"),
        (NotFoundError("ref 'nope' is no branch or tag of roadie-demo/shop"), 404, "not_found"),
        (ValidationError("ref '-x' is not a valid branch or tag name"), 422, "invalid"),
    ],
)
def test_a_ref_resolution_error_becomes_a_json_answer_that_says_why(
    error: RoadieError, status: int, code: str
) -> None:
    @translate_errors
    def view() -> None:
        raise error

    response = view()
    assert response.status_code == status
    assert json.loads(response.body) == {"error": code, "message": str(error)}


# --- request parsing: no input recurses, crashes or slips through -------------------------------

from chalice import Response  # noqa: E402
from chalice.app import MultiDict  # noqa: E402

from chalicelib.domain import jsontext  # noqa: E402
from chalicelib.http import (  # noqa: E402
    MAX_API_BODY,
    HttpError,
    json_object,
    query_values,
    uniform_error,
    whole_number,
)


def refused(call: Any, *args: Any) -> HttpError:
    with pytest.raises(HttpError) as raised:
        call(*args)
    return raised.value


@pytest.mark.parametrize(
    "body",
    [
        '{"a":' * 1500 + "1" + "}" * 1500,
        "[" * 30_000 + "]" * 30_000,
        "[" * 60_000,  # never closed
        '{"app": ' + "[" * 64 + "]" * 64 + "}",
        '{"a": "[[[", "b": ' + "{" * 65 + "}" * 65 + "}",
    ],
    ids=["objects-1500", "arrays-30k", "open-60k", "depth-65", "depth-65-after-a-string"],
)
def test_json_nested_too_deep_is_a_400_without_recursing(body: str) -> None:
    error = refused(json_object, body)
    assert (error.status, error.code) == (400, "bad_request")


@pytest.mark.parametrize(
    "body", ["[" * 500_000 + "]" * 500_000, "[" * 1_000_000, '{"a":' * 200_000 + "1"]
)
def test_a_megabyte_of_nesting_is_refused_without_recursing(body: str) -> None:
    with pytest.raises(jsontext.JsonTextError):
        jsontext.loads(body)


def test_json_at_the_depth_limit_is_accepted() -> None:
    depth = jsontext.MAX_DEPTH - 1  # the object itself is the first level
    body = '{"a": ' + "[" * depth + '"]]]"' + "]" * depth + "}"
    value: Any = json_object(body)["a"]
    for _ in range(depth - 1):
        value = value[0]
    assert value == ["]]]"]


@pytest.mark.parametrize(
    "body",
    ['{"n": ' + "9" * 5000 + "}", '{"n": 1e999999}', '{"n": NaN}', '{"a": 1, "a": 2}'],
    ids=["5000-digits", "huge-float", "nan", "duplicate-key"],
)
def test_numbers_constants_and_repeated_keys_json_cannot_mean_are_a_400(body: str) -> None:
    assert refused(json_object, body).status == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"reason": "\\ud800"}', "reason"),
        ('{"app": "shop", "ref": "ma\\udfffin"}', "ref"),
        ('{"x": {"y": ["ok", "\\udbff"]}}', "x.y[1]"),
        ('{"\\ud800": 1}', "body"),
    ],
)
def test_a_lone_surrogate_anywhere_is_a_422_naming_the_field(body: str, field: str) -> None:
    error = refused(json_object, body)
    assert (error.status, error.code) == (422, "invalid")
    assert repr(field) in str(error)


def test_a_surrogate_pair_escape_is_unicode_and_accepted() -> None:
    assert json_object('{"reason": "\\ud83d\\ude80 ship it"}') == {"reason": "\U0001f680 ship it"}


def test_a_body_over_the_api_limit_is_a_413() -> None:
    error = refused(json_object, '{"reason": "' + "x" * MAX_API_BODY + '"}')
    assert (error.status, error.code) == (413, "payload_too_large")


def test_depth_check_of_a_1mb_body_is_linear() -> None:
    import time

    body = "[" + ",".join(['{"a": [1, {"b": "x[y]"}]}'] * 40_000) + "]"
    started = time.perf_counter()
    jsontext.check_depth(body)
    elapsed = time.perf_counter() - started
    print(f"depth check of {len(body)} bytes: {elapsed * 1000:.1f} ms")
    assert len(body) > 1_000_000


@pytest.mark.parametrize(
    "text", ["²", "٣", "\uff11", "-1", "+1", " 1", "1 ", "1.0", "", "0", "101", "9" * 5000, "1_0"]
)
def test_a_limit_is_ascii_digits_in_range_else_a_400_naming_the_range(text: str) -> None:
    error = refused(whole_number, text, "limit", 1, 100)
    assert error.status == 400 and "1..100" in str(error)


def test_a_limit_in_ascii_digits_in_range_is_its_value() -> None:
    assert [whole_number(t, "limit", 1, 100) for t in ("1", "007", "100")] == [1, 7, 100]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"limit": ["1", "2"]}, "more than once"),
        ({"colour": ["red"]}, "unknown query parameter"),
        ({"app": ["\udc80"]}, "not valid text"),
    ],
)
def test_repeated_unknown_or_broken_query_parameters_are_a_400(
    params: dict[str, list[str]], says: str
) -> None:
    error = refused(query_values, MultiDict(params), ("app", "limit"))
    assert error.status == 400 and says in str(error)


def test_query_values_are_one_per_name() -> None:
    assert query_values(MultiDict({"app": ["shop"], "limit": ["5"]}), ("app", "limit")) == {
        "app": "shop",
        "limit": "5",
    }
    assert query_values(None, ()) == {}


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (
            Response(
                body={"Code": "MethodNotAllowedError", "Message": "Unsupported method: PATCH"},
                status_code=405,
                headers={"Allow": "GET"},
            ),
            "method_not_allowed",
        ),
        (
            Response(
                body={"Code": "UnsupportedMediaType", "Message": "Unsupported media type: x/y"},
                status_code=415,
            ),
            "unsupported_media_type",
        ),
        (
            Response(
                body={"Code": "InternalServerError", "Message": "An internal server error"},
                status_code=500,
            ),
            "internal_server",
        ),
        (Response(body="plain text", status_code=400), "error"),
    ],
)
def test_chalices_own_error_answers_get_the_one_error_shape(response: Any, code: str) -> None:
    shaped = uniform_error(response)
    body = json.loads(shaped.body)
    assert set(body) == {"error", "message"} and body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert shaped.status_code == response.status_code
    if "Allow" in response.headers:
        assert shaped.headers["Allow"] == "GET"


def test_our_own_answers_and_successes_pass_unchanged() -> None:
    ours = Response(body=json.dumps({"error": "x", "message": "y"}), status_code=404)
    ok = Response(body={"status": "ok"}, status_code=200)
    assert uniform_error(ours) is ours and uniform_error(ok) is ok
