"""Value objects validate what they hold."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.model import DeployRequest, Requester, is_ref

SHA = "a" * 40


def test_deploy_request_accepts_a_full_sha() -> None:
    req = DeployRequest("shop", "production", SHA, Requester("ana", "api"))
    assert req.sha == SHA


@pytest.mark.parametrize("sha", ["A" * 40, "a" * 39, "a" * 41, "g" * 40, "", "main;rm -rf /"])
def test_deploy_request_rejects_anything_but_forty_hex(sha: str) -> None:
    with pytest.raises(ValidationError):
        DeployRequest("shop", "production", sha, Requester("ana", "api"))


@pytest.mark.parametrize(
    "ref,ok",
    [
        ("main", True),
        ("release/2026-11", True),
        ("v1.2.3", True),
        ("-upload-pack=evil", False),
        ("main;rm -rf /", False),
        ("a..b", False),
        ("with space", False),
        ("$(reboot)", False),
    ],
)
def test_refs_are_plain_names(ref: str, ok: bool) -> None:
    assert is_ref(ref) is ok
