"""What the local stack keeps across a restart, in ``ROADIE_STATE_DIR``.

- ``aws/dynamodb.journal``: every DynamoDB write moto accepted (PutItem, UpdateItem,
  DeleteItem, BatchWriteItem, TransactWriteItems), one JSON line per request, appended with
  ``os.write`` after moto answered 2xx and while DynamoDB is serialised, so the journal's order
  is the order moto applied them and a ``kill -9`` loses nothing the OS has received. On start
  the template is deployed again (it is derived from the package), the journal is replayed
  against the new, empty tables (items carry their own timestamps: replay is deterministic)
  and then compacted into one PutItem per surviving item.
- ``hosts.json``: the simulated EC2 instances (id, Name, app, environment). On start moto's
  RunInstances gives the same ids back, so the hosts' sandbox directories (releases,
  ``current``) and the deploy records that name them still match.
- The hosts' sandbox directories, the app's SQLite databases (``db/``) and the sample app's git
  repository (``sources/``) are plain files: they are simply not wiped.

Step Functions executions and SSM commands in flight are not kept (a real reboot loses them
too): the reconciler recovers a running deploy whose execution is gone.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

JOURNALED = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
FRESH_FLAG = "ROADIE_FRESH"
TARGET_PREFIX = "DynamoDB_20120810."


def _wire(value: Any) -> Any:
    """boto3 hands binary attributes back as bytes; DynamoDB's wire format is base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot journal {type(value).__name__}")


class Journal:
    """An append-only log of accepted DynamoDB writes; replayable against an empty moto."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        self.written = 0

    # --- writing --------------------------------------------------------------------------

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, action: str, body: str) -> None:
        line = json.dumps({"action": action, "body": body}, separators=(",", ":")) + "\n"
        with self._lock:
            if self._fd is None:
                return
            # one write per line: the OS has it once this returns, whatever happens to us
            os.write(self._fd, line.encode())
            self.written += 1

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def truncate(self) -> None:
        """Forget everything (the stack was reset)."""
        with self._lock:
            if self._fd is not None:
                os.ftruncate(self._fd, 0)

    # --- reading --------------------------------------------------------------------------

    def entries(self) -> Iterator[tuple[str, str]]:
        """Every complete line; a torn last line (killed mid-write) is skipped."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                yield str(entry["action"]), str(entry["body"])

    def replay(self, endpoint: str) -> tuple[int, int]:
        """Send every entry to moto again, in order; returns (applied, refused)."""
        applied = refused = 0
        session = requests.Session()
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            # moto routes by the credential scope's service; it checks no signature
            "Authorization": (
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        }
        for action, body in self.entries():
            response = session.post(
                endpoint,
                data=body.encode(),
                headers={**headers, "X-Amz-Target": TARGET_PREFIX + action},
                timeout=30,
            )
            if response.status_code < 300:
                applied += 1
            else:
                refused += 1
        return applied, refused

    def compact(self, tables: Mapping[str, list[dict[str, Any]]]) -> int:
        """Replace the journal by one PutItem per item (``tables``: name -> wire-format items)."""
        scratch = self.path.with_suffix(".compacting")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with scratch.open("w", encoding="utf-8") as handle:
            for table, items in sorted(tables.items()):
                for item in items:
                    body = json.dumps({"TableName": table, "Item": item}, default=_wire)
                    handle.write(json.dumps({"action": "PutItem", "body": body}) + "\n")
                    count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, self.path)
        return count


def scan_tables(dynamodb: Any) -> dict[str, list[dict[str, Any]]]:
    """Every item of every table, in DynamoDB's wire format (a boto3 low-level client)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for page in dynamodb.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            items: list[dict[str, Any]] = []
            for scan in dynamodb.get_paginator("scan").paginate(TableName=name):
                items.extend(scan["Items"])
            out[name] = items
    return out


# --- the hook in moto's DynamoDB front -----------------------------------------------------

_journal: dict[str, Journal | None] = {"current": None}
_hooked = {"done": False}


def journal_to(journal: Journal | None) -> None:
    """Journal every accepted DynamoDB write to ``journal`` from now on (None: stop)."""
    _journal["current"] = journal
    if not _hooked["done"]:
        _hook_dynamodb()
        _hooked["done"] = True


def current_journal() -> Journal | None:
    return _journal["current"]


def _hook_dynamodb() -> None:
    from moto.dynamodb.responses import DynamoHandler

    from devstack.moto_patches import dynamodb_lock

    original: Callable[..., Any] = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        journal = _journal["current"]
        if journal is None:
            return original(self)
        action = self._get_action()
        if action not in JOURNALED:
            return original(self)
        raw = self.raw_body
        body = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw or "")
        # held across the write and the append: the journal's order is the order applied
        with dynamodb_lock:
            result = original(self)
            if int(result[0]) < 300:
                journal.append(action, body)
        return result

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


# --- the hosts' identities -------------------------------------------------------------------


def load_hosts(path: Path) -> dict[str, list[dict[str, str]]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return {str(k): [dict(h) for h in v] for k, v in data.items()} if isinstance(data, dict) else {}


def save_hosts(path: Path, hosts: Mapping[str, list[dict[str, str]]]) -> None:
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(hosts, indent=2, sort_keys=True) + "\n")
    os.replace(scratch, path)


@contextlib.contextmanager
def instance_ids(wanted: list[str]) -> Iterator[None]:
    """While active, moto's RunInstances hands out ``wanted`` ids first (then random ones)."""
    from moto.ec2.models import instances

    original = instances.random_instance_id
    queue = list(wanted)

    def next_id() -> str:
        return queue.pop(0) if queue else original()

    instances.random_instance_id = next_id  # type: ignore[assignment]
    try:
        yield
    finally:
        instances.random_instance_id = original  # type: ignore[assignment]


def wipe(state_dir: Path, hosts_dir: Path) -> None:
    """What ``make clean`` removes of the stack's state (the journal, hosts, databases)."""
    for part in (state_dir / "aws", state_dir / "db", hosts_dir):
        if part.exists():
            shutil.rmtree(part)
    (state_dir / "hosts.json").unlink(missing_ok=True)
