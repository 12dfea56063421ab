"""Every failure prints the server's message and the status, with exit 2 (4xx) or 3 (5xx, no
answer, not JSON), and never a traceback."""

from __future__ import annotations

import socket
import time

import pytest

from cli import main as entry_point

from .conftest import Run
from .fakeapi import DEPLOY_ID, FakeApi, Seen, error


@pytest.mark.parametrize(
    ("status", "body", "code", "text"),
    [
        (
            401,
            error("unauthorized", "a valid bearer token is required"),
            2,
            "HTTP 401 unauthorized",
        ),
        (404, error("not_found", f"no deploy {DEPLOY_ID!r}"), 2, "HTTP 404 not_found"),
        (422, error("invalid", "limit must be 1..100"), 2, "HTTP 422 invalid"),
        (500, error("config", "bad pipeline config"), 3, "HTTP 500 config"),
        (503, error("aws_error", "SSM is unavailable"), 3, "HTTP 503 aws_error"),
    ],
)
def test_http_errors_print_message_and_status(
    api: FakeApi, run: Run, status: int, body: dict[str, str], code: int, text: str
) -> None:
    api.on("GET", f"/deploys/{DEPLOY_ID}", (status, body))
    result = run("status", DEPLOY_ID)
    assert result.code == code
    assert result.out == ""
    assert result.err == f"roadie: error: {body['message']} ({text})\n"


def test_a_busy_environment_names_the_running_deploy(api: FakeApi, run: Run) -> None:
    busy = error("conflict", "shop/production is busy", deploy_id=DEPLOY_ID)
    api.on("POST", "/deploys", (409, busy))
    result = run("deploy", "shop", "production", "--ref", "main")
    assert result.code == 2
    assert "shop/production is busy (HTTP 409 conflict)" in result.err
    assert f"deploy: {DEPLOY_ID}" in result.err


def test_an_answer_that_is_not_json(api: FakeApi, run: Run) -> None:
    api.on("GET", "/deploys", (502, b"<html>Bad Gateway</html>"), (200, b"not json"))
    bad_gateway = run("list")
    assert bad_gateway.code == 3 and "HTTP 502" in bad_gateway.err
    assert "<html>Bad Gateway</html>" in bad_gateway.err
    garbled = run("list")
    assert garbled.code == 3 and "not JSON" in garbled.err
    assert "Traceback" not in bad_gateway.err + garbled.err


def test_nobody_listening_is_exit_3(run: Run) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("list", env={"ROADIE_URL": f"http://127.0.0.1:{port}", "ROADIE_TOKEN": "t"})
    assert result.code == 3
    assert f"cannot reach Roadie at http://127.0.0.1:{port}" in result.err
    assert "Traceback" not in result.err


def test_a_slow_server_times_out_with_exit_3(
    api: FakeApi, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entry_point, "REQUEST_TIMEOUT", 0.2)

    def slow(_: Seen) -> tuple[int, object]:
        time.sleep(0.6)
        return 200, {"deploys": [], "next_cursor": None}

    api.on("GET", "/deploys", slow)
    started = time.monotonic()
    result = run("list")
    assert time.monotonic() - started < 0.55
    assert result.code == 3
    assert "no answer from Roadie within 0.2s" in result.err


def test_a_url_that_is_not_http_is_a_usage_error(api: FakeApi, run: Run) -> None:
    result = run("list", "--url", "127.0.0.1:8000")
    assert result.code == 2 and "is not an http:// or https:// URL" in result.err
    assert api.requests == []
