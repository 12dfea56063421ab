"""Logs and traces, wired once: one Powertools ``Logger`` (JSON, service ``roadie``) and one
``Tracer`` for every function, and the correlation scope of each request or invocation.

Roadie's modules log through standard ``logging.getLogger("roadie.<area>")`` loggers; they
propagate to the Powertools logger's handler (the ``roadie`` logger), so every line is one
JSON object. A filter on that handler adds the correlation keys bound now
(``domain.correlation``) and masks secrets: any value registered with ``keep_secret`` (the
webhook secrets and SCM tokens as they are read), bearer tokens and signature digests.
Both are built on first use, never at import (``POWERTOOLS_LOG_LEVEL`` sets the level;
``POWERTOOLS_TRACE_DISABLED`` or running outside Lambda makes the tracer a no-op).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from ..domain import correlation

SERVICE = "roadie"
MASK = "***"
F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_logger: Logger | None = None
_tracer: Tracer | None = None
_secrets: set[str] = set()
# "Bearer <token>", "token=<...>", and HMAC digests as signature headers carry them
_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[^\s\"'\\,}]+"
    r"|((?:token|secret|password|signature)[\"']?\s*[=:]\s*[\"']?)[^\s\"'\\,}]+"
    r"|(sha(?:1|256)=)[0-9a-f]{16,}"
)
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

_LOGGED = "_roadie_logged"

log = logging.getLogger(f"{SERVICE}.handler")


def keep_secret(*values: str) -> None:
    """Never let these values appear in a log line (registered as secrets are read)."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def mask(text: str) -> str:
    for value in sorted(_secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return _PATTERNS.sub(
        lambda m: (m.group(1) or m.group(2) or m.group(3) or "") + MASK,
        text,
    )


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


class CorrelationFilter(logging.Filter):
    """Adds the bound correlation keys to each record and masks secrets in what it says."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in correlation.log_keys().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        if record.args or _secrets or isinstance(record.msg, str):
            record.msg = mask(record.getMessage())
            record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED and key not in correlation.KEYS:
                record.__dict__[key] = _masked(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        # Chalice logs an unhandled view error again, outside the request's scope: once is
        # enough, and ours has the request's keys
        error = record.exc_info[1] if record.exc_info else None
        return not (getattr(error, _LOGGED, False) and record.name == SERVICE)


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON, with every secret masked in the finished line (the stack trace and
    its structured copy included): the last guard before a line leaves the process."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def logger() -> Logger:
    """The one Powertools logger (the ``roadie`` logger's JSON handler)."""
    global _logger
    with _lock:
        if _logger is None:
            built = Logger(service=SERVICE, logger_formatter=MaskingFormatter())
            built.registered_handler.addFilter(CorrelationFilter())
            _logger = built
        return _logger


def tracer() -> Tracer:
    """The one Powertools tracer (patches botocore, so every AWS client call is traced)."""
    global _tracer
    with _lock:
        if _tracer is None:
            _tracer = Tracer(service=SERVICE)
        return _tracer


def _event_keys(event: Any) -> dict[str, str | None]:
    """Correlation keys a task's event carries (the state machine passes ids, not hosts)."""
    if not isinstance(event, Mapping):
        return {}
    found: dict[str, str | None] = {}
    for key in ("deploy_id", "execution", "app", "environment", "phase"):
        value = event.get(key)
        if isinstance(value, str):
            found[key] = value
    execution = event.get("execution_arn") or event.get("Execution")
    if isinstance(execution, str):
        found.setdefault("execution", execution)
    return found


def invocation(name: str, *, source: str | None = None) -> Callable[[F], F]:
    """A Lambda handler's scope: the logger and tracer exist, the event's ids are bound for
    its log lines (and cleared after), an unexpected error is logged with its stack and
    raised again (the state machine's Retry/Catch decides), the call is a traced subsegment."""

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        def run(event: Any, *rest: Any) -> Any:
            logger()
            traced = tracer().capture_method(handler)
            with correlation.bound(**_event_keys(event)):
                if source is not None:
                    correlation.bind(**{correlation.SOURCE: source})
                try:
                    return traced(event, *rest)
                except Exception:
                    log.exception("%s failed", name, extra={"function": name})
                    raise

        return run  # type: ignore[return-value]

    return wrap


@contextmanager
def request_scope(**keys: str | None) -> Iterator[None]:
    """One HTTP request's scope: the logger exists, ``keys`` (path parameters) are bound, an
    unexpected error is logged with its stack and raised again (Chalice answers 500)."""
    logger()
    with correlation.bound(**keys):
        try:
            yield
        except Exception as exc:
            log.exception("unexpected error handling the request")
            setattr(exc, _LOGGED, True)
            raise
