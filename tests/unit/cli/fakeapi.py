"""A fake of Roadie's HTTP API for the CLI's tests: a stdlib ThreadingHTTPServer on 127.0.0.1.

Routes answer canned JSON shaped like the real API's (``chalicelib/http.py``: deploy_summary,
deploy_detail, environment_view); every request is recorded for the test to check.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEPLOY_ID = "d-20261127t230201-1c862834"
SHA = "fffe47603dc2a4a123e006205dc7bc2a4dd3bc50"
OLD_SHA = "2d8ba61bb311bb6d6a1587b86c8e4d184c4ef955"
HOSTS = [("i-0a655a15d043fe912", "shop-production-1"), ("i-0d4c1f8aa653c766f", "shop-production-2")]


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # decoded JSON, or None without a body


Answer = tuple[int, Any]  # (status, JSON body or raw bytes)
Responder = Callable[[Seen], Answer]


@dataclass
class FakeApi:
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    routes: dict[tuple[str, str], list[Answer] | Responder] = field(default_factory=dict)

    def reset(self) -> None:
        self.requests.clear()
        self.routes.clear()

    def on(self, method: str, path: str, *answers: Answer | Responder) -> None:
        """Answer ``method path`` with ``answers`` in turn (the last one repeats), or with a
        function of the request."""
        if len(answers) == 1 and callable(answers[0]):
            self.routes[(method, path)] = answers[0]
        else:
            self.routes[(method, path)] = [a for a in answers if not callable(a)]

    def answer(self, seen: Seen) -> Answer:
        self.requests.append(seen)
        route = self.routes.get((seen.method, seen.path))
        if route is None:
            return 404, {
                "error": "not_found",
                "message": f"fake: no route {seen.method} {seen.path}",
            }
        if callable(route):
            return route(seen)
        return route.pop(0) if len(route) > 1 else route[0]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        seen = Seen(
            method=self.command,
            path=split.path,
            query={k: v[-1] for k, v in parse_qs(split.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=json.loads(raw) if raw else None,
        )
        status, body = self.server.fake.answer(seen)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeApi) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is expected in some tests


class Running:
    """The fake served on a free port until ``stop``."""

    def __init__(self) -> None:
        self.fake = FakeApi()
        self.server = _Server(self.fake)
        host, port = self.server.server_address[:2]
        self.fake.url = f"http://{host}:{port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# --- canned records, shaped like chalicelib/http.py's views -----------------------------------


def summary(**over: Any) -> dict[str, Any]:
    """deploy_summary()"""
    body = {
        "deploy_id": DEPLOY_ID,
        "app": "shop",
        "environment": "production",
        "sha": SHA,
        "ref": "main",
        "status": "running",
        "phase": "pending",
        "requested_by": "local-admin",
        "requested_via": "api",
        "reason": "ship it",
        "created_at": "2026-11-27T23:02:01.648Z",
        "started_at": "2026-11-27T23:02:01.900Z",
        "finished_at": None,
        "force": False,
        "rollback_of": None,
        "superseded_by": None,
        "cancel_requested_by": None,
    }
    body.update(over)
    return body


def accepted(**over: Any) -> dict[str, Any]:
    """POST /deploys' answer: the summary, ``existing`` and ``links``."""
    body = summary(**over)
    body.setdefault("existing", False)
    body.setdefault("links", {"self": f"/deploys/{body['deploy_id']}"})
    return body


def step(
    number: int,
    command: str,
    status: str = "succeeded",
    exit_code: int | None = 0,
    stderr: str = "",
    detail: str = "",
) -> dict[str, Any]:
    return {
        "step": number,
        "command": command,
        "status": status,
        "exit_code": exit_code,
        "started_at": "2026-11-27T23:02:02.203791+00:00",
        "finished_at": None if status == "pending" else "2026-11-27T23:02:02.913020+00:00",
        "stdout_tail": "" if status == "pending" else f"roadie: {command} done\n",
        "stderr_tail": stderr,
        "detail": detail,
        "command_id": f"cmd-{number}",
    }


def phase(command: str, status: str, cursor: int, batch: int = 0, took: float = 0.5) -> Any:
    entry: dict[str, Any] = {
        "command": command,
        "batch": batch,
        "hosts": 2,
        "status": status,
        "started_at": "2026-11-27T23:02:02.196Z",
        "cursor": cursor,
        "command_ids": [f"cmd-{cursor}"],
        "deadline": "2026-11-27T23:18:02.196Z",
    }
    if status != "running":
        entry.update(finished_at="2026-11-27T23:02:02.696Z", duration_s=took)
    return entry


def detail(
    steps: dict[str, list[dict[str, Any]]] | None = None,
    phases: dict[str, Any] | None = None,
    **over: Any,
) -> dict[str, Any]:
    """deploy_detail(): ``steps`` maps an instance id to its steps."""
    steps = steps or {}
    body = summary(**over)
    body.update(
        {
            "previous_sha": OLD_SHA,
            "duration_s": None,
            "updated_at": "2026-11-27T23:02:03.000Z",
            "error": None,
            "plan": {
                "hosts": [h for h, _ in HOSTS],
                "migration_host": HOSTS[0][0],
                "batch_size": 1,
                "batches": [[HOSTS[0][0]], [HOSTS[1][0]]],
                "steps": [{"command": "stage", "batch": 0, "hosts": 2}],
            },
            "phases": phases or {},
            "hosts": [
                {
                    "instance_id": instance,
                    "name": name,
                    "batch": number,
                    "status": (
                        f"{steps[instance][-1]['command']}:{steps[instance][-1]['status']}"
                        if steps.get(instance)
                        else "pending"
                    ),
                    "steps": copy.deepcopy(steps.get(instance, [])),
                }
                for number, (instance, name) in enumerate(HOSTS, start=1)
            ],
            "trigger": {},
            "links": {
                "self": f"/deploys/{body['deploy_id']}",
                "execution": f"arn:aws:states:us-east-1:123456789012:execution:roadie-rollout:"
                f"{body['deploy_id']}",
            },
        }
    )
    body.update(over)
    return body


def environment(**over: Any) -> dict[str, Any]:
    """environment_view()"""
    body = {
        "app": "shop",
        "environment": "production",
        "current_sha": SHA,
        "current_deploy_id": DEPLOY_ID,
        "running_deploy_id": None,
        "queued_deploy_id": None,
        "frozen": False,
        "frozen_reason": None,
        "frozen_by": None,
        "frozen_at": None,
        "audit": [],
    }
    body.update(over)
    return body


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}
