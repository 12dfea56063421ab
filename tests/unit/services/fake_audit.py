"""``AuditLog`` in memory (the contract tests hold it to ``AuditRepository``)."""

from __future__ import annotations

import base64
import json

from chalicelib.domain.audit import AuditEvent
from chalicelib.domain.errors import InvalidCursorError


class FakeAuditLog:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        self.events.append(event)

    def page(
        self,
        app: str,
        environment: str,
        *,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        query = [app, environment, since]
        found = sorted(
            (
                e
                for e in self.events
                if (e.app, e.environment) == (app, environment)
                and (since is None or f"{e.at}#{e.event_id}" >= since)
            ),
            key=lambda e: f"{e.at}#{e.event_id}",
            reverse=True,
        )
        start = 0
        if cursor is not None:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            except ValueError:
                raise InvalidCursorError("cursor is not one this API returned") from None
            if not isinstance(decoded, dict) or decoded.get("q") != query:
                raise InvalidCursorError("cursor is not one this API returned for this query")
            start = int(decoded["n"])
        page = found[start : start + limit]
        if len(page) < limit:
            return page, None  # like DynamoDB, a full page may still end the trail
        token = json.dumps({"q": query, "n": start + limit}).encode()
        return page, base64.urlsafe_b64encode(token).decode().rstrip("=")

    def actions(self) -> list[str]:
        return [e.action for e in self.events]
