"""Functional fixtures: one embedded stack (moto server + host agent) per test process.

Each test starts from a clean slate: moto is reset and everything is provisioned again, and the
hosts' sandbox directories are recreated (about a second).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.lifecycle import COMPLETED_STATUSES
from devstack.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789"
EVENTS = ROOT / "tests" / "events"
CORPUS_SECRETS = json.loads((EVENTS / "secrets.json").read_text())
CORPUS_CONFIG = str(Path(__file__).parent / "pipeline-corpus.toml")
TERMINAL = {status.value for status in COMPLETED_STATUSES}  # every status a deploy ends in


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("roadie-state")
    options = StackOptions.from_env(
        api_token=TOKEN,
        github_secret=CORPUS_SECRETS["github_webhook_secret"],
        gitlab_token=CORPUS_SECRETS["gitlab_secret_token"],
        bitbucket_secret=CORPUS_SECRETS["bitbucket_webhook_secret"],
        state_dir=state,
        hosts_dir=state / "hosts",
        config="",
        port=0,
    )
    local = LocalStack(options).start()
    yield local
    local.stop()


@pytest.fixture
def fresh_stack(stack: LocalStack) -> LocalStack:
    stack.reset()
    return stack


@pytest.fixture(scope="session")
def api_url(stack: LocalStack) -> str:
    """The Chalice app served over real HTTP on 127.0.0.1 (once per test process)."""
    return stack.start_api(port=0)


@pytest.fixture
def corpus_stack(stack: LocalStack) -> LocalStack:
    """The stack routing the webhook corpus' repositories, one host per environment."""
    stack.reset(config=CORPUS_CONFIG, host_counts={"production": 1, "staging": 1})
    return stack


@pytest.fixture
def client(stack: LocalStack) -> Iterator[Any]:
    """Chalice's test client (no HTTP); the test picks its state (fresh_stack, corpus_stack)."""
    from chalice.test import Client

    import app as chalice_app

    with Client(chalice_app.app, stage_name="dev", project_dir=str(ROOT)) as test_client:
        yield test_client


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def wait_for(client: Any, deploy_id: str, timeout: float = 90) -> dict[str, Any]:
    """Poll the API until the deploy finishes; fail the test if it does not."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.http.get(f"/deploys/{deploy_id}", headers=auth())
        assert response.status_code == 200, response.body
        record = response.json_body
        if record["status"] in TERMINAL:
            return dict(record)
        if time.monotonic() > deadline:
            pytest.fail(f"deploy {deploy_id} still {record['status']} after {timeout}s")
        time.sleep(0.2)


def hosts(stack: LocalStack, env: str = "production") -> list[dict[str, str]]:
    return list(stack.provisioned.hosts[f"shop#{env}"])
