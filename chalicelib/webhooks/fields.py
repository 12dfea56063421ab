"""Typed reads from decoded JSON and value checks (SHA, ref, name); failures are PayloadErrors."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import PayloadError

JsonObject = Mapping[str, object]

ZERO_SHA = "0" * 40
MAX_REF_LENGTH = 255
MAX_NAME_LENGTH = 255

_SHA = re.compile(r"[0-9a-f]{40}")
# C0 controls, DEL and C1 controls: nothing a ref, a repository or a user name may contain,
# and what would let a value forge log lines or terminal output.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# After decoding, a surrogate code point can only come from a lone "\ud800"-style escape: it
# is not Unicode, and would fail later when the value is encoded to be stored or logged.
_SURROGATE = re.compile(r"[\ud800-\udfff]")

_TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def describe(value: object) -> str:
    """Name a JSON value's type for an error message (never echo the value itself)."""
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def printable(text: str, limit: int = 64) -> str:
    """Make untrusted text safe to put in a reason or message: no controls, bounded length."""
    cleaned = _CONTROL.sub("?", text[: limit + 1])
    if len(cleaned) > limit:
        return cleaned[: limit - 3] + "..."
    return cleaned


def has_control(text: str) -> bool:
    """True if ``text`` holds a C0/C1 control character or DEL."""
    return _CONTROL.search(text) is not None


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def as_object(value: object, where: str) -> JsonObject:
    """``value`` itself, which must be a JSON object."""
    if not isinstance(value, dict):
        raise PayloadError(f"'{where or 'body'}' must be an object, got {describe(value)}")
    return value


def obj(data: JsonObject, key: str, where: str = "") -> JsonObject:
    """A required object member."""
    value = data.get(key)
    if value is None:
        raise PayloadError(f"missing field '{_path(where, key)}'")
    return as_object(value, _path(where, key))


def opt_obj(data: JsonObject, key: str, where: str = "") -> JsonObject | None:
    """An optional object member: absent or null gives None."""
    value = data.get(key)
    if value is None:
        return None
    return as_object(value, _path(where, key))


def string(data: JsonObject, key: str, where: str = "") -> str:
    """A required string member."""
    value = data.get(key)
    if value is None:
        raise PayloadError(f"missing field '{_path(where, key)}'")
    if not isinstance(value, str):
        raise PayloadError(f"'{_path(where, key)}' must be a string, got {describe(value)}")
    if _SURROGATE.search(value):
        raise PayloadError(f"'{_path(where, key)}' is not valid Unicode")
    return value


def opt_string(data: JsonObject, key: str, where: str = "") -> str | None:
    """An optional string member: absent or null gives None."""
    if data.get(key) is None:
        return None
    return string(data, key, where)


def boolean(data: JsonObject, key: str, where: str = "", *, default: bool = False) -> bool:
    """An optional boolean member: absent or null gives ``default``."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise PayloadError(f"'{_path(where, key)}' must be a boolean, got {describe(value)}")
    return value


def array(data: JsonObject, key: str, where: str = "") -> list[object]:
    """An optional array member: absent or null gives an empty list."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"'{_path(where, key)}' must be an array, got {describe(value)}")
    return value


def opt_epoch_seconds(data: JsonObject, key: str, where: str = "") -> int | None:
    """An optional whole number of seconds since the epoch: absent, null or a string (the
    ISO 8601 form some payloads use instead) gives None; a negative or non-integer number
    fails."""
    value = data.get(key)
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError(f"'{_path(where, key)}' must be a whole number of seconds")
    return value


def first_string(data: JsonObject | None, keys: tuple[str, ...], where: str = "") -> str:
    """The first of ``keys`` that holds a non-empty string, or ``""`` (wrong types still fail)."""
    if data is None:
        return ""
    for key in keys:
        value = opt_string(data, key, where)
        if value:
            return value
    return ""


def sha(value: str, where: str) -> str:
    """A full commit SHA: 40 hex digits, returned lower-case."""
    lowered = value.lower()
    if not _SHA.fullmatch(lowered):
        raise PayloadError(f"'{where}' is not a 40-character hex SHA")
    return lowered


def is_zero_sha(value: str) -> bool:
    """True for git's "no object" SHA, which providers send for a created or deleted ref."""
    return value == ZERO_SHA


def ref(value: str, where: str) -> str:
    """A ref or branch name, kept verbatim but refused if empty, too long or with controls."""
    if not value:
        raise PayloadError(f"'{where}' is empty")
    if len(value) > MAX_REF_LENGTH:
        raise PayloadError(f"'{where}' is longer than {MAX_REF_LENGTH} characters")
    if _CONTROL.search(value):
        raise PayloadError(f"'{where}' contains control characters")
    return value


def name(value: str, where: str) -> str:
    """A repository or user name: kept verbatim, refused if too long or with controls."""
    if len(value) > MAX_NAME_LENGTH:
        raise PayloadError(f"'{where}' is longer than {MAX_NAME_LENGTH} characters")
    if _CONTROL.search(value):
        raise PayloadError(f"'{where}' contains control characters")
    return value


def repository(value: str, where: str) -> str:
    """A repository path ("owner/name"); must not be empty."""
    if not value:
        raise PayloadError(f"'{where}' is empty")
    return name(value, where)


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """HTTP header names compared case-insensitively, as RFC 9110 says."""
    return {key.lower(): value for key, value in headers.items()}
