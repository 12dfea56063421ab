"""The audit trail in its own table: one item per event, keyed ``<app>#<environment>`` and
``<at>#<event id>``, so a page of one environment's trail, newest first and from a time on,
is one Query (no index, no scan)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pynamodb.attributes import JSONAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from ...domain.audit import AuditEvent
from ...domain.errors import InvalidCursorError, UnavailableError


class AuditModel(Model):
    class Meta:
        table_name = "roadie-audit"
        billing_mode = "PAY_PER_REQUEST"

    stream = UnicodeAttribute(hash_key=True)  # "<app>#<environment>"
    event_sort = UnicodeAttribute(range_key=True)  # "<at>#<event id>"
    event = JSONAttribute()  # AuditEvent.to_json()


def _stream(app: str, environment: str) -> str:
    return f"{app}#{environment}"


class AuditRepository:
    """``AuditLog`` in DynamoDB."""

    def append(self, event: AuditEvent) -> None:
        item = AuditModel(
            _stream(event.app, event.environment),
            f"{event.at}#{event.event_id}",
            event=event.to_json(),
        )
        try:
            item.save()
        except PutError as exc:
            raise UnavailableError(f"audit event not stored: {exc.cause_response_code}") from exc

    def page(
        self,
        app: str,
        environment: str,
        *,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        stream = _stream(app, environment)
        query_id = [app, environment, since]
        start = _decode_cursor(cursor, query_id, stream) if cursor is not None else None
        items = AuditModel.query(
            stream,
            AuditModel.event_sort >= since if since else None,
            scan_index_forward=False,
            limit=limit,
            page_size=limit,
            last_evaluated_key=start,
        )
        events = [AuditEvent.from_json(item.event) for item in items]
        next_key = items.last_evaluated_key
        if next_key and len(events) == limit:
            return events, _encode_cursor(next_key, query_id)
        return events, None


# A cursor is the page's last key and the query it was made for (app, environment, since),
# checked the same way as the deploy list's: any other cursor is a 400.
def _encode_cursor(key: dict[str, Any], query_id: list[str | None]) -> str:
    text = json.dumps({"f": query_id, "k": key}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, query_id: list[str | None], stream: str) -> dict[str, Any]:
    invalid = InvalidCursorError("cursor is not one this API returned for this query")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.b64decode(padded.encode("ascii"), b"-_", validate=True))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise invalid from None
    if not isinstance(decoded, dict) or set(decoded) != {"f", "k"} or decoded["f"] != query_id:
        raise invalid
    key = decoded["k"]
    if (
        not isinstance(key, dict)
        or set(key) != {"stream", "event_sort"}
        or not all(isinstance(v, dict) and set(v) == {"S"} for v in key.values())
        or not all(isinstance(v["S"], str) and v["S"] for v in key.values())
        or key["stream"]["S"] != stream
    ):
        raise invalid
    return dict(key)
