"""Which resolver answers for an app (``Refs``), the branch-then-tag order, and the S3 ref
objects' key layout: with fakes, no moto and no network."""

from __future__ import annotations

import io
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.refs import Refs, S3Refs
from chalicelib.adapters.scm import candidates
from chalicelib.config import AppConfig, ScmConfig, Source
from chalicelib.domain.errors import ConfigError, NotFoundError, UnavailableError, ValidationError

SHA = "a" * 40
TAG_SHA = "b" * 40


def app(kind: str = "git", url: str = "/x/sources/shop", provider: str | None = None) -> AppConfig:
    scm = ScmConfig(provider, f"https://{provider}.example") if provider else None
    return AppConfig(
        name="shop",
        repository="roadie-demo/shop",
        source=Source(kind, url),
        deploy_root="/srv/roadie",
        commands={},
        scm=scm,
    )


class NamedResolver:
    """Answers with its own name so a test sees who was asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.asked: list[tuple[str, str]] = []

    def resolve(self, app: AppConfig, ref: str) -> str:
        self.asked.append((app.name, ref))
        return self.name


def refs() -> tuple[Refs, dict[str, NamedResolver]]:
    named = {n: NamedResolver(n) for n in ("git", "s3", "github", "gitlab", "bitbucket")}
    composite = Refs(
        git=named["git"],
        s3=named["s3"],
        scm={p: named[p] for p in ("github", "gitlab", "bitbucket")},
    )
    return composite, named


# --- Refs: one resolver per app -----------------------------------------------------------------


def test_an_s3_source_reads_the_artifact_store_even_with_an_scm_table() -> None:
    composite, named = refs()
    assert composite.resolve(app("s3", "s3://artifacts", provider="github"), "main") == "s3"
    assert named["github"].asked == [] and named["git"].asked == []


@pytest.mark.parametrize("provider", ["github", "gitlab", "bitbucket"])
def test_an_scm_table_sends_a_git_source_to_that_providers_api(provider: str) -> None:
    composite, named = refs()
    url = "git@example.com:roadie-demo/shop.git"
    assert composite.resolve(app("git", url, provider=provider), "v1") == provider
    assert named[provider].asked == [("shop", "v1")]
    assert named["git"].asked == []


def test_a_git_source_without_an_scm_table_runs_git() -> None:
    composite, named = refs()
    assert composite.resolve(app(), "main") == "git"
    assert named["git"].asked == [("shop", "main")]


def test_a_provider_without_a_resolver_is_a_config_error_naming_the_key() -> None:
    composite = Refs(git=NamedResolver("git"), s3=NamedResolver("s3"), scm={})
    with pytest.raises(ConfigError, match=r"^apps\.shop\.scm\.provider: "):
        composite.resolve(app(provider="github"), "main")


def test_the_standard_composite_builds_no_s3_client_until_an_s3_app_asks() -> None:
    built: list[FakeS3] = []

    def factory() -> FakeS3:
        built.append(FakeS3({"shop/refs/heads/main": f"{SHA}\n"}))
        return built[-1]

    composite = Refs.standard(s3_client=factory, max_age=60)
    assert built == []
    assert composite.resolve(app("s3", "s3://artifacts"), "main") == SHA
    assert composite.resolve(app("s3", "s3://artifacts"), "main") == SHA
    assert len(built) == 1


# --- the order every resolver asks in -----------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("main", [("heads", "main"), ("tags", "main")]),
        ("release/1.x", [("heads", "release/1.x"), ("tags", "release/1.x")]),
        ("refs/heads/main", [("heads", "main")]),
        ("refs/tags/v1", [("tags", "v1")]),
    ],
)
def test_a_ref_is_looked_up_as_a_branch_then_a_tag(ref: str, expected: list[Any]) -> None:
    assert candidates(ref) == expected


@pytest.mark.parametrize("ref", ["", "-x", "a..b", "a b", "main;id", "refs/heads/", "x" * 201])
def test_a_bad_ref_is_refused_before_anything_is_asked(ref: str) -> None:
    with pytest.raises(ValidationError):
        candidates(ref)


# --- S3Refs against a fake client -------------------------------------------------------------


class FakeS3:
    """``get_object`` over a dict of keys, raising S3's error shapes."""

    def __init__(self, objects: dict[str, str], bucket: str = "artifacts") -> None:
        self.objects = objects
        self.bucket = bucket
        self.asked: list[tuple[str, str]] = []
        self.error: str | None = None

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.asked.append((Bucket, Key))
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "GetObject")
        if Bucket != self.bucket:
            raise ClientError({"Error": {"Code": "NoSuchBucket", "Message": "x"}}, "GetObject")
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "x"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key].encode())}


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("s3://artifacts", "shop/refs/heads/main"),
        ("s3://artifacts/ci/builds", "ci/builds/shop/refs/heads/main"),
    ],
)
def test_s3_ref_objects_sit_next_to_the_artifacts(url: str, key: str) -> None:
    s3 = FakeS3({key: SHA})
    assert S3Refs(lambda: s3).resolve(app("s3", url), "main") == SHA
    assert s3.asked == [("artifacts", key)]


def test_s3_asks_for_the_branch_then_the_tag() -> None:
    s3 = FakeS3({"shop/refs/tags/v1": f"{TAG_SHA}\n"})
    assert S3Refs(lambda: s3).resolve(app("s3", "s3://artifacts"), "v1") == TAG_SHA
    assert [key for _, key in s3.asked] == ["shop/refs/heads/v1", "shop/refs/tags/v1"]


def test_s3_prefers_the_branch_when_a_tag_has_the_same_name() -> None:
    s3 = FakeS3({"shop/refs/heads/dup": SHA, "shop/refs/tags/dup": TAG_SHA})
    assert S3Refs(lambda: s3).resolve(app("s3", "s3://artifacts"), "dup") == SHA


def test_s3_without_either_object_is_not_found() -> None:
    s3 = FakeS3({})
    with pytest.raises(NotFoundError, match="'nope'"):
        S3Refs(lambda: s3).resolve(app("s3", "s3://artifacts"), "nope")


@pytest.mark.parametrize("body", ["", "main", SHA.upper(), SHA[:39], SHA + SHA, "x" * 200])
def test_s3_object_that_holds_no_sha_is_unavailable_not_a_wrong_deploy(body: str) -> None:
    s3 = FakeS3({"shop/refs/heads/main": body})
    with pytest.raises(UnavailableError, match="does not hold a 40-hex commit SHA"):
        S3Refs(lambda: s3).resolve(app("s3", "s3://artifacts"), "main")


def test_s3_access_denied_is_unavailable_and_says_why_a_missing_key_might_read_so() -> None:
    s3 = FakeS3({})
    s3.error = "AccessDenied"
    with pytest.raises(UnavailableError, match=r"AccessDenied .*s3:ListBucket"):
        S3Refs(lambda: s3).resolve(app("s3", "s3://artifacts"), "main")


def test_s3_missing_bucket_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="bucket other does not exist"):
        S3Refs(lambda: FakeS3({})).resolve(app("s3", "s3://other"), "main")


def test_s3_refs_refuse_an_app_whose_source_is_not_s3() -> None:
    with pytest.raises(ConfigError, match=r"^apps\.shop\.source\.url: "):
        S3Refs(lambda: FakeS3({})).resolve(app(), "main")


# --- GitRefs: is a SHA a commit of the local repository? ----------------------------------------


def _git(cwd: Any, *args: str) -> str:
    import subprocess

    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True)
    return done.stdout.decode().strip()


def test_a_local_git_source_answers_whether_a_sha_is_a_commit(tmp_path: Any) -> None:
    from chalicelib.adapters.git import GitRefs

    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "commit", "-q", "-m", "one")
    commit = _git(tmp_path, "rev-parse", "HEAD")
    tree = _git(tmp_path, "rev-parse", "HEAD^{tree}")
    refs = GitRefs()
    assert refs.commit_exists(app(url=str(tmp_path)), commit) is True
    assert refs.commit_exists(app(url=f"file://{tmp_path}"), commit) is True
    assert refs.commit_exists(app(url=str(tmp_path)), "f" * 40) is False
    assert refs.commit_exists(app(url=str(tmp_path)), tree) is False  # an object, no commit
    assert refs.commit_exists(app(url="https://example.invalid/shop.git"), commit) is None
    assert refs.commit_exists(app(url="git@example.invalid:shop.git"), commit) is None
    with pytest.raises(ValidationError):
        refs.commit_exists(app(url=str(tmp_path)), "HEAD")
    with pytest.raises(NotFoundError):
        refs.commit_exists(app(url=str(tmp_path / "nowhere")), commit)


def test_an_s3_source_cannot_tell_and_refs_ask_the_apps_resolver() -> None:
    assert S3Refs(lambda: None).commit_exists(app("s3", "s3://artifacts"), SHA) is None


def test_a_local_git_source_tells_a_commits_time_and_nothing_else_fails(tmp_path: Any) -> None:
    from chalicelib.adapters.git import GitRefs

    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "one")
    commit = _git(tmp_path, "rev-parse", "HEAD")
    expected = _git(tmp_path, "show", "-s", "--format=%cI", "HEAD")
    refs = GitRefs()
    assert refs.commit_time(app(url=str(tmp_path)), commit) == expected
    assert refs.commit_time(app(url=str(tmp_path)), "f" * 40) is None  # no such commit
    assert refs.commit_time(app(url=str(tmp_path / "nowhere")), commit) is None
    assert refs.commit_time(app(url="https://example.invalid/shop.git"), commit) is None
    assert S3Refs(lambda: None).commit_time(app("s3", "s3://artifacts"), commit) is None
