"""Correlation keys of the work in progress (request or invocation), for every log line.

Standard library only, so every layer may use it: services bind what they learn, the
logging adapter reads it.

A handler opens ``bound(...)`` around one request or invocation; code inside adds what it
learns (``bind(deploy_id=...)``); leaving the block restores the keys it found, so nothing
leaks into the next request. A ``ContextVar``: each thread (the local stack runs functions
side by side) sees its own keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

KEYS = ("deploy_id", "delivery_id", "execution", "app", "environment", "phase")
# Not a log key: what set the work off when the handler knows it ("schedule" for the
# reconciler), for the audit trail.
SOURCE = "source"

# None: no request or invocation is in progress, and nothing is bound (so no key can outlive
# the work it belongs to, even where code runs outside a handler, as tests do)
_current: ContextVar[Mapping[str, str] | None] = ContextVar("roadie_correlation", default=None)


def current() -> dict[str, str]:
    return dict(_current.get() or {})


def bind(**keys: str | None) -> None:
    """Add ``keys`` (None values are skipped) until the enclosing ``bound`` block ends;
    outside one, nothing."""
    now = _current.get()
    given = {k: str(v) for k, v in keys.items() if v is not None and v != ""}
    if given and now is not None:
        _current.set(MappingProxyType({**now, **given}))


@contextmanager
def bound(**keys: str | None) -> Iterator[None]:
    """The keys for one request or invocation; everything bound inside is cleared after."""
    token = _current.set(MappingProxyType({}))
    try:
        bind(**keys)
        yield
    finally:
        _current.reset(token)


def log_keys() -> dict[str, str]:
    """The keys a log line carries (``KEYS`` only, in that order)."""
    keys = _current.get() or {}
    return {k: keys[k] for k in KEYS if k in keys}
