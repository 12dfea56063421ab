"""The AuditLog contract: ``FakeAuditLog`` and ``AuditRepository`` (moto) page one
environment's trail the same way: newest first, from ``since`` on, cursors bound to the query."""

from __future__ import annotations

import pytest

from chalicelib.domain.audit import AuditEvent
from chalicelib.domain.errors import InvalidCursorError
from chalicelib.services.ports import AuditLog
from tests.unit.services.fake_audit import FakeAuditLog


@pytest.fixture
def trail(impl: str) -> AuditLog:
    if impl == "fake":
        return FakeAuditLog()
    from chalicelib.adapters.dynamo import AuditRepository

    return AuditRepository()


def event(n: int, env: str = "production", **extra: object) -> AuditEvent:
    return AuditEvent(
        app="shop",
        environment=env,
        at=f"2026-12-01T08:{n:02d}:00.000Z",
        action="deploy.requested",
        principal="ann",
        source="api",
        event_id=f"e{n:04d}",
        deploy_id=f"d-{n}",
        detail={"sha": "a" * 40, **extra},
    )


def test_a_trail_pages_newest_first_through_every_event_once(trail: AuditLog) -> None:
    for n in range(7):
        trail.append(event(n))
    trail.append(event(3, env="staging"))
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page, cursor = trail.page("shop", "production", limit=3, cursor=cursor)
        seen += [e.event_id for e in page]
        if cursor is None:
            break
    assert seen == [f"e{n:04d}" for n in reversed(range(7))]


def test_an_event_comes_back_as_it_was_written(trail: AuditLog) -> None:
    written = event(1, outcome="failed", nested={"a": [1, 2]})
    trail.append(written)
    page, cursor = trail.page("shop", "production")
    assert page == [written] and cursor is None


def test_since_keeps_only_events_from_then_on(trail: AuditLog) -> None:
    for n in range(5):
        trail.append(event(n))
    page, _ = trail.page("shop", "production", since="2026-12-01T08:02:00")
    assert [e.event_id for e in page] == ["e0004", "e0003", "e0002"]
    assert trail.page("shop", "production", since="2026-12-02") == ([], None)


def test_a_cursor_is_only_good_for_the_query_that_made_it(trail: AuditLog) -> None:
    for n in range(4):
        trail.append(event(n))
        trail.append(event(n, env="staging"))
    _, cursor = trail.page("shop", "production", limit=2)
    assert cursor is not None
    with pytest.raises(InvalidCursorError):
        trail.page("shop", "staging", limit=2, cursor=cursor)
    with pytest.raises(InvalidCursorError):
        trail.page("shop", "production", limit=2, cursor=cursor, since="2026-01-01")
    for bad in ("", "not-base64!", "e30", "eyJmIjpbXX0"):
        with pytest.raises(InvalidCursorError):
            trail.page("shop", "production", cursor=bad)
