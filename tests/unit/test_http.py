"""Domain errors become JSON answers with the right status (chalicelib/http.py)."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.errors import NotFoundError, RoadieError, UnavailableError, ValidationError
from chalicelib.http import translate_errors


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UnavailableError("github API at api.github.com answered HTTP 502"), 503, "unavailable"),
        (NotFoundError("ref 'nope' is no branch or tag of roadie-demo/shop"), 404, "not_found"),
        (ValidationError("ref '-x' is not a valid branch or tag name"), 422, "invalid"),
    ],
)
def test_a_ref_resolution_error_becomes_a_json_answer_that_says_why(
    error: RoadieError, status: int, code: str
) -> None:
    @translate_errors
    def view() -> None:
        raise error

    response = view()
    assert response.status_code == status
    assert json.loads(response.body) == {"error": code, "message": str(error)}
