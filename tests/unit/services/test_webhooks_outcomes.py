"""The webhook use case speaks in outcomes, not HTTP: no status number is left in it."""

from __future__ import annotations

import ast
from pathlib import Path

from chalicelib.services import webhooks

HTTP_STATUSES = range(100, 600)


def _status_like_literals(source: str) -> list[tuple[int, int]]:
    """Integer literals in the HTTP status range, outside named module constants."""
    tree = ast.parse(source)
    named = {
        id(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and type(node.value) is int
        and node.value in HTTP_STATUSES
        and id(node) not in named
    ]


def test_the_webhook_service_holds_no_http_status() -> None:
    source = Path(webhooks.__file__).read_text()
    assert _status_like_literals(source) == []
    assert "status: int" not in source


def test_the_check_catches_a_status_literal() -> None:
    assert _status_like_literals('x = {"status": 202}\nLIMIT = 200\n') == [(1, 202)]
