"""Bounded JSON decoding for untrusted request bodies: nesting depth, number length, constants
and duplicate keys are checked without recursion, so no input can raise ``RecursionError``.

Pure: standard library only. ``loads`` raises ``JsonTextError`` (a ``ValueError``) with a
message fit for a 400 answer; ``find_surrogate`` names the first string holding a lone
surrogate (a ``"\\ud800"`` escape decodes to one: it is not Unicode and cannot be stored).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 32  # a 64-bit integer has 20 digits; nothing in our payloads needs more

# A JSON string literal, escapes included (the unrolled form never backtracks).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # read as signed bytes: +1, -1
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class JsonTextError(ValueError):
    """The text is not a JSON document this API decodes; the message says why."""


class TooDeepError(JsonTextError):
    """Arrays and objects nest deeper than ``MAX_DEPTH``."""


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Raise ``TooDeepError`` if brackets outside string literals nest deeper than ``limit``,
    ``JsonTextError`` if they close more than they open. Linear and at C speed, no recursion:
    strip the string literals, keep the brackets as +1/-1 steps, take the running sum's max."""
    raw = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    steps = memoryview(raw.translate(_STEP, _NOT_BRACKET)).cast("b")
    depths = list(accumulate(steps, initial=0))
    if max(depths) > limit:
        raise TooDeepError(f"JSON nests deeper than {limit} levels")
    if min(depths) < 0:
        raise JsonTextError("brackets do not balance")


def _number(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonTextError(f"a number is longer than {MAX_NUMBER_CHARS} characters")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonTextError(f"a number is longer than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise JsonTextError(f"{text[:MAX_NUMBER_CHARS]} is too large a number")
    return value


def _constant(name: str) -> Any:
    raise JsonTextError(f"{name} is not a JSON value")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonTextError(f"key {key[:64]!r} appears twice")
        out[key] = value
    return out


def loads(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode ``text`` as JSON within the limits; ``JsonTextError`` says why not."""
    check_depth(text, max_depth)
    try:
        return json.loads(
            text,
            parse_int=_number,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_unique,
        )
    except JsonTextError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonTextError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError):  # neither can happen after the checks; never a 500
        raise JsonTextError("not valid JSON") from None


def find_surrogate(value: Any) -> str | None:
    """The path (``reason``, ``trigger.commits[0].message``) of the first key or string in
    ``value`` holding a lone surrogate, or None. Iterative: any depth is safe."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return where or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and _SURROGATE.search(key):
                    return where or "body"
                stack.append((path, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
    return None


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None
