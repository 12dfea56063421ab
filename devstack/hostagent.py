"""The local host agent: makes moto's SSM Run Command really run the document on "hosts".

moto marks every command ``Success`` the moment it is sent and never runs anything. The agent
wraps ``send_command``: the new command and its invocations go back to ``Pending``, and worker
threads run the SSM document's rendered script with bash, one sandbox directory per instance
(``<hosts dir>/<instance id>``), then write status, exit code and output back into moto, where
``ListCommands`` and ``GetCommandInvocation`` report them as SSM would.

Fault switches (the local stack contract): if ``<host dir>/fault.<phase>`` exists, the host's
script for that phase fails when the file says ``fail`` and hangs until its timeout when it says
``hang``.

Each running script's process group is recorded in ``<hosts dir>/.agent/<pid>`` while it runs:
``stop`` kills those groups (SIGTERM of ``make serve`` never waits for a hung script), and a
restarted stack kills the ones a ``kill -9`` left behind (``reap_orphans``), as a real host's
SSM agent reports a command cut by a reboot as failed instead of letting it run on unseen.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.ssm.models import Command, SimpleSystemManagerBackend

from infra.ssm_document import render

OUTPUT_LIMIT = 24_000  # SSM keeps at most this much of each stream inline


def _now() -> str:
    return datetime.now(UTC).isoformat()


class HostAgent:
    def __init__(self, hosts_dir: Path, workers: int = 16) -> None:
        self.hosts_dir = hosts_dir
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host-agent")
        self._stopping = threading.Event()
        self._running: dict[int, Path] = {}  # pid (= process group) -> its record
        self._running_lock = threading.Lock()
        self._original = SimpleSystemManagerBackend.send_command
        self.commands_run = 0

    def install(self) -> None:
        agent = self
        original = self._original

        def send_command(backend: SimpleSystemManagerBackend, *args: Any, **kwargs: Any) -> Any:
            command = original(backend, *args, **kwargs)
            agent.accept(backend, command)
            return command

        SimpleSystemManagerBackend.send_command = send_command  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        SimpleSystemManagerBackend.send_command = self._original  # type: ignore[method-assign]
        self._stopping.set()
        self.kill_running()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def kill_running(self) -> int:
        """Kill every script this agent is running (their whole process groups)."""
        with self._running_lock:
            pids = list(self._running)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        return len(pids)

    def _track(self, proc: subprocess.Popen[str], instance_id: str, phase: str) -> None:
        record = self.hosts_dir / ".agent" / str(proc.pid)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{proc.pid} {_start_time(proc.pid)} {instance_id} {phase}\n")
        with self._running_lock:
            self._running[proc.pid] = record
        if self._stopping.is_set():  # stopped while it was being started
            self.kill_running()

    def _untrack(self, pid: int) -> None:
        with self._running_lock:
            record = self._running.pop(pid, None)
        if record is not None:
            record.unlink(missing_ok=True)

    def host_dir(self, instance_id: str) -> Path:
        return self.hosts_dir / instance_id

    def accept(self, backend: SimpleSystemManagerBackend, command: Command) -> None:
        command.status = "Pending"
        command.status_details = "Pending"
        command.completed_count = 0
        command.error_count = 0
        for invocation in command.invocations:
            invocation.update(
                Status="Pending",
                StatusDetails="Pending",
                ResponseCode=-1,
                StandardOutputContent="",
                StandardErrorContent="",
                ExecutionStartDateTime="",
                ExecutionEndDateTime="",
                ExecutionElapsedTime="PT0S",
            )
        content = backend.get_document(command.document_name or "", "", "", "JSON")["Content"]
        # a document CloudFormation created keeps its Content as the template's object in moto
        document = content if isinstance(content, dict) else json.loads(content)
        params = {name: values[0] for name, values in command.parameters.items()}
        futures = [
            self._pool.submit(self._run_host, command, invocation, document, params)
            for invocation in command.invocations
        ]

        def finish() -> None:
            for future in futures:
                future.result()
            statuses = [inv["Status"] for inv in command.invocations]
            command.completed_count = len(statuses)
            command.error_count = sum(1 for s in statuses if s != "Success")
            if all(s == "Success" for s in statuses):
                command.status = command.status_details = "Success"
            elif any(s == "TimedOut" for s in statuses):
                command.status = command.status_details = "TimedOut"
            else:
                command.status = command.status_details = "Failed"

        self._pool.submit(finish) if futures else finish()

    def _run_host(
        self,
        command: Command,
        invocation: dict[str, Any],
        document: dict[str, Any],
        params: dict[str, str],
    ) -> None:
        instance_id = invocation["InstanceId"]
        started = time.monotonic()
        invocation.update(
            Status="InProgress", StatusDetails="InProgress", ExecutionStartDateTime=_now()
        )
        timeout = int(params.get("executionTimeout") or 600)
        status, code, out, err = self._execute(instance_id, document, params, timeout)
        self.commands_run += 1
        elapsed = int(time.monotonic() - started)
        invocation.update(
            Status=status,
            StatusDetails=status,
            ResponseCode=code,
            StandardOutputContent=out[-OUTPUT_LIMIT:],
            StandardErrorContent=err[-OUTPUT_LIMIT:],
            ExecutionEndDateTime=_now(),
            ExecutionElapsedTime=f"PT{elapsed}S",
        )

    def _execute(
        self, instance_id: str, document: dict[str, Any], params: dict[str, str], timeout: int
    ) -> tuple[str, int, str, str]:
        host = self.host_dir(instance_id)
        if not host.is_dir():
            return "Failed", 1, "", f"host agent: no sandbox for {instance_id} (unmanaged host)"
        phase = params.get("phase", "")
        fault = host / f"fault.{phase}"
        if fault.exists():
            kind = fault.read_text().strip()
            if kind == "hang":
                self._stopping.wait(timeout)
                return "TimedOut", -1, "", f"injected fault: {phase} hung past {timeout}s"
            if kind == "fail":
                return "Failed", 1, "", f"injected fault: {phase} failed on {instance_id}"
        try:
            script = render(document, params)
        except ValueError as exc:
            return "Failed", 1, "", f"invalid document parameters: {exc}"
        env = {
            # the venv's bin first: its `aws` CLI is what a host's AMI has for s3 sources
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(host),
            "LANG": "C.UTF-8",
            "ROADIE_HOST_ROOT": str(host),
            "ROADIE_HOST_ID": instance_id,
            # what the instance profile gives a real host: credentials for (moto's) AWS
            **{k: v for k, v in os.environ.items() if k in INSTANCE_PROFILE_VARIABLES},
        }
        # a session of its own, so a timeout kills the script's children too (as the SSM agent does)
        with subprocess.Popen(
            ["bash", "-c", script],
            cwd=host,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as proc:
            self._track(proc, instance_id, phase)
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                return "TimedOut", -1, out, err + f"\nexecution timed out after {timeout}s"
            finally:
                self._untrack(proc.pid)
        status = "Success" if proc.returncode == 0 else "Failed"
        return status, proc.returncode, out, err


INSTANCE_PROFILE_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[-1].split()[19]


def reap_orphans(hosts_dir: Path) -> list[str]:
    """Kill the scripts a previous, killed stack left running; returns what was killed."""
    killed = []
    records = hosts_dir / ".agent"
    for record in sorted(records.glob("*")) if records.is_dir() else []:
        try:
            pid_text, started, instance_id, phase = (record.read_text().split() + ["?"] * 4)[:4]
            pid = int(pid_text)
        except (OSError, ValueError):
            record.unlink(missing_ok=True)
            continue
        # only the same process (same start time), never another one that got its pid since
        if started != "?" and _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
                killed.append(f"{instance_id} {phase} (pid {pid})")
        record.unlink(missing_ok=True)
    return killed


def reset_hosts_dir(hosts_dir: Path) -> None:
    if hosts_dir.exists():
        shutil.rmtree(hosts_dir)
    hosts_dir.mkdir(parents=True)
