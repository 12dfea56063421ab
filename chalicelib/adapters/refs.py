"""How an app's refs resolve to SHAs: the S3 artifact store's ref objects, an SCM's API, or
``git ls-remote`` for a local git source (the embedded stack); ``Refs`` picks one per app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ..domain.errors import ConfigError, NotFoundError, UnavailableError
from ..domain.model import is_sha
from .git import GitRefs
from .scm import BitbucketRefs, GitHubRefs, GitLabRefs, candidates
from .secrets import ScmTokens

if TYPE_CHECKING:
    from ..domain.pipeline import AppConfig

MAX_REF_OBJECT = 128  # a SHA and a newline


class AppRefResolver(Protocol):
    def resolve(self, app: AppConfig, ref: str) -> str: ...
    def commit_exists(self, app: AppConfig, sha: str) -> bool | None: ...
    def commit_time(self, app: AppConfig, sha: str) -> str | None: ...


class S3Refs:
    """Refs of an ``s3`` source. CI writes ``<url>/<app>/refs/heads/<branch>`` and
    ``<url>/<app>/refs/tags/<tag>`` objects holding the 40-hex SHA, next to the
    ``<url>/<app>/<sha>.tar.gz`` the host script fetches; keys are joined as that script joins
    them. The client is built on first use, so apps that never ask build none."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._client_factory = client_factory
        self._client: Any = None

    def resolve(self, app: AppConfig, ref: str) -> str:
        url = app.source.url
        if app.source.kind != "s3" or not url.startswith("s3://"):
            raise ConfigError(f"apps.{app.name}.source.url: not an s3:// source")
        for kind, name in candidates(ref):
            # "$SOURCE_URL/$APP/..." exactly as the host script spells the artifact's URL
            object_url = f"{url}/{app.name}/refs/{kind}/{name}"
            bucket, _, key = object_url.removeprefix("s3://").partition("/")
            sha = self._read(bucket, key)
            if sha is not None:
                return sha
        raise NotFoundError(f"ref {ref!r} has no ref object under {url}/{app.name}/refs/")

    def commit_exists(self, app: AppConfig, sha: str) -> bool | None:
        """None: an s3 source has no repository to ask, and the functions may read only its
        ref objects (infra/iam.py), not the artifacts; staging fetches ``<sha>.tar.gz``."""
        return None

    def commit_time(self, app: AppConfig, sha: str) -> str | None:
        """None: an artifact store keeps no commit times."""
        return None

    def _read(self, bucket: str, key: str) -> str | None:
        if self._client is None:
            self._client = self._client_factory()
        where = f"s3://{bucket}/{key}"
        try:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                raw = body.read(MAX_REF_OBJECT + 1)
            finally:
                body.close()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return None
            if code == "NoSuchBucket":
                raise NotFoundError(f"artifact bucket {bucket} does not exist") from exc
            hint = " (without s3:ListBucket a missing key reads as AccessDenied)"
            raise UnavailableError(
                f"cannot read {where}: {code or 'error'}{hint if code == 'AccessDenied' else ''}"
            ) from exc
        except BotoCoreError as exc:
            raise UnavailableError(f"cannot read {where}: {type(exc).__name__}") from exc
        sha = raw.decode("ascii", "replace").strip() if len(raw) <= MAX_REF_OBJECT else ""
        if not is_sha(sha):
            raise UnavailableError(f"{where} does not hold a 40-hex commit SHA")
        return sha


class Refs:
    """Picks the resolver per app: an ``s3`` source reads the artifact store's ref objects; an
    app with an ``scm`` table asks that provider's API; any other (a local git source, as the
    embedded stack has) runs ``git ls-remote``."""

    def __init__(
        self,
        *,
        git: AppRefResolver,
        s3: AppRefResolver,
        scm: Mapping[str, AppRefResolver],
    ) -> None:
        self._git = git
        self._s3 = s3
        self._scm = dict(scm)

    @classmethod
    def standard(cls, *, s3_client: Callable[[], Any], max_age: int) -> Refs:
        tokens = ScmTokens(max_age)
        return cls(
            git=GitRefs(),
            s3=S3Refs(s3_client),
            scm={
                "github": GitHubRefs(tokens),
                "gitlab": GitLabRefs(tokens),
                "bitbucket": BitbucketRefs(tokens),
            },
        )

    def for_app(self, app: AppConfig) -> AppRefResolver:
        if app.source.kind == "s3":
            return self._s3
        if app.scm is not None:
            try:
                return self._scm[app.scm.provider]
            except KeyError:
                raise ConfigError(f"apps.{app.name}.scm.provider: no resolver for it") from None
        return self._git

    def resolve(self, app: AppConfig, ref: str) -> str:
        return self.for_app(app).resolve(app, ref)

    def commit_exists(self, app: AppConfig, sha: str) -> bool | None:
        return self.for_app(app).commit_exists(app, sha)

    def commit_time(self, app: AppConfig, sha: str) -> str | None:
        return self.for_app(app).commit_time(app, sha)
