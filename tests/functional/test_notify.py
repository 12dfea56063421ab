"""Deploys show where developers look: a GitHub Deployment and its statuses, GitLab and
Bitbucket commit statuses and a Slack message, sent by the real HTTP adapter to a fake of the
three APIs and Slack served on 127.0.0.1 (stopped by each test).

The fake checks every request (POST, JSON, the path, the auth header, the body's fields) and
answers 4xx when one is wrong, so a test that sees its calls succeed saw them well-formed. The
deploys run through the real services (request, launch, dispatch, poll, finish) on the
in-memory fakes of ``tests/unit/services/fakes.py``; tokens come from moto's SSM where a test
says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from chalicelib.adapters.notify import GITHUB_DEPLOYMENT, ProviderBoard, slack_text
from chalicelib.adapters.secrets import ScmTokens
from chalicelib.config import parse_pipeline
from chalicelib.domain.contract import DispatchTask, FinishTask, PollTask
from chalicelib.domain.errors import ConfigError, UnavailableError
from chalicelib.domain.model import DeployStatus, Host, HostStatus, Requester
from chalicelib.domain.notice import Notice, state_of
from chalicelib.domain.pipeline import PipelineConfig
from chalicelib.domain.webhook_outcome import OutcomeKind
from chalicelib.services.deploys import DeployService
from chalicelib.services.notify import Notifier
from chalicelib.services.rollout import RolloutService
from chalicelib.services.webhooks import WebhookService
from chalicelib.webhooks import sign_sha256
from tests.unit.services.fakes import (
    FakeDeployStore,
    FakeExecutions,
    FakeFleet,
    FakeHostCommands,
    FakeHostResultStore,
    FakeMetrics,
    FakeRefs,
    FixedClock,
)

TOKEN = "ghp-notify-token-5c1d-never-logged"
SLACK_PATH = "/slack/services/T0001/B0002/sekret-hook-9f8e"
SHA = "a" * 40
OLD_SHA = "b" * 40
REGION = "us-east-1"
PREFIX = {"github": "/gh", "gitlab": "/gl", "bitbucket": "/bb"}
STATES = {
    "github": {"in_progress", "success", "failure", "error", "inactive"},
    "gitlab": {"running", "success", "failed", "canceled"},
    "bitbucket": {"INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"},
}


@dataclass(frozen=True)
class Seen:
    provider: str
    path: str
    body: dict[str, Any]


class FakeProviders:
    """GitHub, GitLab, Bitbucket (each under a path prefix) and one Slack webhook."""

    def __init__(self) -> None:
        self.mode = "ok"  # "ok" | "500" | "hang"
        self.seen: list[Seen] = []
        self.refused: list[str] = []  # why each malformed request was refused
        self.deployments: dict[int, dict[str, Any]] = {}
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX[provider]}"

    @property
    def slack_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SLACK_PATH}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def states(self, provider: str) -> list[str]:
        return [s.body["state"] for s in self.seen if s.provider == provider and "state" in s.body]

    # -- the APIs
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        if self.mode == "hang":
            self.release.wait(30)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        if self.mode == "500":
            return self._answer(request, 500, {"message": "Server Error"})
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(raw)
            assert isinstance(body, dict), "the body is no JSON object"
            assert headers.get("content-type") == "application/json", "not sent as JSON"
            provider, status, answer = self._route(request.path, headers, body)
        except (AssertionError, ValueError) as exc:
            self.refused.append(f"{request.path}: {exc}")
            return self._answer(request, 422, {"message": str(exc)})
        self.seen.append(Seen(provider, request.path, body))
        self._answer(request, status, answer)

    def _route(
        self, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[str, int, Any]:
        if path == SLACK_PATH:
            assert set(body) == {"text"} and isinstance(body["text"], str), "slack: text only"
            return "slack", 200, None
        if path.startswith("/gh/"):
            assert headers.get("authorization") == f"Bearer {TOKEN}", "github: bad token"
            assert headers.get("accept") == "application/vnd.github+json", "github: Accept"
            rest = path.removeprefix("/gh")
            base = "/repos/roadie-demo/shop/deployments"
            if rest == base:
                assert body["ref"] == SHA and body["environment"], "github: ref/environment"
                assert body["auto_merge"] is False and body["required_contexts"] == [], (
                    "github: a deploy of a SHA must not merge or wait for contexts"
                )
                number = 1000 + len(self.deployments)
                self.deployments[number] = body
                return "github", 201, {"id": number, "sha": SHA}
            number_text, _, tail = rest.removeprefix(base + "/").partition("/")
            assert tail == "statuses" and int(number_text) in self.deployments, "github: path"
            assert body["state"] in STATES["github"], "github: state"
            assert body["log_url"].startswith("https://"), "github: log_url"
            return "github", 201, {"id": 1, "state": body["state"]}
        if path.startswith("/gl/"):
            assert headers.get("private-token") == TOKEN, "gitlab: bad token"
            assert path == f"/gl/projects/roadie-demo%2Fshop/statuses/{SHA}", "gitlab: path"
            assert body["state"] in STATES["gitlab"], "gitlab: state"
            assert body["name"] == "roadie/production", "gitlab: name"
            assert body["target_url"].startswith("https://"), "gitlab: target_url"
            return "gitlab", 201, {"id": 1, "status": body["state"]}
        if path.startswith("/bb/"):
            assert headers.get("authorization") == f"Bearer {TOKEN}", "bitbucket: bad token"
            expected = f"/bb/repositories/roadie-demo/shop/commit/{SHA}/statuses/build"
            assert path == expected, "bitbucket: path"
            assert body["state"] in STATES["bitbucket"], "bitbucket: state"
            assert body["key"] == "roadie-production", "bitbucket: key"
            assert body["url"].startswith("https://"), "bitbucket: url"
            return "bitbucket", 201, {"key": body["key"], "state": body["state"]}
        raise AssertionError("no such route")

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = b"ok" if body is None else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/plain" if body is None else "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


class Tokens:
    """The secrets as the SSM parameters would hold them (one test reads them from moto)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read_refs: list[str] = []

    def read(self, reference: str) -> str:
        self.read_refs.append(reference)
        return self.values[reference]


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    server = FakeProviders()
    yield server
    server.stop()


def pipeline(
    fake: FakeProviders, provider: str = "github", notify: str = "", secrets: str = ""
) -> PipelineConfig:
    token = secrets or "/roadie/test/scm-token"
    slack = "secretsmanager:roadie/test/slack" if secrets else "ssm:/roadie/test/slack-webhook"
    notify = notify or (
        f'scm_status = true\nslack_webhook = "{slack}"\n'
        'log_url = "https://roadie.example.com/deploys/{deploy_id}"\n'
        'environment_urls = { production = "https://shop.example.com" }'
    )
    return parse_pipeline(
        f"""
[apps.shop]
repository = "roadie-demo/shop"
source = {{ kind = "git", url = "/x/sources/shop" }}
commands = {{ build = "bin/build", migrate = "bin/migrate", post_migrate = "bin/post_migrate", \
health = "bin/health", restart = "bin/restart" }}
scm = {{ provider = "{provider}", api_url = "{fake.url(provider)}", \
token = "{token}" }}

[apps.shop.notify]
{notify}

[apps.shop.environments.production]
branch = "main"
hosts = {{ tags = {{ App = "shop", Environment = "production" }} }}
batch_size = 2
""",
        {},
    )


def tokens(fake: FakeProviders) -> Tokens:
    return Tokens({"/roadie/test/scm-token": TOKEN, "/roadie/test/slack-webhook": fake.slack_url})


PUSH = {"event": "push", "ref": "refs/heads/main", "after": SHA, "delivery_id": "dlv-1"}


@dataclass
class World:
    clock: FixedClock
    deploys: FakeDeployStore
    commands: FakeHostCommands
    executions: FakeExecutions
    lifecycle: DeployService
    rollout: RolloutService

    def request(self, trigger: dict[str, Any] | None = PUSH) -> str:
        deploy, created = self.lifecycle.request(
            app="shop",
            environment="production",
            requester=Requester("octocat", "github"),
            sha=SHA,
            trigger=trigger,
        )
        assert created and deploy.status is DeployStatus.RUNNING
        return deploy.deploy_id

    def run(self, deploy_id: str, *, fail_at: str | None = None) -> DeployStatus:
        """Drive the rollout as the state machine would; ``fail_at``: that command's hosts
        exit 1 (a switch or verify then rolls back)."""
        event = self.executions.started[deploy_id]
        cursor, outcome = 0, "succeeded"
        while True:
            task = DispatchTask.from_json({**event, "cursor": cursor})
            wave = self.rollout.dispatch_step(task).to_json()
            command = task.plan.step_at(cursor).command.value
            if command == fail_at:
                self.commands.answer_all(wave["command_ids"], status=HostStatus.FAILED, exit_code=1)
            else:
                out = f"REVISION={SHA}\n" if command == "verify" else "ok\n"
                self.commands.answer_all(wave["command_ids"], stdout=out)
            route = self.rollout.poll_step(PollTask.from_json({**event, "wave": wave})).to_json()
            if route["state"] in ("next", "rollback"):
                cursor = route["next"]
                fail_at = None if route["state"] == "rollback" else fail_at
                continue
            if route["state"] != "done":
                outcome = route["state"]
            break
        task = FinishTask.from_json({"deploy_id": deploy_id, "outcome": outcome})
        return self.rollout.finish_step(task).status


def make_world(config: PipelineConfig, board: ProviderBoard) -> World:
    clock = FixedClock()
    deploys = FakeDeployStore()
    commands = FakeHostCommands()
    executions = FakeExecutions()
    notifier = Notifier(config, deploys, board, REGION)
    lifecycle = DeployService.from_ports(
        pipeline=config,
        deploys=deploys,
        host_results=FakeHostResultStore(),
        fleet=FakeFleet([Host(f"i-{i:04d}", f"web-{i}") for i in range(4)]),
        executions=executions,
        refs=FakeRefs({"main": SHA}),
        poll_seconds=5,
        lease_seconds=3600,
        clock=clock,
    )
    lifecycle.launcher.notifier = notifier
    seen = deploys.environment("shop", "production")
    deploys.write_environment(seen, replace(seen, current_sha=OLD_SHA, current_deploy_id="d-0"))
    rollout = RolloutService(
        deploys,
        FakeHostResultStore(),
        commands,
        FakeMetrics(),
        lease=lifecycle.environments,
        handover=lifecycle.launcher,
        clock=clock,
        fleet=lifecycle.environments,
        notifier=notifier,
    )
    return World(clock, deploys, commands, executions, lifecycle, rollout)


# --- GitHub Deployments through a whole deploy ---------------------------------------------

WEBHOOK_SECRET = "webhook-secret-for-the-notify-test"
EVENTS = Path(__file__).resolve().parents[1] / "events"


class OneSecret:
    def active(self, provider: str) -> list[str]:
        return [WEBHOOK_SECRET]


class EveryDeliveryOnce:
    def once(self, key: str, body_sha256: str, handler: Any, lambda_context: Any = None) -> Any:
        return handler()


class NoHeads:
    def record(
        self, key: str, *, sha: str, before: str, pushed_at: int | None, delivery_id: str
    ) -> bool:
        return True

    def head(self, key: str) -> str | None:
        return None


def test_a_signed_github_push_shows_its_deploy_on_github_in_order(
    fake: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    """The webhook path end to end: a push delivery, the deploy it starts, its rollout."""
    config = pipeline(fake)
    world = make_world(config, ProviderBoard(tokens(fake)))
    webhooks = WebhookService(config, OneSecret(), EveryDeliveryOnce(), world.lifecycle, NoHeads())
    payload = json.loads((EVENTS / "github" / "push" / "1.json").read_text())
    payload["repository"]["full_name"] = "roadie-demo/shop"
    payload.update(ref="refs/heads/main", before=OLD_SHA, after=SHA)
    payload["head_commit"]["id"] = SHA
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "delivery-notify-1",
        "X-Hub-Signature-256": sign_sha256(WEBHOOK_SECRET, body),
    }
    outcome = webhooks.receive("github", body, headers)
    assert outcome.kind is OutcomeKind.ACCEPTED
    deploy_id = outcome.body["deploy_id"]
    assert world.run(deploy_id) is DeployStatus.SUCCEEDED
    assert fake.refused == []
    assert [(s.path.rsplit("/", 1)[-1], s.body.get("state")) for s in fake.seen] == [
        ("deployments", None),
        ("statuses", "in_progress"),
        ("statuses", "success"),
        ("sekret-hook-9f8e", None),
    ]
    assert fake.deployments[1000]["ref"] == SHA
    assert "Codertocat" in fake.seen[3].body["text"]  # the pusher
    assert not [r for r in caplog.records if r.name == "roadie.notify"]  # nothing dropped


def test_a_push_deploy_creates_a_github_deployment_then_in_progress_then_success(
    fake: FakeProviders,
) -> None:
    world = make_world(pipeline(fake), ProviderBoard(tokens(fake)))
    deploy_id = world.request()
    # the start is on GitHub before a single host command was sent
    assert [s.provider for s in fake.seen] == ["github", "github"]
    assert world.commands.sent == []
    assert world.run(deploy_id) is DeployStatus.SUCCEEDED

    assert fake.refused == []
    assert [s.path for s in fake.seen] == [
        "/gh/repos/roadie-demo/shop/deployments",
        "/gh/repos/roadie-demo/shop/deployments/1000/statuses",
        "/gh/repos/roadie-demo/shop/deployments/1000/statuses",
        SLACK_PATH,
    ]
    created = fake.deployments[1000]
    assert (created["ref"], created["environment"]) == (SHA, "production")
    assert created["payload"]["deploy_id"] == deploy_id
    assert fake.states("github") == ["in_progress", "success"]
    status = fake.seen[2].body
    assert status["log_url"] == f"https://roadie.example.com/deploys/{deploy_id}"
    assert status["environment_url"] == "https://shop.example.com"
    # the deployment's id is on the record, so the end went to the same deployment
    assert world.deploys.get(deploy_id).notifications == {GITHUB_DEPLOYMENT: 1000}
    text = fake.seen[3].body["text"]
    assert deploy_id in text and "succeeded" in text and "octocat" in text


def test_a_deploy_that_rolls_back_ends_its_github_deployment_as_failure(
    fake: FakeProviders,
) -> None:
    world = make_world(pipeline(fake), ProviderBoard(tokens(fake)))
    deploy_id = world.request()
    assert world.run(deploy_id, fail_at="verify") is DeployStatus.ROLLED_BACK
    assert fake.refused == []
    assert fake.states("github") == ["in_progress", "failure"]
    assert len(fake.deployments) == 1
    slack = [s.body["text"] for s in fake.seen if s.provider == "slack"]
    assert len(slack) == 1 and "rolled_back" in slack[0] and slack[0].startswith(":x:")


def test_a_deploy_from_the_api_is_not_put_on_the_commit_but_is_told_in_slack(
    fake: FakeProviders,
) -> None:
    world = make_world(pipeline(fake), ProviderBoard(tokens(fake)))
    deploy_id = world.request(trigger={"event": "api"})
    assert world.run(deploy_id) is DeployStatus.SUCCEEDED
    assert [s.provider for s in fake.seen] == ["slack"]


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_a_provider_that_fails_or_hangs_neither_fails_nor_holds_up_the_deploy(
    fake: FakeProviders, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    budget = 0.4
    world = make_world(pipeline(fake), ProviderBoard(tokens(fake), budget_seconds=budget))
    fake.mode = mode
    began = time.monotonic()
    deploy_id = world.request()
    started = time.monotonic() - began
    status = world.run(deploy_id)
    total = time.monotonic() - began
    print(f"\n{mode}: request took {started:.3f}s, whole deploy {total:.3f}s (budget {budget}s)")
    assert status is DeployStatus.SUCCEEDED
    deploy = world.deploys.get(deploy_id)
    assert deploy.status is DeployStatus.SUCCEEDED and deploy.notifications == {}
    # three reports (start, end on the commit, chat), each bounded by the budget
    assert started < budget + 1.0
    assert total < 3 * budget + 2.0
    # each dropped report is one warning naming the deploy, and none carries a secret
    dropped = [r.getMessage() for r in caplog.records if r.name == "roadie.notify"]
    assert [m.split(": ")[0] for m in dropped] == [f"deploy {deploy_id}"] * 3, dropped
    assert all(TOKEN not in m and "sekret-hook" not in m for m in dropped), dropped


def test_the_end_creates_the_deployment_when_its_start_was_never_shown(
    fake: FakeProviders,
) -> None:
    world = make_world(pipeline(fake), ProviderBoard(tokens(fake)))
    fake.mode = "500"
    deploy_id = world.request()
    fake.mode = "ok"
    assert world.run(deploy_id) is DeployStatus.SUCCEEDED
    assert fake.refused == []
    assert [s.path for s in fake.seen][:2] == [
        "/gh/repos/roadie-demo/shop/deployments",
        "/gh/repos/roadie-demo/shop/deployments/1000/statuses",
    ]
    assert fake.states("github") == ["success"]


# --- GitLab and Bitbucket commit statuses ---------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "states"),
    [("gitlab", ["running", "success"]), ("bitbucket", ["INPROGRESS", "SUCCESSFUL"])],
)
def test_gitlab_and_bitbucket_get_a_commit_status_at_start_and_end(
    fake: FakeProviders, provider: str, states: list[str]
) -> None:
    world = make_world(pipeline(fake, provider), ProviderBoard(tokens(fake)))
    deploy_id = world.request()
    assert world.run(deploy_id) is DeployStatus.SUCCEEDED
    assert fake.refused == []
    assert fake.states(provider) == states
    assert world.deploys.get(deploy_id).notifications == {}


@pytest.mark.parametrize("provider", ["github", "gitlab", "bitbucket"])
@pytest.mark.parametrize("status", [s for s in DeployStatus if state_of(s) != "in_progress"])
def test_every_final_status_maps_to_a_state_the_provider_accepts(
    fake: FakeProviders, provider: str, status: DeployStatus
) -> None:
    config = pipeline(fake, provider)
    board = ProviderBoard(tokens(fake))
    notice = Notice(
        "d-1", "shop", "production", "roadie-demo/shop", SHA, status, state_of(status),
        "Roadie deploy", "octocat", "https://roadie.example.com/deploys/d-1",
    )  # fmt: skip
    board.finished(config.app("shop"), notice, {})
    assert fake.refused == []
    assert len(fake.states(provider)) == 1


def test_an_unsuccessful_final_state_is_never_reported_as_success() -> None:
    for status in DeployStatus:
        if status is not DeployStatus.SUCCEEDED:
            assert state_of(status) != "success"


# --- Slack, secrets ---------------------------------------------------------------------------


def test_the_slack_text_says_what_where_who_and_why_and_cannot_mention_anyone() -> None:
    notice = Notice(
        "d-7", "shop", "production", "roadie-demo/shop", SHA, DeployStatus.FAILED, "failure",
        "x", "<!channel>", "https://roadie.example.com/deploys/d-7", detail="exit 1 <@U123>",
    )  # fmt: skip
    text = slack_text(notice)
    assert text == (
        f":x: shop production: deploy d-7 of {SHA[:12]} by &lt;!channel&gt; failed: "
        "exit 1 &lt;@U123&gt; <https://roadie.example.com/deploys/d-7|log>"
    )


def test_errors_name_neither_the_token_nor_the_slack_url(fake: FakeProviders) -> None:
    config = pipeline(fake)
    board = ProviderBoard(tokens(fake), budget_seconds=0.3)
    notice = Notice(
        "d-1", "shop", "production", "roadie-demo/shop", SHA, DeployStatus.FAILED, "failure",
        "Roadie deploy", "octocat", "https://roadie.example.com/deploys/d-1",
    )  # fmt: skip
    messages = []
    for mode in ("500", "hang"):
        fake.mode = mode
        for send in (
            lambda: board.chat(config.app("shop"), notice),
            lambda: board.finished(config.app("shop"), notice, {}),
        ):
            with pytest.raises(UnavailableError) as raised:
                send()
            messages.append(str(raised.value))
    assert all(TOKEN not in m and "sekret-hook" not in m for m in messages), messages
    assert any("HTTP 500" in m for m in messages)


def test_a_slack_webhook_that_is_not_https_is_refused_unsent(fake: FakeProviders) -> None:
    board = ProviderBoard(
        Tokens(
            {
                "/roadie/test/slack-webhook": "http://hooks.example.com/x",
                "/roadie/test/scm-token": TOKEN,
            }
        )
    )
    notice = Notice(
        "d-1", "shop", "production", "roadie-demo/shop", SHA, DeployStatus.SUCCEEDED, "success",
        "x", "octocat", "",
    )  # fmt: skip
    with pytest.raises(UnavailableError) as raised:
        board.chat(pipeline(fake).app("shop"), notice)
    assert "hooks.example.com" not in str(raised.value)
    assert fake.seen == []


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's Secrets Manager (never the embedded stack's server)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_REGION", REGION),
    ):
        monkeypatch.setenv(name, value)
    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)
    parameters.clear_caches()


def test_the_token_and_the_slack_url_are_read_from_secrets_manager(
    fake: FakeProviders, secretsmanager: Any
) -> None:
    secretsmanager.create_secret(Name="roadie/test/scm", SecretString=TOKEN)
    secretsmanager.create_secret(Name="roadie/test/slack", SecretString=fake.slack_url)
    config = pipeline(fake, secrets="secretsmanager:roadie/test/scm")
    board = ProviderBoard(ScmTokens(max_age=60))
    world = make_world(config, board)
    deploy_id = world.request()
    assert world.run(deploy_id) is DeployStatus.SUCCEEDED
    assert fake.refused == []
    assert [s.provider for s in fake.seen] == ["github", "github", "github", "slack"]


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notify", "says"),
    [
        ('slack_webhook = "https://hooks.slack.com/services/T/B/x"', "never the token itself"),
        ('log_url = "http://roadie.example.com/{deploy_id}"', "must be https://"),
        ('environment_urls = { staging = "https://x.example" }', "no such environment"),
        ("scm_status = 1", "must be bool"),
        ("github_deployments = true", "unknown key"),
    ],
)
def test_a_bad_notify_table_is_a_config_error_naming_the_key(
    fake: FakeProviders, notify: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=r"apps\.shop\.notify") as raised:
        pipeline(fake, notify=notify)
    assert says in str(raised.value)
    assert "hooks.slack.com" not in str(raised.value)  # a pasted secret is never echoed


def test_scm_status_needs_an_scm_with_a_token() -> None:
    with pytest.raises(ConfigError, match=r"apps\.shop\.notify\.scm_status"):
        parse_pipeline(
            """
[apps.shop]
repository = "roadie-demo/shop"
source = { kind = "git", url = "/x/sources/shop" }
notify = { scm_status = true }
[apps.shop.environments.production]
branch = "main"
hosts = { tags = { App = "shop", Environment = "production" } }
""",
            {},
        )
