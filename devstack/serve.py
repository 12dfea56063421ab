"""`make serve`: keep the embedded stack and its HTTP API up until interrupted."""

from __future__ import annotations

import signal
import threading
from typing import Any

from devstack.stack import LocalStack, StackOptions


def reconcile(stack: LocalStack) -> list[dict[str, Any]]:
    """What EventBridge does every minute in AWS: invoke the template's Reconcile function."""
    try:
        return list(stack.run_schedule("Reconcile") or [])
    except Exception as exc:  # keep serving; say what went wrong
        print(f"  reconcile failed: {exc}", flush=True)
        return []


def main() -> int:
    options = StackOptions.from_env()
    print("Roadie local stack; settings:", flush=True)
    for line in options.describe():
        print(f"  {line}", flush=True)
    stack = LocalStack(options).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        url = stack.start_api()
        print(f"  {stack.describe_provisioning()}")
        repo = stack.sources
        print(f"  sample app repo: {repo.path} (main={repo.v2}, staging={repo.staging})")
        for env_key, hosts in stack.provisioned.hosts.items():
            print(
                f"  hosts {env_key}: " + ", ".join(f"{h['name']}={h['instance_id']}" for h in hosts)
            )
        print(f"Roadie API ready on {url} (moto on {stack.endpoint}); Ctrl-C to stop", flush=True)
        # AWS runs the reconcile Lambda every minute (EventBridge); the local stack every 10 s
        while not stop.wait(10):
            for action in reconcile(stack):
                print(f"  reconcile: {action['deploy_id']}: {action['action']}", flush=True)
    finally:
        stack.stop()
    return 0
