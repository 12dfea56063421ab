"""Delivery records written before outcomes had kinds still replay the first answer."""

from __future__ import annotations

import pytest

from chalicelib.adapters.idempotency import upgraded
from chalicelib.domain.webhook_outcome import OutcomeKind, WebhookOutcome
from chalicelib.http import webhook_response

BODY = {"provider": "github", "delivery_id": "d-1", "result": "ignored", "reason": "ping"}


@pytest.mark.parametrize(
    ("status", "kind"), [(200, OutcomeKind.IGNORED), (202, OutcomeKind.ACCEPTED)]
)
def test_a_record_with_a_status_replays_that_status_and_body(
    status: int, kind: OutcomeKind
) -> None:
    outcome = WebhookOutcome.from_json(upgraded({"status": status, "body": BODY}))
    assert outcome == WebhookOutcome(kind, BODY)
    assert webhook_response(outcome).status_code == status


def test_a_record_with_a_kind_is_read_as_it_is() -> None:
    record = WebhookOutcome(OutcomeKind.EXISTING, BODY).to_json()
    assert upgraded(record) == record


def test_a_record_with_a_status_no_service_ever_stored_is_not_guessed() -> None:
    with pytest.raises(KeyError):
        upgraded({"status": 500, "body": BODY})
