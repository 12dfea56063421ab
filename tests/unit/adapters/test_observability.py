"""One JSON logger with the work's correlation keys, cleared after each request or invocation,
and no secret in any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.adapters import observability
from chalicelib.domain import correlation


@contextmanager
def json_lines(level: int = logging.INFO) -> Iterator[list[dict[str, Any]]]:
    """Every line the ``roadie`` logger writes while the block runs, as parsed JSON, through
    the Powertools logger's own formatter and filter (a second handler next to its own)."""
    powertools = observability.logger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(powertools.registered_formatter)
    for keep in powertools.registered_handler.filters:
        handler.addFilter(keep)
    target = logging.getLogger(observability.SERVICE)
    saved = target.level
    target.addHandler(handler)
    target.setLevel(level)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        target.removeHandler(handler)
        target.setLevel(saved)
        lines += [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_line_is_json_with_the_keys_bound_now_and_none_after() -> None:
    log = logging.getLogger("roadie.test")
    with json_lines() as lines:
        with correlation.bound(deploy_id="d-1", app="shop"):
            correlation.bind(environment="production", phase="switching", delivery_id=None)
            log.info("inside", extra={"status": "running"})
        log.info("outside")
    inside, outside = lines
    assert inside["message"] == "inside" and inside["service"] == "roadie"
    assert (inside["deploy_id"], inside["app"], inside["environment"], inside["phase"]) == (
        "d-1",
        "shop",
        "production",
        "switching",
    )
    assert inside["status"] == "running" and "delivery_id" not in inside
    assert not {"deploy_id", "app", "environment", "phase"} & set(outside)


def test_nested_scopes_restore_the_outer_keys() -> None:
    with correlation.bound(deploy_id="d-1"):
        with correlation.bound(deploy_id="d-2", delivery_id="x"):
            assert correlation.log_keys() == {"deploy_id": "d-2", "delivery_id": "x"}
        assert correlation.log_keys() == {"deploy_id": "d-1"}
    assert correlation.log_keys() == {}


def test_secrets_tokens_and_signatures_are_masked_everywhere_in_a_line() -> None:
    secret = "s3cr3t-webhook-value"
    observability.keep_secret(secret)
    log = logging.getLogger("roadie.test")
    with json_lines() as lines:
        log.info("saw %s", secret, extra={"headers": {"x": f"Bearer tok-{secret}"}})
        log.info("Authorization: Bearer abcdef0123 and sha256=%s", "ab" * 32)
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            log.exception("failed")
    text = json.dumps(lines)
    assert secret not in text and "abcdef0123" not in text and "ab" * 32 not in text
    assert lines[0]["message"] == "saw ***" and lines[2]["exception"].endswith("bad ***")


def test_an_invocation_binds_the_events_ids_logs_its_error_with_the_stack_and_clears() -> None:
    @observability.invocation("rollout_poll")
    def handler(event: dict[str, Any], context: Any) -> None:
        logging.getLogger("roadie.test").info("working")
        raise RuntimeError("poll broke")

    with json_lines() as lines, pytest.raises(RuntimeError):
        handler({"deploy_id": "d-7", "plan": {}}, None)
    working, failed = lines
    assert working["deploy_id"] == failed["deploy_id"] == "d-7"
    assert failed["level"] == "ERROR" and "RuntimeError: poll broke" in failed["exception"]
    assert failed["message"] == "rollout_poll failed"
    assert correlation.current() == {}


def test_a_scheduled_invocation_is_the_schedules_doing() -> None:
    seen: list[dict[str, str]] = []

    @observability.invocation("reconcile", source="schedule")
    def handler(event: Any) -> None:
        seen.append(correlation.current())

    handler(object())
    assert seen == [{"source": "schedule"}] and correlation.current() == {}


def test_an_unexpected_request_error_is_one_line_even_when_chalice_logs_it_too() -> None:
    with json_lines() as lines:
        with pytest.raises(KeyError), observability.request_scope(deploy_id="d-9"):
            raise KeyError("boom")
        try:
            raise KeyError("other")
        except KeyError:
            # what Chalice does after an unhandled view error (its logger is the app's name)
            logging.getLogger("roadie").error("Caught exception", exc_info=True)
    assert [line["message"] for line in lines] == [
        "unexpected error handling the request",
        "Caught exception",  # not one we logged: kept
    ]
    assert lines[0]["deploy_id"] == "d-9" and "KeyError: 'boom'" in lines[0]["exception"]


def test_chalices_repeat_of_an_error_we_logged_is_dropped() -> None:
    error = KeyError("boom")
    with json_lines() as lines:
        with pytest.raises(KeyError), observability.request_scope():
            raise error
        try:
            raise error
        except KeyError:
            logging.getLogger("roadie").error("Caught exception", exc_info=True)
    assert [line["message"] for line in lines] == ["unexpected error handling the request"]


def test_a_key_bound_outside_any_request_or_invocation_goes_nowhere() -> None:
    correlation.bind(deploy_id="d-stray")
    assert correlation.current() == {}
    with correlation.bound():
        assert correlation.log_keys() == {}
