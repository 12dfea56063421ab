"""A webhook outcome's JSON shape is what the delivery log stores and replays."""

from __future__ import annotations

import pytest

from chalicelib.domain.webhook_outcome import OutcomeKind, WebhookOutcome


@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_an_outcome_survives_its_json_shape(kind: OutcomeKind) -> None:
    outcome = WebhookOutcome(kind, {"provider": "gitlab", "deploys": [{"existing": True}]})
    stored = outcome.to_json()
    assert stored["kind"] == kind.value and "status" not in stored
    assert WebhookOutcome.from_json(stored) == outcome


def test_only_an_ignored_outcome_has_a_reason() -> None:
    body = {"result": "ignored", "reason": "ping"}
    assert WebhookOutcome(OutcomeKind.IGNORED, body).reason == "ping"
    assert WebhookOutcome(OutcomeKind.ACCEPTED, {"reason": "x"}).reason == ""
