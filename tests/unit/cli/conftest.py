"""Fixtures for the CLI's tests: a fake API per test and a runner for ``cli.main.main``."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # so that a bare `pytest` finds the cli package
    sys.path.insert(0, str(REPO_ROOT))

from cli.main import main  # noqa: E402

from .fakeapi import FakeApi, Running  # noqa: E402

TOKEN = "cli-test-token"


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture(scope="session")
def served_api() -> Iterator[FakeApi]:
    """One fake API server per test process, shut down at the end."""
    running = Running()
    try:
        yield running.fake
    finally:
        running.stop()


@pytest.fixture
def api(served_api: FakeApi) -> FakeApi:
    """The fake with no routes and no recorded requests."""
    served_api.reset()
    return served_api


@pytest.fixture
def run(api: FakeApi) -> Run:
    """run(*argv, env=None) -> Result; ``env`` defaults to ROADIE_URL/ROADIE_TOKEN for the fake.
    Polling never really sleeps."""

    def invoke(*argv: str, env: dict[str, str] | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        environ = {"ROADIE_URL": api.url, "ROADIE_TOKEN": TOKEN} if env is None else env
        code = main(list(argv), environ=environ, out=out, err=err, sleep=lambda _: None)
        return Result(code, out.getvalue(), err.getvalue())

    return invoke
