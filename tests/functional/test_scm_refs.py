"""Refs resolve to SHAs without a git binary: each SCM's API against a fake served on 127.0.0.1,
tokens read from moto's SSM and Secrets Manager, and S3 ref objects in moto's S3.

The fake SCM knows one small repository (a branch, a branch with a slash, a lightweight tag,
an annotated tag, and a branch and a tag both called ``dup``). It checks every request (GET,
the exact path and encoding, the Accept and auth headers: 401 for a wrong or missing token
when one is configured, 400 for credentials nobody asked for) and records them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from chalicelib.adapters.refs import Refs, S3Refs
from chalicelib.adapters.scm import ApiRefs, BitbucketRefs, GitHubRefs, GitLabRefs
from chalicelib.adapters.secrets import ScmTokens, SecretsError
from chalicelib.config import AppConfig, parse_pipeline
from chalicelib.domain.errors import NotFoundError, UnavailableError

TOKEN = "scm-token-7f3a9c-never-in-a-message"
WRONG_TOKEN = "scm-token-wrong-0b1e55"
PARAMETER = "/roadie/test/scm/token"
SECRET = "roadie/test/scm-token"
REGION = "us-east-1"

MAIN, RELEASE, V1, V2_OBJECT, V2, DUP_BRANCH, DUP_TAG = (c * 40 for c in "1234567")
BRANCHES = {"main": MAIN, "release/1.x": RELEASE, "dup": DUP_BRANCH}
TAGS = {"v1": V1, "v2": V2, "dup": DUP_TAG}  # each tag's commit
TAG_OBJECTS = {"v2": V2_OBJECT}  # annotated tags: the tag object's own SHA
COMMITS = {*BRANCHES.values(), *TAGS.values()}
NOT_A_COMMIT = "8" * 40
REPOS = {
    "github": "roadie-demo/shop",
    "gitlab": "roadie-demo/apps/shop",
    "bitbucket": "roadie-demo/shop",
}
PREFIX = {"github": "/gh/api/v3", "gitlab": "/gl/api/v4", "bitbucket": "/bb/2.0"}
RESOLVERS: dict[str, type[ApiRefs]] = {
    "github": GitHubRefs,
    "gitlab": GitLabRefs,
    "bitbucket": BitbucketRefs,
}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # raw, as sent (still percent-encoded)
    headers: dict[str, str]  # lower-case names


class FakeScm:
    """GitHub, GitLab and Bitbucket Cloud, each under its own path prefix of one server."""

    def __init__(self) -> None:
        self.expected_token: str | None = None
        self.mode = "ok"  # "ok" | "500" | "hang" | "html"
        self.requests: list[Seen] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.handle(self)

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

    def url(self, provider: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{PREFIX[provider]}"

    def start(self) -> FakeScm:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]

    # -- the API
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Seen(request.command, request.path, headers))
        if self.mode == "hang":
            self.release.wait(10)
        status, body, extra = self.answer(request.command, request.path, headers)
        if self.mode == "500":
            status, body = 500, {"message": "Internal Server Error"}
        raw = b"<html>maintenance</html>" if self.mode == "html" else json.dumps(body).encode()
        request.send_response(status)
        for name, value in extra.items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)

    def answer(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        provider = next((p for p, prefix in PREFIX.items() if path.startswith(prefix + "/")), "")
        if method != "GET" or not provider:
            return 405, {"message": "GET only"}, {}
        accept = "application/vnd.github+json" if provider == "github" else "application/json"
        if headers.get("accept") != accept:
            return 406, {"message": f"Accept must be {accept}"}, {}
        auth = "private-token" if provider == "gitlab" else "authorization"
        sent = headers.get(auth)
        if self.expected_token is None:
            if "authorization" in headers or "private-token" in headers:
                return 400, {"message": "credentials for a public repository"}, {}
        elif sent != (
            self.expected_token if provider == "gitlab" else f"Bearer {self.expected_token}"
        ):
            return 401, {"message": "Bad credentials"}, {}
        rest = path.removeprefix(PREFIX[provider])
        return getattr(self, provider)(rest)

    def github(self, rest: str) -> tuple[int, Any, dict[str, str]]:
        for old, location in (
            ("/repos/old-name/shop/", self.url("github")),  # a renamed repository
            ("/repos/moved-away/shop/", self.url("github", host="localhost")),
        ):
            if rest.startswith(old):
                tail = rest.removeprefix(old)
                return 301, {}, {"Location": f"{location}/repos/roadie-demo/shop/{tail}"}
        commits = "/repos/roadie-demo/shop/commits/"
        if rest.startswith(commits):
            sha = rest.removeprefix(commits)
            if sha in COMMITS:
                return 200, {"sha": sha, "commit": {"message": "x"}}, {}
            return 422, {"message": f"No commit found for SHA: {sha}"}, {}
        base = "/repos/roadie-demo/shop/git/"
        if not rest.startswith(base):
            return 404, {"message": "Not Found"}, {}
        rest = rest.removeprefix(base)
        if rest.startswith("tags/"):
            sha = rest.removeprefix("tags/")
            for name, object_sha in TAG_OBJECTS.items():
                if object_sha == sha:
                    return 200, {"sha": sha, "tag": name, "object": _obj("commit", TAGS[name])}, {}
            return 404, {"message": "Not Found"}, {}
        kind, _, name = rest.removeprefix("ref/").partition("/")
        name = unquote(name)
        if kind == "heads" and name in BRANCHES:
            return 200, {"ref": f"refs/heads/{name}", "object": _obj("commit", BRANCHES[name])}, {}
        if kind == "tags" and name in TAGS:
            target = (
                _obj("tag", TAG_OBJECTS[name])
                if name in TAG_OBJECTS
                else _obj("commit", TAGS[name])
            )
            return 200, {"ref": f"refs/tags/{name}", "object": target}, {}
        return 404, {"message": "Not Found"}, {}

    def gitlab(self, rest: str) -> tuple[int, Any, dict[str, str]]:
        project = "/projects/" + quote(REPOS["gitlab"], safe="") + "/repository/"
        if not rest.startswith(project):
            return 404, {"message": "404 Project Not Found"}, {}
        collection, _, name = rest.removeprefix(project).partition("/")
        if collection == "commits":
            if name in COMMITS:
                return 200, {"id": name, "short_id": name[:8]}, {}
            return 404, {"message": "404 Commit Not Found"}, {}
        if "/" in name:  # the name must arrive encoded: release%2F1.x
            return 404, {"message": "404 Not Found"}, {}
        name = unquote(name)
        if collection == "branches" and name in BRANCHES:
            return 200, {"name": name, "commit": {"id": BRANCHES[name]}}, {}
        if collection == "tags" and name in TAGS:
            target = TAG_OBJECTS.get(name, TAGS[name])
            return 200, {"name": name, "target": target, "commit": {"id": TAGS[name]}}, {}
        return 404, {"message": "404 Tag Not Found"}, {}

    def bitbucket(self, rest: str) -> tuple[int, Any, dict[str, str]]:
        commit = "/repositories/roadie-demo/shop/commit/"
        if rest.startswith(commit):
            sha = rest.removeprefix(commit)
            if sha in COMMITS:
                return 200, {"type": "commit", "hash": sha}, {}
            return 404, {"type": "error", "error": {"message": f"Commit not found: {sha}"}}, {}
        base = "/repositories/roadie-demo/shop/refs/"
        if not rest.startswith(base):
            return 404, {"type": "error", "error": {"message": "Repository not found"}}, {}
        collection, _, name = rest.removeprefix(base).partition("/")
        name = unquote(name)
        refs = BRANCHES if collection == "branches" else TAGS if collection == "tags" else {}
        if name in refs:
            return 200, {"name": name, "target": {"type": "commit", "hash": refs[name]}}, {}
        return 404, {"type": "error", "error": {"message": f"{name} not found"}}, {}


def _obj(kind: str, sha: str) -> dict[str, str]:
    return {"type": kind, "sha": sha, "url": f"https://example.invalid/{sha}"}


@pytest.fixture
def scm() -> Iterator[FakeScm]:
    fake = FakeScm().start()
    yield fake
    fake.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for SSM, Secrets Manager and S3; never the embedded stack's server."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_REGION", REGION),
    ):
        monkeypatch.setenv(name, value)
    parameters.clear_caches()
    with mock_aws():
        yield
    parameters.clear_caches()


class NoTokens:
    """For apps without a token: reading one is a bug."""

    def read(self, reference: str) -> str:
        raise AssertionError(f"no token should be read, asked for {reference}")


def app_for(provider: str, api_url: str, token: str | None = None) -> AppConfig:
    token_line = f'token = "{token}"\n' if token else ""
    toml = f"""
[apps.shop]
repository = "{REPOS[provider]}"
source = {{ kind = "git", url = "git@example.com:{REPOS[provider]}.git" }}
[apps.shop.scm]
provider = "{provider}"
api_url = "{api_url}"
{token_line}
[apps.shop.environments.production]
branch = "main"
hosts = {{ tags = {{ App = "shop" }} }}
"""
    return parse_pipeline(toml, {}).app("shop")


def resolver(provider: str, tokens: Any = None, timeout: float = 3.0) -> ApiRefs:
    return RESOLVERS[provider](tokens or NoTokens(), timeout_seconds=timeout)


def messages(exc: BaseException) -> str:
    """Every message in the exception's cause and context chain."""
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 10:
        seen += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(seen)


PROVIDERS = ["github", "gitlab", "bitbucket"]


# --- branches, tags, the order, the paths -------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_branch_resolves_with_one_get(scm: FakeScm, provider: str) -> None:
    app = app_for(provider, scm.url(provider))
    assert resolver(provider).resolve(app, "main") == MAIN
    assert len(scm.requests) == 1 and scm.requests[0].method == "GET"
    assert "authorization" not in scm.requests[0].headers
    assert "private-token" not in scm.requests[0].headers


COMMIT_PATHS = {
    "github": f"/gh/api/v3/repos/roadie-demo/shop/commits/{MAIN}",
    "gitlab": f"/gl/api/v4/projects/roadie-demo%2Fapps%2Fshop/repository/commits/{MAIN}",
    "bitbucket": f"/bb/2.0/repositories/roadie-demo/shop/commit/{MAIN}",
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_sha_is_looked_up_as_a_commit_with_one_get(scm: FakeScm, provider: str) -> None:
    app = app_for(provider, scm.url(provider))
    assert resolver(provider).commit_exists(app, MAIN) is True
    assert scm.paths() == [COMMIT_PATHS[provider]]
    assert resolver(provider).commit_exists(app, NOT_A_COMMIT) is False
    assert resolver(provider).commit_exists(app, V2_OBJECT) is False  # a tag object, no commit


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_commit_lookup_the_api_refuses_is_unavailable_not_unknown(
    scm: FakeScm, provider: str
) -> None:
    scm.expected_token = TOKEN  # the repository is private; the app sends no token
    with pytest.raises(UnavailableError, match=r"\(401\)"):
        resolver(provider).commit_exists(app_for(provider, scm.url(provider)), MAIN)


EXPECTED_PATHS = {
    "github": [
        "/gh/api/v3/repos/roadie-demo/shop/git/ref/heads/release/1.x",
    ],
    "gitlab": [
        "/gl/api/v4/projects/roadie-demo%2Fapps%2Fshop/repository/branches/release%2F1.x",
    ],
    "bitbucket": [
        "/bb/2.0/repositories/roadie-demo/shop/refs/branches/release/1.x",
    ],
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_branch_with_a_slash_goes_into_the_path_as_each_api_wants(
    scm: FakeScm, provider: str
) -> None:
    app = app_for(provider, scm.url(provider))
    assert resolver(provider).resolve(app, "release/1.x") == RELEASE
    assert scm.paths() == EXPECTED_PATHS[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_tag_is_asked_for_after_the_branch(scm: FakeScm, provider: str) -> None:
    app = app_for(provider, scm.url(provider))
    assert resolver(provider).resolve(app, "v1") == V1
    assert [p.rsplit("/", 2)[-2:] for p in scm.paths()] in (
        [["heads", "v1"], ["tags", "v1"]],
        [["branches", "v1"], ["tags", "v1"]],
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_annotated_tag_resolves_to_its_commit_not_the_tag_object(
    scm: FakeScm, provider: str
) -> None:
    app = app_for(provider, scm.url(provider))
    assert resolver(provider).resolve(app, "v2") == V2


def test_github_peels_an_annotated_tag_through_its_tag_object(scm: FakeScm) -> None:
    resolver("github").resolve(app_for("github", scm.url("github")), "v2")
    assert scm.paths() == [
        "/gh/api/v3/repos/roadie-demo/shop/git/ref/heads/v2",
        "/gh/api/v3/repos/roadie-demo/shop/git/ref/tags/v2",
        f"/gh/api/v3/repos/roadie-demo/shop/git/tags/{V2_OBJECT}",
    ]
    assert all(s.headers["accept"] == "application/vnd.github+json" for s in scm.requests)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_branch_wins_over_a_tag_of_the_same_name_as_git_decides(
    scm: FakeScm, provider: str
) -> None:
    app = app_for(provider, scm.url(provider))
    assert resolver(provider).resolve(app, "dup") == DUP_BRANCH
    assert resolver(provider).resolve(app, "refs/tags/dup") == DUP_TAG
    assert resolver(provider).resolve(app, "refs/heads/dup") == DUP_BRANCH


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unknown_ref_is_not_found(scm: FakeScm, provider: str) -> None:
    app = app_for(provider, scm.url(provider))
    with pytest.raises(NotFoundError, match=r"'nope' is no branch or tag of roadie-demo/"):
        resolver(provider).resolve(app, "nope")
    assert len(scm.requests) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unknown_repository_is_not_found(scm: FakeScm, provider: str) -> None:
    app = app_for(provider, scm.url(provider))
    app = AppConfig(**{**app.__dict__, "repository": "roadie-demo/other"})
    with pytest.raises(NotFoundError):
        resolver(provider).resolve(app, "main")


def test_the_standard_composite_asks_the_apps_provider(scm: FakeScm) -> None:
    refs = Refs.standard(s3_client=lambda: pytest.fail("no S3 client for an scm app"), max_age=5)
    assert refs.resolve(app_for("gitlab", scm.url("gitlab")), "main") == MAIN


# --- tokens: sent exactly when configured, read from SSM or Secrets Manager --------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_token_from_an_ssm_securestring_is_sent(scm: FakeScm, aws: None, provider: str) -> None:
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=TOKEN, Type="SecureString")
    scm.expected_token = TOKEN
    app = app_for(provider, scm.url(provider), token=PARAMETER)
    assert resolver(provider, ScmTokens(max_age=60)).resolve(app, "main") == MAIN
    headers = scm.requests[0].headers
    if provider == "gitlab":
        assert headers["private-token"] == TOKEN and "authorization" not in headers
    else:
        assert headers["authorization"] == f"Bearer {TOKEN}" and "private-token" not in headers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_token_from_secrets_manager_is_sent(scm: FakeScm, aws: None, provider: str) -> None:
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=f"{TOKEN}\n")
    scm.expected_token = TOKEN
    app = app_for(provider, scm.url(provider), token=f"secretsmanager:{SECRET}")
    assert resolver(provider, ScmTokens(max_age=60)).resolve(app, "v1") == V1
    assert len(scm.requests) == 2


def test_the_token_is_read_once_per_max_age_not_per_call(scm: FakeScm, aws: None) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=PARAMETER, Value=TOKEN, Type="SecureString")
    scm.expected_token = TOKEN
    app = app_for("github", scm.url("github"), token=PARAMETER)
    github = resolver("github", ScmTokens(max_age=60))
    github.resolve(app, "main")
    ssm.put_parameter(Name=PARAMETER, Value=WRONG_TOKEN, Type="SecureString", Overwrite=True)
    assert github.resolve(app, "main") == MAIN  # still the cached token


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refused_token_is_unavailable_and_never_quoted(
    scm: FakeScm, aws: None, provider: str
) -> None:
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=WRONG_TOKEN, Type="SecureString")
    scm.expected_token = TOKEN
    app = app_for(provider, scm.url(provider), token=PARAMETER)
    with pytest.raises(UnavailableError, match=r"refused the configured token \(401\)") as raised:
        resolver(provider, ScmTokens(max_age=60)).resolve(app, "main")
    assert TOKEN not in messages(raised.value) and WRONG_TOKEN not in messages(raised.value)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_private_repository_without_a_configured_token_is_refused(
    scm: FakeScm, provider: str
) -> None:
    scm.expected_token = TOKEN
    with pytest.raises(UnavailableError, match="401"):
        resolver(provider).resolve(app_for(provider, scm.url(provider)), "main")


def test_a_missing_token_parameter_is_a_secrets_error_naming_it(scm: FakeScm, aws: None) -> None:
    app = app_for("github", scm.url("github"), token=PARAMETER)
    with pytest.raises(SecretsError, match=f"SCM token {PARAMETER} is unreadable"):
        resolver("github", ScmTokens(max_age=60)).resolve(app, "main")
    assert scm.requests == []


def test_a_token_that_cannot_be_a_header_is_refused_without_quoting_it(
    scm: FakeScm, aws: None
) -> None:
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=f"{TOKEN} {TOKEN}")
    app = app_for("bitbucket", scm.url("bitbucket"), token=f"secretsmanager:{SECRET}")
    with pytest.raises(SecretsError, match=f"SCM token secretsmanager:{SECRET} ") as raised:
        resolver("bitbucket", ScmTokens(max_age=60)).resolve(app, "main")
    assert TOKEN not in messages(raised.value) and scm.requests == []


# --- the SCM down, slow, odd, or redirecting ---------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_scm_that_is_down_is_unavailable(provider: str) -> None:
    stopped = FakeScm().start()
    app = app_for(provider, stopped.url(provider))
    stopped.stop()
    with pytest.raises(UnavailableError, match=r"did not answer: .*Connection ?[Rr]efused"):
        resolver(provider).resolve(app, "main")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_scm_answering_500_is_unavailable(scm: FakeScm, provider: str) -> None:
    scm.mode = "500"
    with pytest.raises(UnavailableError, match="answered HTTP 500"):
        resolver(provider).resolve(app_for(provider, scm.url(provider)), "main")


def test_an_scm_that_does_not_answer_in_time_is_unavailable(scm: FakeScm) -> None:
    scm.mode = "hang"
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="did not answer"):
        resolver("gitlab", timeout=0.3).resolve(app_for("gitlab", scm.url("gitlab")), "main")
    assert time.monotonic() - started < 3


def test_an_answer_that_is_not_json_is_unavailable(scm: FakeScm) -> None:
    scm.mode = "html"
    with pytest.raises(UnavailableError, match="not JSON"):
        resolver("github").resolve(app_for("github", scm.url("github")), "main")


def test_a_redirect_on_the_same_host_is_followed_with_the_token(scm: FakeScm, aws: None) -> None:
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=TOKEN, Type="SecureString")
    scm.expected_token = TOKEN
    app = app_for("github", scm.url("github"), token=PARAMETER)
    app = AppConfig(**{**app.__dict__, "repository": "old-name/shop"})
    assert resolver("github", ScmTokens(max_age=60)).resolve(app, "main") == MAIN
    assert scm.paths() == [
        "/gh/api/v3/repos/old-name/shop/git/ref/heads/main",
        "/gh/api/v3/repos/roadie-demo/shop/git/ref/heads/main",
    ]


def test_a_redirect_to_another_host_is_not_followed(scm: FakeScm, aws: None) -> None:
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=TOKEN, Type="SecureString")
    scm.expected_token = TOKEN
    app = app_for("github", scm.url("github"), token=PARAMETER)
    app = AppConfig(**{**app.__dict__, "repository": "moved-away/shop"})
    with pytest.raises(UnavailableError, match=r"redirected away \(301\)") as raised:
        resolver("github", ScmTokens(max_age=60)).resolve(app, "main")
    assert len(scm.requests) == 1  # nothing went to "localhost", with or without the token
    assert not any(s.headers.get("host", "").startswith("localhost") for s in scm.requests)
    assert TOKEN not in messages(raised.value)


# --- S3 ref objects in moto's S3 ----------------------------------------------------------------


@pytest.fixture
def bucket(aws: None) -> Any:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="roadie-artifacts")
    s3.put_object(Bucket="roadie-artifacts", Key="ci/shop/refs/heads/main", Body=f"{MAIN}\n")
    s3.put_object(Bucket="roadie-artifacts", Key="ci/shop/refs/tags/v1", Body=V1)
    s3.put_object(Bucket="roadie-artifacts", Key="ci/shop/refs/heads/dup", Body=DUP_BRANCH)
    s3.put_object(Bucket="roadie-artifacts", Key="ci/shop/refs/tags/dup", Body=DUP_TAG)
    return s3


def s3_app(url: str = "s3://roadie-artifacts/ci") -> AppConfig:
    return AppConfig(
        name="shop",
        repository="roadie-demo/shop",
        source=parse_pipeline(
            f"""
[apps.shop]
repository = "roadie-demo/shop"
source = {{ kind = "s3", url = "{url}" }}
[apps.shop.environments.production]
branch = "main"
hosts = {{ tags = {{ App = "shop" }} }}
""",
            {},
        )
        .app("shop")
        .source,
        deploy_root="/srv/roadie",
        commands={},
    )


@pytest.mark.parametrize(("ref", "sha"), [("main", MAIN), ("v1", V1), ("dup", DUP_BRANCH)])
def test_s3_ref_objects_resolve_branch_first_then_tag(bucket: Any, ref: str, sha: str) -> None:
    assert S3Refs(lambda: bucket).resolve(s3_app(), ref) == sha


def test_a_missing_s3_ref_object_is_not_found(bucket: Any) -> None:
    with pytest.raises(NotFoundError, match="'nope' has no ref object under s3://roadie-arti"):
        S3Refs(lambda: bucket).resolve(s3_app(), "nope")


def test_a_missing_artifact_bucket_is_not_found(bucket: Any) -> None:
    with pytest.raises(NotFoundError, match="bucket no-such-bucket does not exist"):
        S3Refs(lambda: bucket).resolve(s3_app("s3://no-such-bucket"), "main")


def test_the_standard_composite_reads_s3_refs_for_an_s3_source(bucket: Any) -> None:
    refs = Refs.standard(s3_client=lambda: boto3.client("s3", region_name=REGION), max_age=5)
    assert refs.resolve(s3_app(), "refs/tags/dup") == DUP_TAG
