"""--url / --token against ROADIE_URL / ROADIE_TOKEN (then ROADIE_API_TOKEN), and the module
entry point."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cli.main import main
from cli.settings import Settings, resolve_settings

from .conftest import REPO_ROOT, Run
from .fakeapi import FakeApi

EMPTY = {"deploys": [], "next_cursor": None}


def test_environment_variables_give_url_and_token(api: FakeApi, run: Run) -> None:
    api.on("GET", "/deploys", (200, EMPTY))
    result = run("list", env={"ROADIE_URL": api.url + "/", "ROADIE_TOKEN": "from-env"})
    assert result.code == 0, result.err
    assert api.requests[0].headers["authorization"] == "Bearer from-env"
    assert api.requests[0].path == "/deploys"  # a trailing slash in the URL is fine


def test_roadie_api_token_is_the_fallback(api: FakeApi, run: Run) -> None:
    api.on("GET", "/deploys", (200, EMPTY))
    env = {"ROADIE_URL": api.url, "ROADIE_API_TOKEN": "stack-token"}
    assert run("list", env=env).code == 0
    env["ROADIE_TOKEN"] = "client-token"
    assert run("list", env=env).code == 0
    assert [r.headers["authorization"] for r in api.requests] == [
        "Bearer stack-token",
        "Bearer client-token",
    ]


@pytest.mark.parametrize("where", ["before", "after"])
def test_flags_beat_environment_variables(api: FakeApi, run: Run, where: str) -> None:
    api.on("GET", "/deploys", (200, EMPTY))
    flags = ["--url", api.url, "--token", "from-flag"]
    argv = [*flags, "list"] if where == "before" else ["list", *flags]
    env = {"ROADIE_URL": "http://127.0.0.1:9/nowhere", "ROADIE_TOKEN": "from-env"}
    result = run(*argv, env=env)
    assert result.code == 0, result.err
    assert api.requests[0].headers["authorization"] == "Bearer from-flag"


def test_no_token_anywhere_is_a_clear_error_and_no_request(api: FakeApi, run: Run) -> None:
    result = run("list", env={"ROADIE_URL": api.url})
    assert result.code == 2
    assert "no API token: pass --token or set ROADIE_TOKEN" in result.err
    assert api.requests == []


def test_the_default_url_is_the_local_stack() -> None:
    settings = resolve_settings(None, None, {"ROADIE_TOKEN": "t"})
    assert settings == Settings(url="http://127.0.0.1:8000", token="t")
    empty = resolve_settings(None, None, {"ROADIE_URL": "", "ROADIE_API_TOKEN": "s"})
    assert empty == Settings(url="http://127.0.0.1:8000", token="s")


def test_python_m_cli_runs_with_the_real_environment(api: FakeApi) -> None:
    """The module entry point, in a plain interpreter, reading ROADIE_URL / ROADIE_TOKEN."""
    api.on("GET", "/deploys", (200, EMPTY))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ROADIE_") and "proxy" not in k.lower()
    }
    env.update(ROADIE_URL=api.url, ROADIE_TOKEN="subprocess-token", http_proxy="http://127.0.0.1:9")
    done = subprocess.run(
        [sys.executable, "-m", "cli", "list"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "no deploys\n", "")
    assert api.requests[0].headers["authorization"] == "Bearer subprocess-token"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("deploy", "status", "list", "cancel", "rollback", "freeze", "unfreeze", "env"):
        assert f"    {command} " in out
    assert "ROADIE_URL" in out and "ROADIE_TOKEN" in out
