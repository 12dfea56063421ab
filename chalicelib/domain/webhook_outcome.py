"""What a webhook delivery came to, in Roadie's terms (the HTTP face maps it to a status).

Refusals (bad signature, unparseable, too large, the same delivery id with another body) are
errors, raised before any outcome exists; an outcome is what an authentic, parsed delivery
did. Its JSON shape (``to_json``) is what the delivery log stores and replays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class OutcomeKind(Enum):
    ACCEPTED = "accepted"  # at least one deploy was requested anew (started or queued)
    EXISTING = "existing"  # every deploy it names already existed: the same SHA, running or queued
    IGNORED = "ignored"  # an authentic event that deploys nothing; the body says why


@dataclass(frozen=True)
class WebhookOutcome:
    kind: OutcomeKind
    body: Mapping[str, Any]  # what the caller is told: provider, delivery id, deploys or reason

    @property
    def reason(self) -> str:
        """Why nothing deployed ("" unless ignored)."""
        return str(self.body.get("reason", "")) if self.kind is OutcomeKind.IGNORED else ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "body": dict(self.body)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WebhookOutcome:
        return cls(OutcomeKind(data["kind"]), dict(data["body"]))
