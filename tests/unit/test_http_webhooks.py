"""A webhook's outcome and its refusals answer with the statuses README "Git push triggers"
documents (chalicelib/http.py)."""

from __future__ import annotations

import json

import pytest

from chalicelib.adapters.idempotency import DeliveryReusedError
from chalicelib.domain.webhook_outcome import OutcomeKind, WebhookOutcome
from chalicelib.http import WEBHOOK_STATUS, translate_errors, webhook_response
from chalicelib.webhooks import (
    PayloadError,
    PayloadTooLargeError,
    SignatureError,
    UnsupportedMediaTypeError,
)

DOCUMENTED = {OutcomeKind.ACCEPTED: 202, OutcomeKind.EXISTING: 202, OutcomeKind.IGNORED: 200}


def test_every_outcome_kind_has_its_documented_status() -> None:
    assert WEBHOOK_STATUS == DOCUMENTED
    assert set(WEBHOOK_STATUS) == set(OutcomeKind)


@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_an_outcome_answers_its_status_with_its_body(kind: OutcomeKind) -> None:
    body = {"provider": "github", "delivery_id": "d-1", "result": "deploy", "deploy_id": "x"}
    response = webhook_response(WebhookOutcome(kind, body))
    assert response.status_code == DOCUMENTED[kind]
    assert json.loads(response.body) == body
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SignatureError("no valid signature"), 401),
        (PayloadError("not JSON"), 400),
        (DeliveryReusedError("this delivery id was already used with a different body"), 409),
        (PayloadTooLargeError("too big"), 413),
        (UnsupportedMediaTypeError("text/plain"), 415),
    ],
)
def test_a_refused_delivery_answers_its_documented_status(error: Exception, status: int) -> None:
    @translate_errors
    def view() -> None:
        raise error

    response = view()
    assert response.status_code == status
    assert json.loads(response.body)["message"] == str(error)
