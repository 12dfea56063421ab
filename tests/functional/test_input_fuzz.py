"""No input gets a 5xx, every refusal has the one error shape, and no refused request creates a
record: a bounded, reproducible Hypothesis search over every route of the API contract, through
the app in-process (``chalice.test.Client``) on the embedded stack's moto, plus what only the
real local server sees (431, a bad Content-Length, an unknown method) over a socket.

Both environments are frozen first, so an accepted deploy is recorded and queued, never rolled
out (an unfreeze is only ever sent with a wrong token, and ``force`` is never ``true``).
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chalicelib.webhooks import sign_sha256
from devstack.stack import LocalStack
from infra.template import names

from .conftest import CORPUS_SECRETS, ROOT, TOKEN, auth

JSON = "application/json"
SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run and machine
    database=None,  # no example database: nothing carries over between runs
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the fixtures hold for the whole search
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
COUNTS = {"requests": 0}

# --- building blocks ----------------------------------------------------------------------------

DEEP = ["[" * 1500 + "]" * 1500, '{"a":' * 1500 + "1" + "}" * 1500, "[" * 70 + "]" * 70]
ODD_TEXT = st.one_of(
    st.sampled_from(
        [
            *["", " ", "\ud800", "a\udfffb", "²", "٣", "\uff11", "-1", "9" * 5000, "%00"],
            *["\x00", "..", "../..", "%2F", "shop", "production", "staging", "main", "x" * 600],
            "\u202e",
        ]
    ),
    st.text(max_size=20),
)
DEPLOY_ID = st.sampled_from(
    ["d-20260101t000000-00000000", "nope", "..%2F..", "D-1", "%ud800", "d-" + "9" * 300]
)
SHA = st.sampled_from(["0" * 40, "f" * 40, "A" * 40, "abc", "g" * 40, ""])


def json_value(depth: int = 2) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        ODD_TEXT,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(ODD_TEXT, inner, max_size=3)
        ),
        max_leaves=8,
    )


def deploy_body(refs: list[str], shas: list[str]) -> st.SearchStrategy[Any]:
    """Mostly almost-valid deploy requests: each field valid, odd, or of the wrong type."""
    field = st.one_of(json_value(), ODD_TEXT)
    return st.fixed_dictionaries(
        {},
        optional={
            "app": st.one_of(st.sampled_from(["shop", "nope", "Shop"]), field),
            "environment": st.one_of(st.sampled_from(["production", "staging", "qa"]), field),
            "ref": st.one_of(st.sampled_from(refs), field),
            "sha": st.one_of(st.sampled_from(shas), SHA, field),
            "reason": st.one_of(st.sampled_from(["ship", "\ud800", "x" * 501]), field),
            "force": st.one_of(st.just(False), st.sampled_from(["true", 1, None, [True]])),
            "extra": field,
        },
    )


# Each class of input the issue found answered 5xx (or a false 409), as a whole deploy body.
_VALID = {"app": "shop", "environment": "production", "ref": "main"}
HOSTILE_DEPLOY_BODY = st.sampled_from(
    [
        *(d.encode() for d in DEEP),
        json.dumps({**_VALID, "reason": "\ud800"}).encode(),
        json.dumps({**_VALID, "ref": "ma\udfffin"}).encode(),
        json.dumps({"app": "shop", "environment": "production", "sha": "e" * 40}).encode(),
        (json.dumps(_VALID)[:-1] + ', "force": ' + "9" * 5000 + "}").encode(),
        json.dumps({**_VALID, "extra": [[[[[[[[[[]]]]]]]]]]}).encode(),
        (
            '{"app": "shop", "environment": "production", "ref": ' + "[" * 2000 + "]" * 2000 + "}"
        ).encode(),
    ]
)


def encode(body: Any) -> st.SearchStrategy[bytes]:
    text = json.dumps(
        body
    )  # ensure_ascii: a lone surrogate travels as "\\ud800", as a client sends
    return st.sampled_from([text.encode(), text.encode("utf-16"), text.encode()[: len(text) // 2]])


RAW_BODY = st.one_of(
    st.sampled_from([d.encode() for d in DEEP]),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'"x"',
            b"{",
            b'{"n": 1e999999}',
            b'{"n": NaN}',
            b'{"app": "shop", "app": "x"}',
            b"payload=%7B%7D",
            b"\xff\xfe\x00",
            b'{"reason": "\\ud800"}',
            b"{" + b'"n":' + b"9" * 5000 + b"}",
        ]
    ),
    st.binary(max_size=64),
)
CONTENT_TYPE = st.sampled_from(
    [
        *["application/json"] * 6,
        None,
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
        "\u00e9/\u00e9",
    ]
)
QUERY = st.lists(
    st.tuples(
        st.sampled_from(
            ["limit", "cursor", "app", "environment", "status", "colour", "LIMIT", "host", "phase"]
        ),
        st.one_of(
            st.sampled_from(["1", "25", "100", "0", "101", "²", "٣", "-1", " 5", "9" * 5000]),
            st.sampled_from(["succeeded", "bogus", "eyJhIjogMX0", "%%%", "%ED%A0%80"]),
            ODD_TEXT,
        ),
    ),
    max_size=3,
)


def query_string(pairs: list[tuple[str, str]]) -> str:
    parts = [f"{quote(k)}={quote(v, safe='%', errors='surrogatepass')}" for k, v in pairs]
    return ("?" + "&".join(parts)) if parts else ""


# --- the stack, frozen, and how records are counted --------------------------------------------


@pytest.fixture(scope="module")
def frozen(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """One fresh, frozen stack for the module's searches (a reset costs seconds; the searches
    only add queued records, which none of them minds)."""
    from chalice.test import Client

    import app as chalice_app

    stack.reset()
    with Client(chalice_app.app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield from _frozen(stack, client)


def _frozen(fresh_stack: LocalStack, client: Any) -> Iterator[dict[str, Any]]:
    for env in ("production", "staging"):
        response = client.http.put(
            f"/environments/shop/{env}/lock",
            headers=auth(),
            body=json.dumps({"reason": "fuzzing"}),
        )
        assert response.status_code == 200, response.body
    sources = fresh_stack.sources
    queued = client.http.post(
        "/deploys",
        headers=auth(),
        body=json.dumps({"app": "shop", "environment": "staging", "sha": sources.v1}),
    )
    assert queued.status_code == 202, queued.body
    assert queued.json_body["status"] == "queued"
    dynamodb = boto3.client("dynamodb", endpoint_url=fresh_stack.endpoint, region_name="us-east-1")
    tables = {t.logical_id: t.name for t in names("dev").tables}
    world = {
        "client": client,
        "dynamodb": dynamodb,
        "records": [tables["DeploysTable"], tables["IdempotencyTable"]],
        "deploy_id": queued.json_body["deploy_id"],
        "refs": ["main", "staging", "v1", "no-such-branch", "refs/heads/main", "-x"],
        "shas": [sources.v1, sources.v2],
    }
    world["counts"] = records(world)  # what the last request left: a refusal must keep it
    yield world


def run(search: Any, name: str) -> None:
    """Run one search; print how many requests it made and how long it took."""
    before, started = COUNTS["requests"], time.monotonic()
    search()
    made, took = COUNTS["requests"] - before, time.monotonic() - started
    print(f"\n{name}: {made} requests in {took:.1f} s")


def records(world: dict[str, Any]) -> list[int]:
    return [
        world["dynamodb"].scan(TableName=name, Select="COUNT", ConsistentRead=True)["Count"]
        for name in world["records"]
    ]


def check(
    world: dict[str, Any], method: str, path: str, headers: dict[str, str], body: bytes
) -> Any:
    """Send one request: never a 5xx; a refusal has exactly the one error shape and leaves the
    deploy records and the webhook deliveries as they were."""
    before = world["counts"]
    response = world["client"].http.request(method, path, headers=headers, body=body)
    COUNTS["requests"] += 1
    status = response.status_code
    assert status < 500, (method, path, headers, body[:200], response.body[:500])
    world["counts"] = records(world)
    if status >= 400:
        if method != "HEAD":
            answer = json.loads(response.body)
            assert isinstance(answer, dict) and set(answer) == {"error", "message"}, answer
            assert isinstance(answer["error"], str) and isinstance(answer["message"], str)
            assert answer["error"] and answer["message"]
        assert world["counts"] == before, (method, path, status, response.body[:300])
    return response


def headers_for(
    token: str | None, content_type: str | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    headers = dict(extra or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


TOKEN_CHOICE = st.sampled_from([TOKEN] * 6 + [None, "wrong", "\u00e9"])


# --- the searches -------------------------------------------------------------------------------


def test_the_deploy_api_never_answers_5xx_and_refuses_in_one_shape(
    frozen: dict[str, Any],
) -> None:
    @settings(SETTINGS, max_examples=100)
    @given(data=st.data())
    def search(data: st.DataObject) -> None:
        route = data.draw(st.sampled_from(["create", "list", "get", "cancel", "rollback", "log"]))
        deploy_id = data.draw(st.one_of(st.just(frozen["deploy_id"]), DEPLOY_ID))
        method, path = {
            "create": ("POST", "/deploys"),
            "list": ("GET", "/deploys"),
            "get": ("GET", f"/deploys/{quote(deploy_id, safe='%')}"),
            "cancel": ("POST", f"/deploys/{quote(deploy_id, safe='%')}/cancel"),
            "rollback": ("POST", f"/deploys/{quote(deploy_id, safe='%')}/rollback"),
            "log": ("GET", f"/deploys/{quote(deploy_id, safe='%')}/log"),
        }[route]
        # mostly the route's own method, a good token and JSON: the requests that get furthest
        method = data.draw(st.sampled_from([method] * 5 + ["PUT", "DELETE", "PATCH", "HEAD"]))
        path += query_string(data.draw(QUERY))
        body = data.draw(
            st.one_of(
                deploy_body(frozen["refs"], frozen["shas"]).flatmap(encode),
                HOSTILE_DEPLOY_BODY,
                RAW_BODY,
            ),
            label="body",
        )
        token = data.draw(TOKEN_CHOICE)
        check(frozen, method, path, headers_for(token, data.draw(CONTENT_TYPE)), body)

    run(search, "deploy API")


def test_environment_routes_and_odd_paths_never_answer_5xx(frozen: dict[str, Any]) -> None:
    @settings(SETTINGS, max_examples=80)
    @given(data=st.data())
    def search(data: st.DataObject) -> None:
        app = data.draw(st.one_of(st.sampled_from(["shop", "nope"]), ODD_TEXT))
        env = data.draw(st.one_of(st.sampled_from(["production", "staging"]), ODD_TEXT))
        segments = [
            quote(app, safe="", errors="surrogatepass"),
            quote(env, safe="", errors="surrogatepass"),
        ]
        kind = data.draw(st.sampled_from(["env", "lock", "lock", "odd", "health"]))
        if kind == "odd":
            path = "/" + "/".join(
                data.draw(
                    st.lists(
                        st.sampled_from(
                            [
                                "deploys",
                                "environments",
                                "webhooks",
                                "x",
                                "..",
                                "%2F",
                                "healthz",
                                "github",
                            ]
                        ),
                        max_size=5,
                    )
                )
            )
        elif kind == "health":
            path = "/healthz"
        else:
            path = f"/environments/{segments[0]}/{segments[1]}" + (
                "/lock" if kind == "lock" else ""
            )
        method = data.draw(st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH", "OPTIONS"]))
        token = data.draw(TOKEN_CHOICE)
        if method == "DELETE" and token == TOKEN:
            token = "wrong"  # never unfreeze: a queued deploy would roll out
        body = data.draw(
            st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"reason": st.one_of(ODD_TEXT, json_value()), "x": json_value()}
                ).flatmap(encode),
                RAW_BODY,
            )
        )
        path += query_string(data.draw(QUERY))
        check(frozen, method, path, headers_for(token, data.draw(CONTENT_TYPE)), body)

    run(search, "environments and odd paths")


def test_webhooks_signed_or_not_never_answer_5xx(frozen: dict[str, Any]) -> None:
    secrets = {
        "github": CORPUS_SECRETS["github_webhook_secret"],
        "bitbucket": CORPUS_SECRETS["bitbucket_webhook_secret"],
    }

    @settings(SETTINGS, max_examples=80)
    @given(data=st.data())
    def search(data: st.DataObject) -> None:
        provider = data.draw(st.sampled_from(["github", "gitlab", "bitbucket"]))
        push = {
            "ref": data.draw(
                st.one_of(st.sampled_from(["refs/heads/main", "refs/tags/v9"]), ODD_TEXT)
            ),
            "after": data.draw(st.one_of(st.sampled_from(frozen["shas"]), SHA, json_value())),
            "before": "0" * 40,
            "repository": data.draw(
                st.one_of(st.just({"full_name": "roadie-demo/shop"}), json_value())
            ),
            "extra": data.draw(json_value()),
        }
        body = data.draw(st.one_of(encode(push), RAW_BODY))
        signed = data.draw(st.sampled_from(["good", "good", "bad", "none"]))
        headers: dict[str, str] = {}
        if provider == "github":
            headers["X-GitHub-Event"] = data.draw(st.sampled_from(["push", "ping", "x", ""]))
            headers["X-GitHub-Delivery"] = str(uuid.UUID(int=data.draw(st.integers(0, 2**128 - 1))))
            if signed != "none":
                secret = secrets["github"] if signed == "good" else "nope"
                headers["X-Hub-Signature-256"] = sign_sha256(secret, body)
        elif provider == "bitbucket":
            headers["X-Event-Key"] = data.draw(st.sampled_from(["repo:push", "x"]))
            headers["X-Request-UUID"] = str(uuid.UUID(int=data.draw(st.integers(0, 2**128 - 1))))
            if signed != "none":
                secret = secrets["bitbucket"] if signed == "good" else "nope"
                headers["X-Hub-Signature"] = sign_sha256(secret, body)
        else:
            headers["X-Gitlab-Event"] = data.draw(
                st.sampled_from(["Push Hook", "Tag Push Hook", "x"])
            )
            if signed != "none":
                token = CORPUS_SECRETS["gitlab_secret_token"] if signed == "good" else "nope"
                headers["X-Gitlab-Token"] = token
        content_type = data.draw(CONTENT_TYPE)
        if content_type is not None:
            headers["Content-Type"] = content_type
        method = data.draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
        path = f"/webhooks/{provider}" + query_string(data.draw(QUERY))
        check(frozen, method, path, headers, body)

    run(search, "webhooks")


# --- each class of bad input the issue found, once, end to end ---------------------------------

_DEEP = ('{"a":' * 1500 + "1" + "}" * 1500).encode()
_SOME_ID = "d-20260101t000000-00000000"


def _cursor(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


_PARTIAL = _cursor({"f": [None, None, None], "k": {"deploy_id": {"S": _SOME_ID}}})
_FOREIGN = _cursor(
    {
        "f": [None, None, None],
        "k": {
            "deploy_id": {"S": _SOME_ID},
            "created_sort": {"S": f"2026-01-01T00:00:00+00:00#{_SOME_ID}"},
            "list_pk": {"S": "other-partition"},
        },
    }
)
_ANOTHER_QUERY = _cursor(
    {
        "f": ["shop", "staging", None],
        "k": {
            "deploy_id": {"S": _SOME_ID},
            "created_sort": {"S": f"2026-01-01T00:00:00+00:00#{_SOME_ID}"},
            "list_pk": {"S": "deploys"},
        },
    }
)
_VALID_TEXT = json.dumps(_VALID)


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "code"),
    [
        ("POST", "/deploys", _DEEP, JSON, 400, "bad_request"),
        ("PUT", "/environments/shop/production/lock", _DEEP, JSON, 400, "bad_request"),
        ("POST", f"/deploys/{_SOME_ID}/rollback", _DEEP, JSON, 400, "bad_request"),
        ("GET", "/deploys?limit=%C2%B2", b"", None, 400, "bad_request"),
        ("GET", "/deploys?limit=%D9%A3", b"", None, 400, "bad_request"),
        ("GET", "/deploys?limit=" + "9" * 5000, b"", None, 400, "bad_request"),
        ("GET", "/deploys?limit=1&limit=2", b"", None, 400, "bad_request"),
        ("GET", "/deploys?colour=red", b"", None, 400, "bad_request"),
        ("GET", f"/deploys/{_SOME_ID}?verbose=1", b"", None, 400, "bad_request"),
        ("GET", f"/deploys?cursor={_PARTIAL}", b"", None, 400, "invalid_cursor"),
        ("GET", f"/deploys?cursor={_FOREIGN}", b"", None, 400, "invalid_cursor"),
        ("GET", f"/deploys?cursor={_ANOTHER_QUERY}", b"", None, 400, "invalid_cursor"),
        ("GET", "/deploys?cursor=bm90LWpzb24", b"", None, 400, "invalid_cursor"),
        (
            "PUT",
            "/environments/shop/production/lock",
            b'{"reason": "freeze \\ud800"}',
            JSON,
            422,
            "invalid",
        ),
        (
            "POST",
            "/deploys",
            _VALID_TEXT[:-1].encode() + b', "reason": "\\udc00"}',
            JSON,
            422,
            "invalid",
        ),
        (
            "POST",
            "/deploys",
            _VALID_TEXT[:-1].encode() + b', "force": ' + b"9" * 5000 + b"}",
            JSON,
            400,
            "bad_request",
        ),
        (
            "POST",
            "/deploys",
            json.dumps({"app": "shop", "environment": "production", "sha": "e" * 40}).encode(),
            JSON,
            404,
            "unknown_sha",
        ),
        ("POST", "/webhooks/gitlab", b"{}", "text/plain", 415, "unsupported_media_type"),
        ("POST", "/deploys", _VALID_TEXT.encode(), "text/plain", 415, "unsupported_media_type"),
        ("PATCH", "/healthz", b"", None, 405, "method_not_allowed"),
        ("GET", "/no/such/route", b"", None, 404, "not_found"),
        ("GET", f"/deploys/{_SOME_ID}/cancel/x", b"", None, 404, "not_found"),
    ],
    ids=[
        "deploy-deep-json",
        "lock-deep-json",
        "rollback-deep-json",
        "limit-superscript-two",
        "limit-arabic-indic-digit",
        "limit-5000-digits",
        "limit-repeated",
        "unknown-query-parameter",
        "query-on-a-route-without-one",
        "cursor-partial-key",
        "cursor-foreign-partition",
        "cursor-of-another-query",
        "cursor-not-json",
        "freeze-reason-lone-surrogate",
        "deploy-reason-lone-surrogate",
        "deploy-5000-digit-number",
        "deploy-unknown-sha",
        "webhook-text-plain",
        "deploy-text-plain",
        "method-not-allowed",
        "unknown-route",
        "route-with-an-extra-segment",
    ],
)
def test_each_bad_input_the_issue_found_gets_its_4xx_and_records_nothing(
    frozen: dict[str, Any],
    method: str,
    path: str,
    body: bytes,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    response = check(frozen, method, path, headers_for(TOKEN, content_type), body)
    assert (response.status_code, json.loads(response.body)["error"]) == (status, code)


# --- what only the real local server sees -------------------------------------------------------


def raw_request(api_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    address = urlsplit(api_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.connect()
    try:
        assert connection.sock is not None
        connection.sock.sendall(request)
        response = http.client.HTTPResponse(connection.sock, method="GET")
        response.begin()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(150))
            + b"\r\n",
            431,
        ),
        (b"POST /deploys HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /deploys HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST /deploys HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"BREW /deploys HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET /nowhere/at/all HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"PATCH /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
        (
            b"POST /webhooks/gitlab HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 2\r\n\r\n{}",
            415,
        ),
    ],
    ids=[
        "huge-header",
        "too-many-headers",
        "bad-length",
        "negative-length",
        "huge-length",
        "unknown-method",
        "unknown-route",
        "method-not-allowed",
        "media-type",
    ],
)
def test_the_local_server_refuses_in_the_one_shape(
    api_url: str, request_bytes: bytes, status: int
) -> None:
    got, headers, body = raw_request(api_url, request_bytes)
    assert got == status, body
    assert headers.get("Content-Type", "").startswith("application/json")
    answer = json.loads(body)
    assert set(answer) == {"error", "message"} and all(isinstance(v, str) for v in answer.values())
