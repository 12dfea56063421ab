"""What a parsed delivery is: a push, a CI result, or an authentic event we deliberately ignore."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import (
    MAX_BODY_BYTES,
    PayloadError,
    PayloadTooLargeError,
    SignatureError,
    UnknownProviderError,
    UnsupportedMediaTypeError,
    WebhookError,
)

__all__ = [
    "MAX_BODY_BYTES",
    "CIEvent",
    "Commit",
    "Ignored",
    "PayloadError",
    "PayloadTooLargeError",
    "PushEvent",
    "SignatureError",
    "UnknownProviderError",
    "UnsupportedMediaTypeError",
    "WebhookError",
    "WebhookEvent",
]

BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"


@dataclass(frozen=True)
class Commit:
    """One commit as the provider describes it; ``timestamp`` is the provider's ISO 8601 text."""

    sha: str
    message: str
    author: str
    timestamp: str
    url: str = ""


@dataclass(frozen=True)
class PushEvent:
    """A branch or tag now points at ``after``. Routing (not parsing) decides what deploys.

    ``before`` is ``""`` when the ref is new (providers send 40 zeros). ``after`` is always the
    commit the ref resolves to: for an annotated tag GitHub's ``after`` and GitLab's ``after``
    are the tag object's SHA, which no host can report as its revision, so the tagged commit is
    used and the tag object's SHA is kept in ``tag_object_sha``.

    ``pushed_at`` is the provider's own time of the push in whole epoch seconds, when it gives
    one (GitHub: ``repository.pushed_at``; GitLab and Bitbucket send none): it orders two
    deliveries for the same branch that arrive out of order.
    """

    provider: str
    delivery_id: str
    repository: str
    ref: str
    before: str
    after: str
    pusher: str
    forced: bool
    compare_url: str
    head_commit: Commit | None
    created: bool = False
    tag_object_sha: str = ""
    pushed_at: int | None = None

    @property
    def branch(self) -> str | None:
        """The branch name if ``ref`` is ``refs/heads/<name>``, else None."""
        if self.ref.startswith(BRANCH_PREFIX):
            return self.ref[len(BRANCH_PREFIX) :]
        return None

    @property
    def tag(self) -> str | None:
        """The tag name if ``ref`` is ``refs/tags/<name>``, else None."""
        if self.ref.startswith(TAG_PREFIX):
            return self.ref[len(TAG_PREFIX) :]
        return None


@dataclass(frozen=True)
class CIEvent:
    """CI finished for ``sha`` on ``branch`` (GitHub workflow_run/check_suite, GitLab pipeline).

    This is the provider's claim about a commit, not proof that the commit is the branch's tip:
    a check suite for a fork's pull request can carry the fork's branch name. Act on it only for
    a SHA already known (from a push) to be on that branch of this repository.

    ``repository`` is the repository the event was delivered for; ``head_repository`` is the one
    the tested branch and commit come from: another repository for a fork's pull request, and
    ``""`` when the provider does not say (a workflow run of a deleted fork).
    """

    provider: str
    delivery_id: str
    repository: str
    head_repository: str
    branch: str
    sha: str
    succeeded: bool
    conclusion: str
    pusher: str
    head_commit: Commit | None


@dataclass(frozen=True)
class Ignored:
    """An authentic delivery that deploys nothing; ``reason`` is a sentence for the 2xx reply."""

    provider: str
    delivery_id: str
    event: str
    reason: str


WebhookEvent = PushEvent | CIEvent | Ignored
