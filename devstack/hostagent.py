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

Per-host output kept: a command sent with ``CloudWatchOutputConfig`` (moto drops it; the agent
keeps it) gets each host's full stdout and stderr written, one event per line, into moto's
CloudWatch Logs under the stream names SSM uses (``chalicelib/domain/hostlog.py``), as the SSM
agent does on a host whose instance profile allows ``logs:CreateLogStream``/``PutLogEvents``.

``CancelCommand`` (moto_patches) stops an invocation as the SSM agent does: one not started
never runs, a running script's whole process group is killed (a hang ends too), and the
invocation ends ``Cancelled`` with the output so far.
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

from moto.logs.exceptions import ResourceAlreadyExistsException
from moto.logs.models import logs_backends
from moto.ssm.models import Command, SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

from chalicelib.domain.hostlog import output_stream
from infra.ssm_document import render

OUTPUT_LIMIT = 24_000  # SSM keeps at most this much of each stream inline
# the SendCommand request being handled on this thread: its CloudWatchOutputConfig, which
# moto's backend never receives
_request = threading.local()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _Run:
    """One invocation the agent runs or will run: what a cancel needs to stop it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = False
        self.wake = threading.Event()  # ends an injected hang: a cancel, or the agent stopping
        self.proc: subprocess.Popen[str] | None = None

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            self.wake.set()
            if self.proc is not None:
                _kill_group(self.proc)

    def started(self, proc: subprocess.Popen[str]) -> None:
        with self.lock:
            self.proc = proc
            if self.cancelled:
                _kill_group(proc)


def _settle(command: Command) -> None:
    """The command's status and counts once every invocation has ended."""
    statuses = [inv["Status"] for inv in command.invocations]
    command.completed_count = len(statuses)
    command.error_count = sum(1 for s in statuses if s != "Success")
    if all(s == "Success" for s in statuses):
        command.status = command.status_details = "Success"
    elif any(s == "Cancelled" for s in statuses):
        command.status = command.status_details = "Cancelled"
    elif any(s == "TimedOut" for s in statuses):
        command.status = command.status_details = "TimedOut"
    else:
        command.status = command.status_details = "Failed"


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(proc.pid, signal.SIGKILL)


class HostAgent:
    def __init__(self, hosts_dir: Path, workers: int = 16) -> None:
        self.hosts_dir = hosts_dir
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host-agent")
        self._stopping = threading.Event()
        self._running: dict[int, Path] = {}  # pid (= process group) -> its record
        self._running_lock = threading.Lock()
        self._original = SimpleSystemManagerBackend.send_command
        self._original_response = SimpleSystemManagerResponse.send_command
        self.commands_run = 0
        self._runs: dict[tuple[str, str], _Run] = {}  # (command id, instance id), until done
        self._runs_lock = threading.Lock()

    def install(self) -> None:
        agent = self
        original = self._original

        original_response = self._original_response

        def send_command(backend: SimpleSystemManagerBackend, *args: Any, **kwargs: Any) -> Any:
            command = original(backend, *args, **kwargs)
            command.cloudwatch_output_config = getattr(_request, "cloudwatch", None) or {}  # type: ignore[attr-defined]
            agent.accept(backend, command)
            return command

        def send_command_request(response: SimpleSystemManagerResponse) -> Any:
            _request.cloudwatch = response._get_param("CloudWatchOutputConfig")
            try:
                return original_response(response)
            finally:
                _request.cloudwatch = None

        SimpleSystemManagerBackend.send_command = send_command  # type: ignore[method-assign,assignment]
        SimpleSystemManagerResponse.send_command = send_command_request  # type: ignore[method-assign,assignment]
        # moto has no CancelCommand: moto_patches.install() (run first) adds SSM's semantics
        cancel = SimpleSystemManagerBackend.cancel_command  # type: ignore[attr-defined]
        self._original_cancel = cancel

        def cancel_command(
            backend: SimpleSystemManagerBackend,
            command_id: str,
            instance_ids: list[str] | None = None,
        ) -> Any:
            command = cancel(backend, command_id, instance_ids)
            agent.cancel(command, instance_ids)
            busy = ("Pending", "InProgress", "Cancelling")
            if not any(inv["Status"] in busy for inv in command.invocations):
                _settle(command)  # every invocation had ended: moto's "Cancelling" must not stay
            return command

        SimpleSystemManagerBackend.cancel_command = cancel_command  # type: ignore[attr-defined]

    def uninstall(self) -> None:
        SimpleSystemManagerBackend.send_command = self._original  # type: ignore[method-assign]
        SimpleSystemManagerResponse.send_command = self._original_response  # type: ignore[method-assign]
        if hasattr(self, "_original_cancel"):
            SimpleSystemManagerBackend.cancel_command = self._original_cancel  # type: ignore[attr-defined]
        self._stopping.set()
        with self._runs_lock:
            runs = list(self._runs.values())
        for run in runs:
            run.wake.set()
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
        with self._runs_lock:
            for invocation in command.invocations:
                self._runs[(command.command_id, invocation["InstanceId"])] = _Run()
        futures = [
            self._pool.submit(self._run_host, command, invocation, document, params)
            for invocation in command.invocations
        ]

        def finish() -> None:
            for future in futures:
                future.result()
            _settle(command)

        self._pool.submit(finish) if futures else finish()

    def cancel(self, command: Command, instance_ids: list[str] | None = None) -> None:
        """Stop ``command`` on ``instance_ids`` (None: every host): an invocation not started
        never runs, a running script is killed with its process group, a finished one (no
        longer tracked) keeps its result."""
        with self._runs_lock:
            runs = [
                self._runs.get((command.command_id, inv["InstanceId"]))
                for inv in command.invocations
                if not instance_ids or inv["InstanceId"] in instance_ids
            ]
        for run in runs:
            if run is not None:
                run.cancel()

    def _run_host(
        self,
        command: Command,
        invocation: dict[str, Any],
        document: dict[str, Any],
        params: dict[str, str],
    ) -> None:
        instance_id = invocation["InstanceId"]
        key = (command.command_id, instance_id)
        with self._runs_lock:
            run = self._runs.get(key) or _Run()
        try:
            self._run_invocation(run, invocation, document, params, command)
        finally:
            with self._runs_lock:
                self._runs.pop(key, None)

    def _run_invocation(
        self,
        run: _Run,
        invocation: dict[str, Any],
        document: dict[str, Any],
        params: dict[str, str],
        command: Command,
    ) -> None:
        instance_id = invocation["InstanceId"]
        started = time.monotonic()
        with run.lock:
            if run.cancelled:  # cancelled while it waited for a worker: never runs
                invocation.update(
                    Status="Cancelled", StatusDetails="Cancelled", ExecutionEndDateTime=_now()
                )
                return
            invocation.update(
                Status="InProgress", StatusDetails="InProgress", ExecutionStartDateTime=_now()
            )
        timeout = int(params.get("executionTimeout") or 600)
        status, code, out, err = self._execute(instance_id, document, params, timeout, run)
        self.commands_run += 1
        write_output(command, instance_id, out, err)
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
        self,
        instance_id: str,
        document: dict[str, Any],
        params: dict[str, str],
        timeout: int,
        run: _Run,
    ) -> tuple[str, int, str, str]:
        host = self.host_dir(instance_id)
        if not host.is_dir():
            return "Failed", 1, "", f"host agent: no sandbox for {instance_id} (unmanaged host)"
        phase = params.get("phase", "")
        fault = host / f"fault.{phase}"
        if fault.exists():
            kind = fault.read_text().strip()
            if kind == "hang":
                if run.wake.wait(timeout) and run.cancelled:
                    return "Cancelled", -1, "", f"injected fault: {phase} hung until cancelled"
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
            run.started(proc)
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                out, err = proc.communicate()
                return "TimedOut", -1, out, err + f"\nexecution timed out after {timeout}s"
            finally:
                self._untrack(proc.pid)
        if run.cancelled and proc.returncode != 0:  # killed (a script that ended 0 stands)
            return "Cancelled", -1, out, err + "\nexecution cancelled (CancelCommand)"
        status = "Success" if proc.returncode == 0 else "Failed"
        return status, proc.returncode, out, err


def write_output(command: Command, instance_id: str, out: str, err: str) -> None:
    """What the SSM agent does for a command with ``CloudWatchOutputConfig``: each output
    stream the script wrote to, whole, into the command's log group (created if missing, as
    the agent does), one event per line."""
    config = getattr(command, "cloudwatch_output_config", None) or {}
    group = config.get("CloudWatchLogGroupName")
    if not config.get("CloudWatchOutputEnabled") or not group:
        return
    logs = logs_backends[command.account_id][command.backend_region]
    with contextlib.suppress(ResourceAlreadyExistsException):
        if group not in logs.groups:
            logs.create_log_group(group, {})
    now = int(time.time() * 1000)
    for name, text in (("stdout", out), ("stderr", err)):
        if not text:
            continue
        stream = output_stream(command.command_id, instance_id, name)
        logs.ensure_log_stream(group, stream)
        events = [{"timestamp": now, "message": line} for line in text.splitlines()]
        logs.put_log_events(group, stream, events)


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
