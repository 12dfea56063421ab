"""What the local stack keeps across a restart, and what it never prints: the DynamoDB journal,
orphaned host scripts, the masked banner and the path-only access log (devstack/)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.hostagent import HostAgent, _start_time, reap_orphans
from devstack.persist import Journal
from devstack.stack import StackOptions, _access_log

SECRETS = {
    "api_token": "tok-7f3a9c1e5b2d8046-zebra",
    "github_secret": "gh-secret-91b4e6d2c8a7-okapi",
    "gitlab_token": "gl-token-3d5f7a9b1c2e-lemur",
    "bitbucket_secret": "bb-secret-6e8c0a2f4b1d-quoll",
}


def test_the_journal_replays_complete_lines_only(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "aws" / "dynamodb.journal")
    journal.open()
    journal.append("PutItem", '{"TableName": "t", "Item": {"pk": {"S": "1"}}}')
    journal.append("DeleteItem", '{"TableName": "t", "Key": {"pk": {"S": "1"}}}')
    journal.close()
    with journal.path.open("a") as handle:
        handle.write('{"action": "PutItem", "body": "{\\"Tab')  # killed mid-write
    assert [action for action, _ in journal.entries()] == ["PutItem", "DeleteItem"]
    assert journal.written == 2


def test_compaction_leaves_one_put_per_item_in_wire_format(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "dynamodb.journal")
    journal.open()
    for n in range(5):
        journal.append("UpdateItem", json.dumps({"n": n}))
    journal.close()
    items = {"t": [{"pk": {"S": "a"}, "blob": {"B": b"\x00\x01"}}], "empty": []}
    assert journal.compact(items) == 1
    (entry,) = list(journal.entries())
    assert entry[0] == "PutItem"
    assert json.loads(entry[1]) == {
        "TableName": "t",
        "Item": {"pk": {"S": "a"}, "blob": {"B": "AAE="}},
    }


def test_the_banner_masks_every_secret(tmp_path: Path) -> None:
    options = StackOptions.from_env(**SECRETS, state_dir=tmp_path, persist=True)
    banner = "\n".join(options.describe())
    for secret in SECRETS.values():
        # not the secret, nor any four characters of it in a row
        parts = {secret[i : i + 4] for i in range(len(secret) - 3)}
        assert not [p for p in parts if p in banner], secret
    assert "ROADIE_API_TOKEN=****** (set, 26 chars)" in banner
    assert "kept across restarts" in banner
    default = "\n".join(StackOptions.from_env(state_dir=tmp_path).describe())
    assert "ROADIE_GITHUB_SECRET=****** (the documented default)" in default
    assert "roadie-local" not in default


class FakeHandler:
    def address_string(self) -> str:
        return "127.0.0.1"

    def log_date_time_string(self) -> str:
        return "01/Dec/2026 07:00:00"


def test_the_access_log_keeps_the_path_and_drops_the_query(
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = SECRETS["api_token"]
    _access_log(FakeHandler(), '"%s" %s %s', f"GET /deploys?access_token={token} HTTP/1.1", 200, 12)
    _access_log(FakeHandler(), "code %d, message %s", 400, f"Bad request ('GET /x?t={token}')")
    err = capsys.readouterr().err
    assert '"GET /deploys HTTP/1.1" 200 12' in err
    assert "message Bad request ('GET /x')" in err
    assert token not in err


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def sleeper(started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["bash", "-c", "sleep 60; true"], start_new_session=True)
    started.append(proc)
    return proc


def ended(proc: subprocess.Popen[Any], within: float = 5) -> bool:
    try:
        proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_a_restart_kills_host_scripts_a_killed_stack_left_running(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    records = tmp_path / ".agent"
    records.mkdir()
    orphan, stranger = sleeper(sleepers), sleeper(sleepers)
    (records / str(orphan.pid)).write_text(f"{orphan.pid} {_start_time(orphan.pid)} i-1 migrate\n")
    # a pid recorded long ago, now another process's: its start time does not match
    (records / str(stranger.pid)).write_text(f"{stranger.pid} 1 i-2 switch\n")
    killed = reap_orphans(tmp_path)
    assert killed == [f"i-1 migrate (pid {orphan.pid})"]
    assert ended(orphan)
    assert stranger.poll() is None
    assert list(records.iterdir()) == []


def test_stopping_the_agent_kills_the_scripts_it_runs(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    agent = HostAgent(tmp_path, workers=1)
    proc = sleeper(sleepers)
    agent._track(proc, "i-1", "migrate")  # type: ignore[arg-type]
    assert (tmp_path / ".agent" / str(proc.pid)).is_file()
    started = time.monotonic()
    agent.uninstall()
    assert ended(proc) and time.monotonic() - started < 5
    agent._untrack(proc.pid)
    assert not (tmp_path / ".agent" / str(proc.pid)).exists()
