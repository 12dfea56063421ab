"""`python -m infra.tokens`: the entry stored in the api-tokens SecureString."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from chalicelib.adapters.secrets import ApiTokens
from infra import tokens


def test_hash_prints_the_entry_the_api_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-token-of-some-length\n"))
    assert tokens.main(["hash", "ci-bot"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry == {"ci-bot": hashlib.sha256(b"a-token-of-some-length").hexdigest()}


def test_new_shows_the_token_once_on_stderr_and_stores_only_its_hash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert tokens.main(["new", "alice"]) == 0
    captured = capsys.readouterr()
    token = captured.err.rsplit(" ", 1)[-1].strip()
    assert token not in captured.out
    assert json.loads(captured.out) == {"alice": hashlib.sha256(token.encode()).hexdigest()}

    class Stored(ApiTokens):
        def _hashes(self) -> dict[str, str]:
            return dict(json.loads(captured.out))

    assert Stored("/roadie/dev/api-tokens", 60).identify(token) == "alice"


def test_short_tokens_and_odd_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert tokens.main(["hash", "ci-bot"]) == 2
    assert tokens.main(["new", "bad name"]) == 2
