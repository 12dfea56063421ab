"""Resolves a git ref to a commit SHA with `git ls-remote` (argument list, never a shell).

Only where a git binary exists: the embedded stack's local git source. In AWS an app's refs
resolve through its SCM's API (``scm.py``) or its S3 ref objects (``refs.py``).
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from ..domain.errors import NotFoundError, UnavailableError, ValidationError
from ..domain.model import is_ref, is_sha

if TYPE_CHECKING:
    from ..domain.pipeline import AppConfig


class GitRefs:
    def __init__(self, timeout_seconds: float = 20.0) -> None:
        self._timeout = timeout_seconds

    def commit_time(self, app: AppConfig, sha: str) -> str | None:
        """The committer time of ``sha`` (ISO 8601 with its offset) in a repository on this
        machine (``git show -s --format=%cI``); None for a remote URL, an unknown commit or
        any failure: a missing commit time never stops a deploy."""
        path = self._local_path(app.source.url)
        if path is None or not is_sha(sha):
            return None
        try:
            shown = subprocess.run(
                ["git", "-C", path, "show", "-s", "--format=%cI", f"{sha}^{{commit}}", "--"],
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
                env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"},
            )
        except (subprocess.SubprocessError, OSError):
            return None
        text = shown.stdout.strip()
        return text if shown.returncode == 0 and text else None

    @staticmethod
    def _local_path(url: str) -> str | None:
        """The directory of a repository on this machine, or None for a remote URL."""
        if "://" in url and not url.startswith("file://"):
            return None
        path = url.removeprefix("file://")
        if ":" in path.split("/", 1)[0]:  # scp-like user@host:repo
            return None
        return path

    def commit_exists(self, app: AppConfig, sha: str) -> bool | None:
        """Whether ``sha`` is a commit of a repository on this machine (``git cat-file -e``);
        None for a remote URL, which cannot be asked about one commit without a clone."""
        if not is_sha(sha):
            raise ValidationError("sha must be 40 lower-case hex characters")
        path = self._local_path(app.source.url)
        if path is None:
            return None
        try:
            found = subprocess.run(
                ["git", "-C", path, "cat-file", "-e", f"{sha}^{{commit}}"],
                capture_output=True,
                timeout=self._timeout,
                check=False,
                env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"},
            )
        except (subprocess.SubprocessError, OSError) as exc:  # no git binary, or a timeout
            raise UnavailableError(f"cannot run git cat-file: {type(exc).__name__}") from exc
        if found.returncode != 0 and (
            b"not a git repository" in found.stderr or b"cannot change to" in found.stderr
        ):
            raise NotFoundError("the app's repository is not a git repository here")
        return found.returncode == 0

    def resolve(self, app: AppConfig, ref: str) -> str:
        url = app.source.url
        if not is_ref(ref):
            raise ValidationError(f"ref {ref!r} is not a valid branch or tag name")
        candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        try:
            out = subprocess.run(
                ["git", "ls-remote", "--", url, *candidates],
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=True,
                env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"},
            ).stdout
        except subprocess.CalledProcessError as exc:
            raise NotFoundError(f"cannot read refs of the app's repository: {exc}") from exc
        except (subprocess.SubprocessError, OSError) as exc:  # no git binary, or a timeout
            raise UnavailableError(f"cannot run git ls-remote: {type(exc).__name__}") from exc
        found: dict[str, str] = {}
        for line in out.splitlines():
            listed_sha, _, name = line.partition("\t")
            found[name] = listed_sha
        for name in candidates:
            # an annotated tag's commit is listed as "<tag>^{}"
            sha = found.get(f"{name}^{{}}") or found.get(name) or ""
            if is_sha(sha):
                return sha
        raise NotFoundError(f"ref {ref!r} does not exist in the app's repository")
