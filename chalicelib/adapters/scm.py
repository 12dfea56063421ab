"""Resolves a branch or tag to a commit SHA through an SCM's REST API (Lambda has no git binary).

Every provider is asked for the branch first and the tag second, as ``git ls-remote`` answers
and ``GitRefs`` decides, so a branch and a tag of the same name resolve to the branch; a ref
spelled ``refs/heads/<name>`` or ``refs/tags/<name>`` asks for that one only.

GitHub: the ref endpoints (``/git/ref/heads/<ref>``, then ``/git/ref/tags/<ref>``), not
``/commits/<ref>`` with ``Accept: application/vnd.github.sha``. The commits endpoint answers in
one call, but it takes any commit-ish (a SHA prefix, ``main~3``), gives no say over which wins
when a branch and a tag share a name, and does not tell which one it found; the ref endpoints
match exactly, in our order, for one call per branch (two to three for a tag). An annotated
tag's ref points at a tag object, peeled through ``/git/tags/<sha>`` until a commit.
A SHA given directly is looked up as a commit (``commit_exists``): GitHub
``/repos/<repo>/commits/<sha>``, GitLab ``/projects/<path>/repository/commits/<sha>``,
Bitbucket ``/repositories/<workspace>/<repo>/commit/<sha>``.
GitLab: ``/projects/<url-encoded path>/repository/branches/<ref>`` then ``.../tags/<ref>``
(a tag's ``commit.id`` is already peeled). Bitbucket Cloud: ``/repositories/<workspace>/<repo>
/refs/branches/<ref>`` then ``.../refs/tags/<ref>`` (``target.hash`` is the commit).

Every call has a timeout, follows redirects only to the same scheme, host and port, and reads
at most ``MAX_BODY`` bytes. A 404 means no such ref (or a repository the token cannot see);
a refused token, a rate limit, a 5xx, a timeout or an unreadable answer is ``UnavailableError``
(infrastructure, not bad input). Tokens go into a header only; no error message carries one.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import quote, urlsplit

from ..domain.errors import ConfigError, NotFoundError, UnavailableError, ValidationError
from ..domain.model import is_ref, is_sha

if TYPE_CHECKING:
    from ..domain.pipeline import AppConfig, ScmConfig

MAX_BODY = 1 << 20  # a ref answer is a few KiB; GitLab's branch answer carries one commit
USER_AGENT = "roadie-deploy"
BRANCH, TAG = "heads", "tags"


class TokenSource(Protocol):
    def read(self, reference: str) -> str: ...


def candidates(ref: str) -> list[tuple[str, str]]:
    """(kind, name) pairs to look up in order: the branch, then the tag."""
    if not is_ref(ref):
        raise ValidationError(f"ref {ref!r} is not a valid branch or tag name")
    for kind in (BRANCH, TAG):
        prefix = f"refs/{kind}/"
        if ref.startswith(prefix):
            name = ref.removeprefix(prefix).strip("/")
            if not name:
                raise ValidationError(f"ref {ref!r} names no branch or tag")
            return [(kind, name)]
    return [(BRANCH, ref), (TAG, ref)]


def _describe(exc: Exception) -> str:
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, str):
        return reason
    text = str(reason)
    return f"{type(reason).__name__}: {text}" if text else type(reason).__name__


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the same scheme, host and port (a renamed repository);
    anything else surfaces as the 3xx itself, so a token never leaves for another host."""

    max_redirections = 3

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class ApiRefs:
    """One SCM's API; subclasses say where a branch or a tag lives and where its SHA is."""

    provider: ClassVar[str]

    def __init__(self, tokens: TokenSource, timeout_seconds: float = 5.0) -> None:
        self._tokens = tokens
        self._timeout = timeout_seconds
        self._opener = urllib.request.build_opener(_SameHostRedirects)

    def resolve(self, app: AppConfig, ref: str) -> str:
        scm = app.scm
        if scm is None or scm.provider != self.provider:
            raise ConfigError(
                f"apps.{app.name}.scm: {self.provider} cannot resolve this app's refs"
            )
        wanted = candidates(ref)
        headers = self._headers(scm)
        for kind, name in wanted:
            sha = self._lookup(scm.api_url, app.repository, kind, name, headers)
            if sha is not None:
                return sha
        kinds = " or ".join("branch" if kind == BRANCH else "tag" for kind, _ in wanted)
        raise NotFoundError(
            f"ref {ref!r} is no {kinds} of {app.repository} on {self.provider} "
            "(or the repository is not visible with the configured token)"
        )

    def commit_time(self, app: AppConfig, sha: str) -> str | None:
        """None: not asked of the provider's API (a push or CI delivery carries the head
        commit's time; an API deploy of an SCM app has no lead time)."""
        return None

    def commit_exists(self, app: AppConfig, sha: str) -> bool:
        """True if ``sha`` (40 hex) is a commit of ``app``'s repository: one GET of the
        provider's commit endpoint; a 404 (GitHub also answers 422) means no such commit."""
        scm = app.scm
        if scm is None or scm.provider != self.provider:
            raise ConfigError(
                f"apps.{app.name}.scm: {self.provider} cannot look up this app's commits"
            )
        if not is_sha(sha):
            raise ValidationError("sha must be 40 lower-case hex characters")
        answer = self._get(
            self._commit_url(scm.api_url, app.repository, sha), self._headers(scm), self.MISSING
        )
        return answer is not None and self._commit_sha(answer) == sha

    # -- per provider
    MISSING: ClassVar[tuple[int, ...]] = (404,)

    def _commit_url(self, api: str, repository: str, sha: str) -> str:
        raise NotImplementedError

    def _commit_sha(self, answer: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _lookup(
        self, api: str, repository: str, kind: str, name: str, headers: dict[str, str]
    ) -> str | None:
        raise NotImplementedError

    def _auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _accept(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    # -- shared
    def _headers(self, scm: ScmConfig) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **self._accept()}
        if scm.token:
            headers.update(self._auth(self._tokens.read(scm.token)))
        return headers

    def _get(
        self, url: str, headers: dict[str, str], missing: tuple[int, ...] = (404,)
    ) -> dict[str, Any] | None:
        """The JSON object at ``url``, or None for a 404 (or another ``missing`` status)."""
        host = urlsplit(url).netloc
        request = urllib.request.Request(url, headers=headers, method="GET")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                body = response.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in missing:
                return None
            raise UnavailableError(self._refusal(host, exc.code)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise UnavailableError(
                f"{self.provider} API at {host} did not answer: {_describe(exc)}"
            ) from None
        if len(body) > MAX_BODY:
            raise UnavailableError(f"{self.provider} API at {host} answered too much")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UnavailableError(f"{self.provider} API at {host} answered something not JSON")
        return answer

    def _refusal(self, host: str, status: int) -> str:
        what = {
            401: "refused the configured token (401): check it, or configure one",
            403: "refused the request (403): a missing permission or a rate limit",
            429: "is rate limiting us (429)",
        }.get(status)
        if what is None and 300 <= status < 400:
            what = f"redirected away ({status}); only same-host redirects are followed"
        return f"{self.provider} API at {host} {what or f'answered HTTP {status}'}"

    def _sha(self, value: Any, host_url: str) -> str:
        if isinstance(value, str) and is_sha(value):
            return value
        raise UnavailableError(
            f"{self.provider} API at {urlsplit(host_url).netloc} answered no commit SHA"
        )


class GitHubRefs(ApiRefs):
    provider = "github"
    MAX_TAG_DEPTH = 4  # a tag of a tag of a tag ... is legal; stop somewhere

    MISSING = (404, 422)  # 422: "No commit found for SHA"

    def _accept(self) -> dict[str, str]:
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

    def _commit_url(self, api: str, repository: str, sha: str) -> str:
        return f"{api}/repos/{quote(repository, safe='/')}/commits/{sha}"

    def _commit_sha(self, answer: dict[str, Any]) -> Any:
        return answer.get("sha")

    def _lookup(
        self, api: str, repository: str, kind: str, name: str, headers: dict[str, str]
    ) -> str | None:
        base = f"{api}/repos/{quote(repository, safe='/')}/git"
        answer = self._get(f"{base}/ref/{kind}/{quote(name, safe='/')}", headers)
        if answer is None:
            return None
        target = answer.get("object")
        for _ in range(self.MAX_TAG_DEPTH + 1):
            if not isinstance(target, dict):
                break
            sha = self._sha(target.get("sha"), api)
            if target.get("type") == "commit":
                return sha
            if target.get("type") != "tag":
                raise ValidationError(f"{kind}/{name} points at a {target.get('type')}, no commit")
            tag = self._get(f"{base}/tags/{sha}", headers)
            if tag is None:
                raise UnavailableError(f"github lost tag object {sha} of tags/{name}")
            target = tag.get("object")
        raise UnavailableError(f"github answered no commit for {kind}/{name}")


class GitLabRefs(ApiRefs):
    provider = "gitlab"

    def _auth(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token}  # personal, project and group access tokens alike

    def _commit_url(self, api: str, repository: str, sha: str) -> str:
        return f"{api}/projects/{quote(repository, safe='')}/repository/commits/{sha}"

    def _commit_sha(self, answer: dict[str, Any]) -> Any:
        return answer.get("id")

    def _lookup(
        self, api: str, repository: str, kind: str, name: str, headers: dict[str, str]
    ) -> str | None:
        collection = "branches" if kind == BRANCH else "tags"
        url = (
            f"{api}/projects/{quote(repository, safe='')}/repository/{collection}/"
            f"{quote(name, safe='')}"
        )
        answer = self._get(url, headers)
        if answer is None:
            return None
        commit = answer.get("commit")
        return self._sha(commit.get("id") if isinstance(commit, dict) else None, api)


class BitbucketRefs(ApiRefs):
    provider = "bitbucket"

    def _commit_url(self, api: str, repository: str, sha: str) -> str:
        workspace, _, slug = repository.partition("/")
        return f"{api}/repositories/{quote(workspace, safe='')}/{quote(slug, safe='')}/commit/{sha}"

    def _commit_sha(self, answer: dict[str, Any]) -> Any:
        return answer.get("hash")

    def _lookup(
        self, api: str, repository: str, kind: str, name: str, headers: dict[str, str]
    ) -> str | None:
        workspace, _, slug = repository.partition("/")
        collection = "branches" if kind == BRANCH else "tags"
        # The refs endpoint takes a slash in a name (feature/x) as part of the name.
        url = (
            f"{api}/repositories/{quote(workspace, safe='')}/{quote(slug, safe='')}/refs/"
            f"{collection}/{quote(name, safe='/')}"
        )
        answer = self._get(url, headers)
        if answer is None:
            return None
        target = answer.get("target")
        return self._sha(target.get("hash") if isinstance(target, dict) else None, api)
