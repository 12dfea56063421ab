"""The local stack in one process: moto server, host agent, provisioning and the HTTP API.

Defaults (printed at start, secrets masked) come from the local stack contract's environment
variables. With ``StackOptions.persist`` (``make serve``) the stack keeps its state in
``ROADIE_STATE_DIR`` across restarts (see devstack/persist.py); ``ROADIE_FRESH=1`` or
``make clean`` starts it empty.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULTS = {
    "ROADIE_API_TOKEN": "roadie-local-token",
    "ROADIE_GITHUB_SECRET": "roadie-local-github-secret",
    "ROADIE_GITLAB_TOKEN": "roadie-local-gitlab-token",
    "ROADIE_BITBUCKET_SECRET": "roadie-local-bitbucket-secret",
    "ROADIE_STATE_DIR": str(PROJECT_DIR / ".roadie"),
    "ROADIE_HOSTS_DIR": "",  # default: $ROADIE_STATE_DIR/hosts
    "ROADIE_CONFIG": "",  # default: the bundled chalicelib/pipeline.toml
    "ROADIE_PORT": "8000",
    "ROADIE_FRESH": "",  # 1: start `make serve` from an empty state (as after `make clean`)
    "ROADIE_RECONCILE_SECONDS": "10",  # how often `make serve` runs the reconciler
    "ROADIE_TRAFFIC": "2",  # requests/second per host the traffic generator sends (0: none)
}
SECRETS = (
    "ROADIE_API_TOKEN",
    "ROADIE_GITHUB_SECRET",
    "ROADIE_GITLAB_TOKEN",
    "ROADIE_BITBUCKET_SECRET",
)
HOST_COUNTS = {"production": 5, "staging": 2}
STAGE = "dev"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackOptions:
    api_token: str
    github_secret: str
    gitlab_token: str
    bitbucket_secret: str
    state_dir: Path
    hosts_dir: Path
    config: str
    port: int
    wait_scale: float = 0.05
    poll_seconds: int = 1
    host_counts: dict[str, int] = field(default_factory=lambda: dict(HOST_COUNTS))
    persist: bool = False  # keep state in state_dir across restarts (make serve)
    fresh: bool = False  # with persist: throw the kept state away first
    reconcile_seconds: float = 10.0
    traffic_rate: float = 2.0  # requests per second per host (devstack/traffic.py); 0: off

    @classmethod
    def from_env(cls, **overrides: Any) -> StackOptions:
        env = {k: os.environ.get(k) or v for k, v in DEFAULTS.items()}
        state_dir = Path(env["ROADIE_STATE_DIR"]).resolve()
        options = cls(
            api_token=env["ROADIE_API_TOKEN"],
            github_secret=env["ROADIE_GITHUB_SECRET"],
            gitlab_token=env["ROADIE_GITLAB_TOKEN"],
            bitbucket_secret=env["ROADIE_BITBUCKET_SECRET"],
            state_dir=state_dir,
            hosts_dir=Path(env["ROADIE_HOSTS_DIR"] or state_dir / "hosts").resolve(),
            config=env["ROADIE_CONFIG"],
            port=int(env["ROADIE_PORT"]),
            fresh=env["ROADIE_FRESH"].strip().lower() in {"1", "true", "yes"},
            reconcile_seconds=float(env["ROADIE_RECONCILE_SECONDS"]),
            traffic_rate=float(env["ROADIE_TRAFFIC"]),
        )
        for key, value in overrides.items():
            setattr(options, key, value)
        return options

    def describe(self) -> list[str]:
        """The settings banner; secrets are masked (never a character of one is printed)."""
        values = (self.api_token, self.github_secret, self.gitlab_token, self.bitbucket_secret)
        masked = [
            f"{name}=****** ("
            + ("the documented default" if value == DEFAULTS[name] else f"set, {len(value)} chars")
            + ")"
            for name, value in zip(SECRETS, values, strict=True)
        ]
        if not self.persist:
            kept = "(not kept: this run starts empty)"
        elif self.fresh:
            kept = "(ROADIE_FRESH=1: starting empty)"
        else:
            kept = "(kept across restarts; ROADIE_FRESH=1 or make clean starts empty)"
        return [
            *masked,
            f"ROADIE_STATE_DIR={self.state_dir} {kept}",
            f"ROADIE_HOSTS_DIR={self.hosts_dir}",
            f"ROADIE_CONFIG={self.config or '(bundled chalicelib/pipeline.toml)'}",
            f"ROADIE_PORT={self.port}",
            f"ROADIE_RECONCILE_SECONDS={self.reconcile_seconds:g}",
            f"ROADIE_TRAFFIC={self.traffic_rate:g} (requests/s per host; 0: no traffic)",
        ]


class LocalStack:
    """Start with ``start()``; ``reset()`` wipes AWS state and hosts and provisions again."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.moto_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.moto_port}"
        self._server: Any = None
        self._agent: Any = None
        self._api: Any = None
        self._api_thread: threading.Thread | None = None
        self.provisioned: Any = None
        self.package: Any = None  # the infra.package.Package the stack was deployed from
        self.sources: Any = None
        self.journal: Any = None  # devstack.persist.Journal while the stack persists
        self.restored: list[str] = []  # what start() found and kept (for the banner)
        self.traffic: Any = None  # devstack.traffic.TrafficGenerator while it runs

    def _set_environment(self) -> None:
        o = self.options
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "MOTO_PORT": str(self.moto_port),
                "ROADIE_STATE_DIR": str(o.state_dir),
                "ROADIE_HOSTS_DIR": str(o.hosts_dir),
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_SERVICE_NAME": "roadie",
                # quiet by default; POWERTOOLS_LOG_LEVEL=INFO shows every status change
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
                # no X-Ray daemon here: the template's Tracer is a no-op locally
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )

    def start(self) -> LocalStack:
        self._set_environment()
        # moto must be imported only after the environment points boto3 at the local endpoint
        from moto.server import ThreadedMotoServer

        from devstack import gateway, moto_patches
        from devstack.hostagent import HostAgent

        gateway.install()
        moto_patches.install()
        moto_patches.set_wait_scale(self.options.wait_scale)
        self._server = ThreadedMotoServer(
            ip_address="127.0.0.1", port=self.moto_port, verbose=False
        )
        self._server.start()
        self._agent = HostAgent(self.options.hosts_dir)
        self._agent.install()
        if self.options.persist:
            self._start_kept()
        else:
            self.reset()
        return self

    def _start_kept(self) -> None:
        """Provision again and put back what the previous run kept (or start empty if fresh)."""
        from devstack import persist
        from devstack.hostagent import reap_orphans

        o = self.options
        o.state_dir.mkdir(parents=True, exist_ok=True)
        self.journal = persist.Journal(o.state_dir / "aws" / "dynamodb.journal")
        if o.fresh:
            persist.wipe(o.state_dir, o.hosts_dir)
        for orphan in reap_orphans(o.hosts_dir):
            self.restored.append(f"killed a host script the previous run left running: {orphan}")
        o.hosts_dir.mkdir(parents=True, exist_ok=True)
        self._provision(config=None, host_counts=None, keep=True)

    def _configure_moto(self) -> None:
        requests.post(
            f"{self.endpoint}/moto-api/config",
            json={
                "stepfunctions": {"execute_state_machine": True},
                "lambda": {"use_docker": False},
            },
            timeout=10,
        ).raise_for_status()

    def reset(
        self, *, config: str | None = None, host_counts: dict[str, int] | None = None
    ) -> None:
        """Wipe AWS state and hosts and deploy the packaged template again; ``config`` picks
        another pipeline config (None: the stack's own), ``host_counts`` the hosts per
        environment name."""
        self._provision(config=config, host_counts=host_counts, keep=False)

    def _provision(
        self, *, config: str | None, host_counts: dict[str, int] | None, keep: bool
    ) -> None:
        from aws_lambda_powertools.utilities import parameters

        from chalicelib import bootstrap
        from chalicelib.config import BUNDLED_CONFIG
        from devstack import moto_patches, persist
        from devstack.hostagent import reset_hosts_dir
        from devstack.provision import deploy_package, launch_hosts, put_secrets
        from devstack.shop_repo import create_shop_repo
        from infra.package import build

        chosen = config if config is not None else self.options.config
        config_path = Path(chosen).resolve() if chosen else BUNDLED_CONFIG
        # the package bundles the config with the stack's paths expanded, as `make package`
        # bundles a team's config with its own
        package = build(
            STAGE,
            config_path,
            environ={"ROADIE_STATE_DIR": str(self.options.state_dir)},
            local=True,
        )
        self.package = package
        if self.journal is not None:
            self.journal.close()
            persist.journal_to(None)  # the replay below must not journal itself again
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=30).raise_for_status()
        self._configure_moto()
        parameters.clear_caches()
        hosts_file = self.options.state_dir / "hosts.json"
        if not keep:
            reset_hosts_dir(self.options.hosts_dir)
            db_dir = self.options.state_dir / "db"
            if db_dir.exists():
                shutil.rmtree(db_dir)
            if self.journal is not None:
                self.journal.path.unlink(missing_ok=True)
                hosts_file.unlink(missing_ok=True)
        self.sources = create_shop_repo(self.options.state_dir / "sources" / "shop")
        self.provisioned = deploy_package(
            package,
            REGION,
            stack_name=f"roadie-{STAGE}",
            parameters={"PollSeconds": str(self.options.poll_seconds)},
        )
        moto_patches.clear_functions()
        import app as chalice_app

        for function in self.provisioned.functions.values():
            attribute = function.handler.removeprefix("app.")
            if attribute == "app":
                continue  # the HTTP front: Chalice's local server (start_api)
            environ = self.function_environment(function, package.task_root)
            moto_patches.register_function(function.name, getattr(chalice_app, attribute), environ)
        api = self.provisioned.api
        # outside a Lambda invocation (HTTP routes, the test client) code runs as the API handler
        bootstrap.use_default(self.function_environment(api, package.task_root))
        put_secrets(
            REGION,
            api,
            api_tokens={"local-admin": self.options.api_token},
            webhook_secrets={
                "github": [self.options.github_secret],
                "gitlab": [self.options.gitlab_token],
                "bitbucket": [self.options.bitbucket_secret],
            },
        )
        self.provisioned.hosts = launch_hosts(
            REGION,
            package.pipeline,
            hosts_dir=self.options.hosts_dir,
            state_dir=self.options.state_dir,
            host_counts=self.options.host_counts if host_counts is None else host_counts,
            known=persist.load_hosts(hosts_file) if keep else None,
        )
        if self.journal is not None:
            self._restore_dynamodb(replay=keep)
            persist.save_hosts(hosts_file, self.provisioned.hosts)

    def _restore_dynamodb(self, *, replay: bool) -> None:
        """Replay the journal onto the new tables, compact it, and journal from now on."""
        from devstack import persist
        from devstack.provision import clients

        journal = self.journal
        if replay and journal.path.exists():
            applied, refused = journal.replay(self.endpoint)
            if applied or refused:
                self.restored.append(
                    f"DynamoDB: replayed {applied} writes from {journal.path}"
                    + (f" ({refused} refused)" if refused else "")
                )
        items = journal.compact(persist.scan_tables(clients(REGION).client("dynamodb")))
        journal.open()
        persist.journal_to(journal)
        if replay and items:
            self.restored.append(f"DynamoDB: {items} items kept (journal compacted)")

    def describe_provisioning(self) -> str:
        """One line: which package the stack was deployed from and what it made."""
        functions = ", ".join(sorted(f.name for f in self.provisioned.functions.values()))
        return (
            f"Provisioned from the packaged template {self.package.template} "
            f"(stack {self.provisioned.stack_name}, state machine "
            f"{self.provisioned.state_machine_arn.rsplit(':', 1)[-1]}; functions {functions})"
        )

    @staticmethod
    def function_environment(function: Any, task_root: Path) -> dict[str, str]:
        """What a Lambda function sees: its template environment plus what the runtime sets.

        Only the runtime's own variables are added (region, name, task root) and, because moto
        has no EMF ingestion, ``ROADIE_MIRROR_METRICS``; never the serve process's settings.
        """
        return {
            **function.environment,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "LAMBDA_TASK_ROOT": str(task_root),
            "ROADIE_MIRROR_METRICS": "1",
        }

    def run_schedule(self, logical_id: str = "Reconcile") -> Any:
        """What EventBridge does on the function's schedule: invoke it with a Scheduled Event."""
        from datetime import UTC, datetime

        name = self.provisioned.functions[logical_id].name
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{name}"],
            "detail": {},
        }
        return self.invoke(logical_id, event)

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke one of the stack's functions through (moto's) Lambda, as AWS would."""
        from devstack.provision import clients

        function = self.provisioned.functions[logical_id]
        response = (
            clients(REGION)
            .client("lambda")
            .invoke(FunctionName=function.name, Payload=json.dumps(event).encode())
        )
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise RuntimeError(f"{function.name} failed: {payload}")
        return payload

    def start_api(self, port: int | None = None) -> str:
        """Serve the Chalice app on 127.0.0.1 (port 0 picks a free one); returns its URL."""
        from chalice.cli.factory import CLIFactory
        from chalice.local import ChaliceRequestHandler, create_local_server

        import app as chalice_app

        config = CLIFactory(str(PROJECT_DIR), environ=os.environ).create_config_obj(
            chalice_stage_name="dev"
        )
        # answer in one segment: without it every response waits ~40 ms for a delayed ACK
        ChaliceRequestHandler.disable_nagle_algorithm = True
        chosen = self.options.port if port is None else port
        self._api = create_local_server(chalice_app.app, config, "127.0.0.1", chosen)
        actual = self._api.server.server_address[1]
        self._api_thread = threading.Thread(target=self._api.serve_forever, daemon=True)
        self._api_thread.start()
        logging.getLogger("chalice").setLevel(logging.WARNING)
        ChaliceRequestHandler.log_message = _access_log  # type: ignore[method-assign]
        return f"http://127.0.0.1:{actual}"

    def kill_host_scripts(self) -> int:
        """Kill every host script running now (the first thing a stop does)."""
        return int(self._agent.kill_running()) if self._agent is not None else 0

    def start_traffic(self, rate: float | None = None) -> Any:
        """Send ``rate`` (default ``ROADIE_TRAFFIC``) requests/s to every provisioned host's
        current release, recording the app's health in CloudWatch; ``stop()`` ends it.
        Returns the running ``TrafficGenerator``, or None when the rate is 0."""
        import boto3

        from devstack.traffic import (
            HealthRecorder,
            TrafficGenerator,
            prune_moto_metric_data,
            targets_for,
        )

        rate = self.options.traffic_rate if rate is None else rate
        if rate <= 0 or self.traffic is not None:
            return self.traffic
        targets = []
        for env_key, hosts in self.provisioned.hosts.items():
            app, environment = env_key.split("#", 1)
            targets += targets_for(hosts, app, environment, self.options.hosts_dir)
        recorder = HealthRecorder(boto3.client("cloudwatch", region_name=REGION))
        self.traffic = TrafficGenerator(
            targets,
            recorder,
            rate=rate,
            housekeeping=lambda: prune_moto_metric_data(keep_seconds=3 * 3600),
        ).start()
        return self.traffic

    def stop_traffic(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
            self.traffic = None

    def stop(self) -> None:
        self.stop_traffic()
        if self._agent is not None:
            self._agent.kill_running()
        if self._api is not None:
            self._api.shutdown()
            self._api.server.server_close()
        if self._agent is not None:
            self._agent.uninstall()
        if self._server is not None:
            self._server.stop()
        if self.journal is not None:
            from devstack import persist

            persist.journal_to(None)
            self.journal.close()


_QUERY = re.compile(r"\?[^\s'\"]*")


def _access_log(handler: Any, format: str, *args: Any) -> None:
    """The local server's access and error log, with paths only: a query string can carry a
    token (``?access_token=...``), so it is dropped; headers are never logged."""
    import sys

    message = _QUERY.sub("", format % args)
    when = handler.log_date_time_string()
    sys.stderr.write(f"{handler.address_string()} - - [{when}] {message}\n")
