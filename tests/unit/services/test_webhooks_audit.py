"""Webhook decisions: each is one log line (accepted with its deploy, ignored with its reason,
refused with its status), bound to the delivery id; the first time a delivery is decided it
is audited per environment it concerns."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain import correlation
from chalicelib.services.audit import Observer
from chalicelib.webhooks import SignatureError

from .fake_audit import FakeAuditLog
from .test_webhooks_ci import NEW, OLD, SECRETS, World, world  # noqa: F401 (fixture)


@pytest.fixture(autouse=True)
def request_scope() -> Iterator[None]:
    with correlation.bound():  # as the API's request scope does: nothing leaks out
        yield


@pytest.fixture
def audited(world: World) -> tuple[World, FakeAuditLog]:  # noqa: F811
    trail = FakeAuditLog()
    world.service.observer = Observer(trail)
    return world, trail


def decisions(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        {k: r.__dict__.get(k) for k in ("decision", "reason", "webhook_deploy_id")}
        for r in caplog.records
        if "decision" in r.__dict__
    ]


def test_an_accepted_push_is_one_line_and_one_event_per_deploy(
    audited: tuple[World, FakeAuditLog], caplog: pytest.LogCaptureFixture
) -> None:
    hooks, trail = audited
    caplog.set_level(logging.INFO, logger="roadie")
    hooks.push(NEW, OLD, ref="master")
    assert correlation.current()["delivery_id"] == "delivery-1"
    assert decisions(caplog) == [
        {"decision": "accepted", "reason": None, "webhook_deploy_id": "d-0"}
    ]
    [event] = trail.events
    assert (event.action, event.deploy_id, event.delivery_id, event.source) == (
        "webhook.accepted",
        "d-0",
        "delivery-1",
        "push",
    )


def test_an_ignored_push_says_why_and_is_audited_for_the_environment_it_skips(
    audited: tuple[World, FakeAuditLog], caplog: pytest.LogCaptureFixture
) -> None:
    hooks, trail = audited
    caplog.set_level(logging.INFO, logger="roadie")
    hooks.push(NEW, OLD)  # main is CI-gated here: recorded, nothing deployed
    [line] = decisions(caplog)
    assert line["decision"] == "ignored" and "waits for CI" in line["reason"]
    assert [(e.action, e.detail["reason"]) for e in trail.events] == [
        ("webhook.ignored", "waits for CI to pass on this commit")
    ]
    hooks.push(NEW, OLD, ref="feature")  # no environment at all: logged, nothing to file under
    assert len(trail.events) == 1 and decisions(caplog)[-1]["decision"] == "ignored"


def test_a_refused_delivery_is_one_warning_with_its_status_and_never_the_secret(
    audited: tuple[World, FakeAuditLog], caplog: pytest.LogCaptureFixture
) -> None:
    hooks, trail = audited
    caplog.set_level(logging.INFO, logger="roadie")
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "delivery-x",
        "X-Hub-Signature-256": "sha256=" + "0" * 64,
    }
    with pytest.raises(SignatureError):
        hooks.service.receive("github", b"{}", headers)
    [record] = [r for r in caplog.records if "decision" in r.__dict__]
    assert (record.levelname, record.__dict__["http_status"]) == ("WARNING", 401)
    assert trail.events == []
    text = caplog.text + repr([r.__dict__ for r in caplog.records])
    assert all(secret not in text for secret in SECRETS.values())
