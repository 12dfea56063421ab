"""Loads the webhook corpus copied into tests/events (exact bodies, headers, facts, vectors)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
PROVIDERS = ("github", "gitlab", "bitbucket")


@dataclass(frozen=True)
class Case:
    """One stored delivery: the exact body bytes, the headers to send, and its meta file."""

    case_id: str
    body: bytes
    headers: dict[str, str]
    meta: dict[str, Any]

    @property
    def provider(self) -> str:
        return self.case_id.split("/")[0]

    @property
    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = self.meta["facts"]
        return facts

    def payload(self) -> dict[str, Any]:
        """A fresh decoded copy of the body, to mutate."""
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded

    def with_payload(self, mutate: Callable[[dict[str, Any]], object]) -> bytes:
        """The body re-serialised after ``mutate`` changed a copy of it."""
        payload = self.payload()
        mutate(payload)
        return json.dumps(payload).encode("utf-8")

    def with_headers(self, **changes: str | None) -> dict[str, str]:
        """The headers with some replaced (``X_GitHub_Event="ping"``) or removed (None)."""
        headers = dict(self.headers)
        for key, value in changes.items():
            name = key.replace("_", "-")
            for existing in [h for h in headers if h.lower() == name.lower()]:
                del headers[existing]
            if value is not None:
                headers[name] = value
        return headers


@cache
def case_ids(provider: str) -> tuple[str, ...]:
    """Every case of ``provider``, in index order."""
    index = json.loads((EVENTS_DIR / provider / "index.json").read_text("utf-8"))
    return tuple(entry["case_id"] for entry in index)


@cache
def load_case(case_id: str) -> Case:
    meta = json.loads((EVENTS_DIR / f"{case_id}.meta.json").read_text("utf-8"))
    return Case(
        case_id=case_id,
        body=(EVENTS_DIR / f"{case_id}.json").read_bytes(),
        headers=dict(meta["headers"]),
        meta=meta,
    )


@cache
def secrets() -> dict[str, str]:
    loaded: dict[str, str] = json.loads((EVENTS_DIR / "secrets.json").read_text("utf-8"))
    return loaded


def vectors() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(
        (EVENTS_DIR / "vectors" / "hmac_vectors.json").read_text("utf-8")
    )
    return loaded


def vector_payload(vector: dict[str, Any]) -> bytes:
    if "payload_file" in vector:
        path: str = vector["payload_file"]
        return (EVENTS_DIR / path).read_bytes()
    payload: str = vector["payload_utf8"]
    return payload.encode("utf-8")
