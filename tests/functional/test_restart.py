"""`make serve` as an operator runs it: a real `python -m devstack serve` process with its own
state dir and port, stopped with SIGTERM or killed with SIGKILL, and started again.

One scenario, in order, shares two processes (each start provisions the stack: ~8 s):
1. serve #1: deploy v1 (succeeds); exercise every secret (token, signed webhook, the token in a
   query string, a failed auth); start v2 with a hung switch in batch 2 and `kill -9` serve
   once batch 1 switched: a mixed fleet, as a dropped laptop leaves it;
2. serve #2: v1's record, the hosts (same ids) and the migration log are still there; the
   reconciler finds v2's execution gone and rolls every host back: one release. Then v2 with a
   migration really hanging (the test holds the database locked), and SIGTERM stops serve
   within the 10 s goal, killing the script.
Then every output (logs, the whole state dir, every response) is searched for the secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.domain.lifecycle import COMPLETED_STATUSES
from devstack.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "ROADIE_API_TOKEN": "tok-7f3a9c1e5b2d8046-zebra",
    "ROADIE_GITHUB_SECRET": "gh-secret-91b4e6d2c8a7-okapi",
    "ROADIE_GITLAB_TOKEN": "gl-token-3d5f7a9b1c2e-lemur",
    "ROADIE_BITBUCKET_SECRET": "bb-secret-6e8c0a2f4b1d-quoll",
}
TERMINAL = {status.value for status in COMPLETED_STATUSES}  # every status a deploy ends in
STOP_GOAL = 10.0


@dataclass
class Serve:
    """One `python -m devstack serve` process (and the record of everything it said)."""

    state: Path
    port: int
    logs: list[Path] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)  # every HTTP answer seen, in full
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.state.parent / f"serve-{len(self.logs) + 1}.log"
        self.logs.append(log)
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("ROADIE_", "AWS_", "MOTO_", "POWERTOOLS_"))
            },
            **SECRETS,
            "ROADIE_STATE_DIR": str(self.state),
            "ROADIE_PORT": str(self.port),
            "ROADIE_RECONCILE_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devstack", "serve"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while "Roadie API ready" not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> float:
        """Signal the process and wait for it; returns how long it took to end."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return time.monotonic() - started

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {SECRETS['ROADIE_API_TOKEN']}"}
        headers.update(kwargs.pop("headers", {}))
        response = requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        self.responses.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def record(self, deploy_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/deploys/{deploy_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def until(self, deploy_id: str, done: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self.record(deploy_id)
            if done(record):
                return record
            if time.monotonic() > deadline:
                pytest.fail(f"{deploy_id}: still {record['status']}/{record['phase']}")
            time.sleep(0.2)

    def deploy(self, **body: str) -> str:
        payload = {"app": "shop", "environment": "production", "reason": "restart test", **body}
        response = self.request("POST", "/deploys", json=payload)
        assert response.status_code == 202, response.text
        return str(response.json()["deploy_id"])

    def hosts(self) -> list[dict[str, str]]:
        """Production hosts by name, from what serve keeps (hosts.json)."""
        kept = json.loads((self.state / "hosts.json").read_text())
        return sorted(kept["shop#production"], key=lambda h: h["name"])

    def releases(self) -> dict[str, str]:
        out = {}
        for host in self.hosts():
            link = self.state / "hosts" / host["instance_id"] / "shop" / "current"
            out[host["instance_id"]] = Path(os.readlink(link)).name if link.is_symlink() else ""
        return out

    def migration_log(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.state / "db" / "shop-production.sqlite3") as conn:
            return conn.execute("SELECT * FROM roadie_migration_log ORDER BY 1").fetchall()

    def fault(self, name: str, phase: str) -> Path:
        host = next(h for h in self.hosts() if h["name"] == name)
        path = self.state / "hosts" / host["instance_id"] / f"fault.{phase}"
        path.write_text("hang\n")
        return path


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    base = tmp_path_factory.mktemp("serve")
    server = Serve(state=base / "state", port=free_port())
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def shas(serve: Serve) -> dict[str, str]:
    repo = serve.state / "sources" / "shop"
    git = ["git", "--git-dir", str(repo)]
    main = subprocess.run([*git, "rev-parse", "main"], capture_output=True, text=True, check=True)
    v1 = subprocess.run(
        [*git, "rev-parse", "v1.0.0^{commit}"], capture_output=True, text=True, check=True
    )
    return {"v1": v1.stdout.strip(), "v2": main.stdout.strip()}


def github_push(serve: Serve) -> requests.Response:
    """A push to a branch nothing deploys, signed with the GitHub secret: 2xx, no deploy."""
    payload = json.loads((ROOT / "tests/events/github/push/1.json").read_text())
    payload["repository"]["full_name"] = "roadie-demo/shop"
    payload["ref"] = "refs/heads/not-deployed"
    body = json.dumps(payload).encode()
    secret = SECRETS["ROADIE_GITHUB_SECRET"].encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "restart-test-1",
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
    }
    return serve.request("POST", "/webhooks/github", data=body, headers=headers)


def batch_one_switched(serve: Serve) -> Any:
    batch_one = {h["instance_id"] for h in serve.hosts()[:2]}

    def check(record: dict[str, Any]) -> bool:
        switched = {
            h["instance_id"]
            for h in record["hosts"]
            for s in h["steps"]
            if s["command"] == "switch" and s["status"] == "succeeded"
        }
        return batch_one <= switched

    return check


def test_kill_9_mid_rollout_then_restart_keeps_state_and_ends_on_one_release(
    serve: Serve, shas: dict[str, str]
) -> None:
    first = serve.deploy(sha=shas["v1"])
    assert serve.until(first, lambda r: r["status"] in TERMINAL)["status"] == "succeeded"
    v1_record = serve.record(first)
    v1_migrations = serve.migration_log()
    hosts = serve.hosts()
    # every secret in use: the token, a signed webhook, the token in a query string, a bad auth
    assert github_push(serve).status_code in (200, 202)
    token = SECRETS["ROADIE_API_TOKEN"]
    assert serve.request("GET", f"/deploys?limit=1&access_token={token}").status_code < 500
    bad = serve.request("GET", "/deploys", headers={"Authorization": "Bearer no"})
    assert bad.status_code == 401
    # v2 with a hung switch in batch 2, killed once batch 1 runs the new release
    hung = serve.fault("shop-production-3", "switch")
    second = serve.deploy(ref="main")
    serve.until(second, batch_one_switched(serve))
    serve.stop(signal.SIGKILL)
    mixed = serve.releases()
    assert {mixed[h["instance_id"]] for h in hosts[:2]} == {shas["v2"]}
    assert shas["v1"] in mixed.values()  # a mixed fleet, as a dropped laptop leaves it
    hung.unlink()  # the operator clears the fault; the restart must do the rest

    serve.start()
    # kept: the same hosts (ids, names, sandboxes as they were), records, migration log
    assert serve.hosts() == hosts
    assert f"={hosts[0]['instance_id']}" in serve.logs[-1].read_text()
    assert serve.record(first) == v1_record
    assert serve.migration_log()[: len(v1_migrations)] == v1_migrations != []
    # the reconciler finds the execution gone and rolls every host back: one release
    ended = serve.until(second, lambda r: r["status"] in TERMINAL)
    print(f"after kill -9 and restart: {ended['status']}: {ended['error']}")
    assert ended["status"] == "rolled_back", ended
    assert "no longer exists" in json.dumps(ended["error"])
    assert set(serve.releases().values()) == {shas["v1"]}
    # the record ends first; the finish hands the environment on in a second write
    deadline = time.monotonic() + 10
    environment = serve.request("GET", "/environments/shop/production").json()
    while environment["running_deploy_id"] is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        environment = serve.request("GET", "/environments/shop/production").json()
    assert environment["current_sha"] == shas["v1"]
    assert environment["current_deploy_id"] == first
    assert environment["running_deploy_id"] is None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def test_sigterm_stops_serve_within_10s_while_a_migration_hangs(serve: Serve) -> None:
    # a real hung script: the migration waits (30 s) for the database this test holds locked
    with sqlite3.connect(serve.state / "db" / "shop-production.sqlite3") as lock:
        lock.execute("BEGIN EXCLUSIVE")
        deploy_id = serve.deploy(ref="main")
        serve.until(deploy_id, lambda r: r["phase"] == "migrating")
        records = serve.state / "hosts" / ".agent"
        deadline = time.monotonic() + 30
        while not list(records.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        scripts = [int(p.name) for p in records.glob("*")]
        assert scripts and all(alive(pid) for pid in scripts)
        took = serve.stop(signal.SIGTERM)
        print(f"serve stopped {took:.2f}s after SIGTERM, a migration hanging")
        assert serve.proc is not None and serve.proc.returncode == 0
        assert took < STOP_GOAL
        assert not [pid for pid in scripts if alive(pid)]  # no script left running
        lock.rollback()


def test_no_secret_in_any_log_state_file_or_response(serve: Serve) -> None:
    outputs: dict[str, bytes] = {str(log): log.read_bytes() for log in serve.logs}
    outputs.update({f"response {i}": r.encode() for i, r in enumerate(serve.responses)})
    # the whole state dir: journal, hosts.json, host sandboxes and their logs, databases, repo
    for path in serve.state.rglob("*"):
        if path.is_file() and not path.is_symlink():
            outputs[str(path)] = path.read_bytes()
    assert len(outputs) > 50 and any("dynamodb.journal" in name for name in outputs)
    banner = serve.logs[0].read_text()
    length = len(SECRETS["ROADIE_API_TOKEN"])
    assert f"ROADIE_API_TOKEN=****** (set, {length} chars)" in banner
    assert "GET /deploys HTTP/1.1" in banner  # the access log is there, without its query
    found = [
        f"{name}: {key}"
        for name, data in outputs.items()
        for key, secret in SECRETS.items()
        if secret.encode() in data
    ]
    assert found == []
