"""Webhook deliveries to events: size, content type, decoding, then per-provider parsing.

Pure: standard library only. Authenticate first with ``signatures.verify_*`` over the raw
bytes, then ``parse``. Only ``WebhookError`` subclasses come out of here, whatever the input;
each carries the HTTP status and code to answer with.

Content types: GitHub sends ``application/json`` or ``application/x-www-form-urlencoded`` (the
JSON in a ``payload`` field); a GitHub request without a Content-Type is refused (415), as the
body could be either and GitHub always names it. GitLab and Bitbucket only ever send JSON, so a
missing Content-Type is read as JSON, as Chalice itself does; any other type is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import parse_qs

from . import bitbucket, github, gitlab
from .errors import (
    MAX_BODY_BYTES,
    PayloadError,
    PayloadTooLargeError,
    SignatureError,
    UnknownProviderError,
    UnsupportedMediaTypeError,
    WebhookError,
)
from .events import CIEvent, Commit, Ignored, PushEvent, WebhookEvent
from .fields import JsonObject, as_object, has_control, lower_keys, printable
from .signatures import (
    sign_sha1,
    sign_sha256,
    verify_bitbucket,
    verify_github,
    verify_gitlab,
)

__all__ = [
    "MAX_BODY_BYTES",
    "PROVIDERS",
    "CIEvent",
    "Commit",
    "Ignored",
    "PayloadError",
    "PayloadTooLargeError",
    "PushEvent",
    "SignatureError",
    "UnknownProviderError",
    "UnsupportedMediaTypeError",
    "WebhookError",
    "WebhookEvent",
    "delivery_id",
    "event_name",
    "parse",
    "sign_sha1",
    "sign_sha256",
    "verify_bitbucket",
    "verify_github",
    "verify_gitlab",
]

PROVIDERS = ("github", "gitlab", "bitbucket")

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MAX_HEADER_VALUE = 255

_Parser = Callable[[str, str, JsonObject], WebhookEvent]
_PARSERS: dict[str, _Parser] = {
    "github": github.parse_event,
    "gitlab": gitlab.parse_event,
    "bitbucket": bitbucket.parse_event,
}
_EVENT_HEADERS = {
    "github": ("X-GitHub-Event", github.EVENT_HEADER),
    "gitlab": ("X-Gitlab-Event", gitlab.EVENT_HEADER),
    "bitbucket": ("X-Event-Key", bitbucket.EVENT_HEADER),
}
_DELIVERY_HEADERS = {
    "github": ("X-GitHub-Delivery", (github.DELIVERY_HEADER,)),
    "gitlab": ("Idempotency-Key or X-Gitlab-Event-UUID", gitlab.DELIVERY_HEADERS),
    "bitbucket": ("X-Request-UUID", (bitbucket.DELIVERY_HEADER,)),
}
_T = TypeVar("_T")


def parse(provider: str, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
    """Parse one delivery of ``provider`` (``"github"``, ``"gitlab"``, ``"bitbucket"``).

    Checks, in order: size (413), content type (415), the event and delivery headers (400),
    strict UTF-8 (400), JSON holding an object (400), then the provider's rules. Header names
    are matched case-insensitively. Does not authenticate: call ``verify_*`` first.

    >>> parse("github", b'{"zen": "Keep it simple."}',
    ...       {"Content-Type": "application/json", "X-GitHub-Event": "ping",
    ...        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}).reason
    'ping: hook is set up'
    """
    parser = _PARSERS.get(provider)
    if parser is None:
        raise UnknownProviderError(f"unknown webhook provider '{printable(provider)}'")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes"
        )
    lowered = lower_keys(headers)
    media_type = _media_type(provider, lowered)
    event = event_name(provider, lowered)
    delivery = delivery_id(provider, lowered)
    text = _text(body)
    if media_type == FORM:
        text = _form_payload(text)
    return parser(event, delivery, _json_object(text))


def event_name(provider: str, headers: Mapping[str, str]) -> str:
    """The event header (X-GitHub-Event, X-Gitlab-Event, X-Event-Key); PayloadError if absent."""
    spelled, key = _lookup(_EVENT_HEADERS, provider)
    return _header(lower_keys(headers), (key,), spelled)


def delivery_id(provider: str, headers: Mapping[str, str]) -> str:
    """The delivery's idempotency key: the same on a redelivery; PayloadError if absent.

    GitHub: X-GitHub-Delivery. GitLab: Idempotency-Key, else X-Gitlab-Event-UUID.
    Bitbucket: X-Request-UUID.
    """
    spelled, keys = _lookup(_DELIVERY_HEADERS, provider)
    return _header(lower_keys(headers), keys, spelled)


def _lookup(table: Mapping[str, _T], provider: str) -> _T:
    try:
        return table[provider]
    except KeyError:
        raise UnknownProviderError(f"unknown webhook provider '{printable(provider)}'") from None


def _header(lowered: Mapping[str, str], keys: tuple[str, ...], spelled: str) -> str:
    for key in keys:
        value = lowered.get(key, "").strip()
        if value:
            if len(value) > MAX_HEADER_VALUE or has_control(value):
                raise PayloadError(f"{spelled} header is malformed")
            return value
    raise PayloadError(f"missing {spelled} header")


def _media_type(provider: str, lowered: Mapping[str, str]) -> str:
    raw = lowered.get("content-type", "").strip()
    if not raw:
        if provider == "github":
            raise UnsupportedMediaTypeError(f"missing Content-Type; send {JSON} or {FORM}")
        return JSON
    media_type, _, parameters = raw.partition(";")
    media_type = media_type.strip().lower()
    allowed = (JSON, FORM) if provider == "github" else (JSON,)
    if media_type not in allowed:
        raise UnsupportedMediaTypeError(
            f"Content-Type '{printable(media_type)}' is not accepted; send {' or '.join(allowed)}"
        )
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaTypeError("only the UTF-8 charset is accepted")
    return media_type


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not valid UTF-8 (byte {exc.start})") from None


def _form_payload(text: str) -> str:
    """The JSON text in a form-encoded GitHub delivery's single ``payload`` field."""
    try:
        form = parse_qs(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=20,
        )
    except ValueError:  # includes UnicodeDecodeError from a bad %-escape
        raise PayloadError("form body is malformed") from None
    values = form.get("payload", [])
    if len(values) != 1:
        raise PayloadError("form body must have exactly one 'payload' field")
    return values[0]


def _reject_constant(constant: str) -> object:
    raise PayloadError(f"body is not valid JSON ({constant} is not a JSON value)")


def _json_object(text: str) -> JsonObject:
    try:
        value: object = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    # An integer too long to convert, or nesting too deep to decode.
    except (ValueError, RecursionError):
        raise PayloadError("body is not valid JSON") from None
    return as_object(value, "body")
