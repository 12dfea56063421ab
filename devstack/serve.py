"""`make serve`: keep the embedded stack and its HTTP API up until interrupted.

State is kept in ``ROADIE_STATE_DIR`` across restarts (``ROADIE_FRESH=1`` or ``--fresh`` starts
empty). SIGTERM or SIGINT stops it within 10 s whatever is running: host scripts are killed
first, then the API and moto are stopped; if anything still blocks after ``STOP_DEADLINE``
seconds the process exits anyway (the journal is written line by line, so nothing is lost).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from devstack.stack import LocalStack, StackOptions

STOP_DEADLINE = 8.0  # seconds from the signal to a forced exit


def reconcile(stack: LocalStack) -> list[dict[str, Any]]:
    """What EventBridge does every minute in AWS: invoke the template's Reconcile function."""
    try:
        return list(stack.run_schedule("Reconcile") or [])
    except Exception as exc:  # keep serving; say what went wrong
        print(f"  reconcile failed: {exc}", flush=True)
        return []


class Stopper:
    """Turns SIGTERM/SIGINT into a bounded stop: whatever the main thread is doing (a
    reconcile, the start itself), the stop runs on its own thread and a deadline ends the
    process if it blocks. A second signal exits at once."""

    def __init__(self, deadline: float = STOP_DEADLINE) -> None:
        self.deadline = deadline
        self.requested = threading.Event()
        self.stack: LocalStack | None = None
        self._signalled_at: float | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.requested.is_set():
            os.write(1, b"second signal: exiting now\n")
            os._exit(1)
        self._signalled_at = time.monotonic()
        self.requested.set()
        # no print and no lock here: the main thread may hold either when the signal lands
        os.write(1, f"Stopping ({signal.Signals(signum).name})...\n".encode())
        threading.Thread(target=self._watchdog, name="stop-watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        if self.stack is not None:  # nothing may keep a script (or us) waiting
            threading.Thread(target=self.stack.kill_host_scripts, daemon=True).start()
        time.sleep(self.deadline)
        _exit(0, f"still stopping after {self.deadline:g}s: exiting anyway")

    def finish(self, code: int = 0) -> None:
        """Stop the stack (bounded by the watchdog) and end the process now: a non-daemon
        thread (the host agent's pool, a request) must not hold the interpreter open."""
        if self.stack is not None:
            try:
                self.stack.stop()
            except Exception as exc:  # stopping must end in an exit, whatever failed
                print(f"  stop failed: {exc}", flush=True)
        took = (
            ""
            if self._signalled_at is None
            else f" in {time.monotonic() - self._signalled_at:.1f}s"
        )
        _exit(0, f"Stopped{took}.")


def _exit(code: int, message: str) -> None:
    with contextlib.suppress(Exception):  # a stuck or closed stream must not keep us alive
        sys.stdout.flush()
        sys.stderr.flush()
    os.write(1, (message + "\n").encode())
    os._exit(code)


def serve(stack: LocalStack, stopper: Stopper, reconcile_seconds: float) -> None:
    url = stack.start_api()
    print(f"  {stack.describe_provisioning()}")
    repo = stack.sources
    print(f"  sample app repo: {repo.path} (main={repo.v2}, staging={repo.staging}, v3={repo.v3})")
    for env_key, hosts in stack.provisioned.hosts.items():
        print(f"  hosts {env_key}: " + ", ".join(f"{h['name']}={h['instance_id']}" for h in hosts))
    if stack.start_traffic() is not None:
        rate = stack.options.traffic_rate
        print(f"  traffic: {rate:g} requests/s to each host's current release (ROADIE_TRAFFIC)")
    print(f"Roadie API ready on {url} (moto on {stack.endpoint}); Ctrl-C to stop", flush=True)
    # AWS runs the reconcile Lambda every minute (EventBridge); the local stack every 10 s
    # (ROADIE_RECONCILE_SECONDS)
    while not stopper.requested.wait(reconcile_seconds):
        for action in reconcile(stack):
            print(f"  reconcile: {action['deploy_id']}: {action['action']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = list(argv or [])
    options = StackOptions.from_env(persist=True)
    if "--fresh" in args:
        options.fresh = True
    print("Roadie local stack; settings:", flush=True)
    for line in options.describe():
        print(f"  {line}", flush=True)
    stopper = Stopper()
    stopper.install()
    stack = LocalStack(options)
    stopper.stack = stack
    try:
        stack.start()
        for line in stack.restored:
            print(f"  kept: {line}", flush=True)
        if not stopper.requested.is_set():
            serve(stack, stopper, options.reconcile_seconds)
    except BaseException:
        traceback.print_exc()  # finish() ends the process: say why first
        stopper.finish(code=1)
    stopper.finish()
    return 0
