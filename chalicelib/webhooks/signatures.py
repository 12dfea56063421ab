"""Authenticating deliveries: GitHub and Bitbucket HMACs over the raw body, GitLab's token.

Every check compares in constant time (``hmac.compare_digest``) and accepts any of several
secrets, so a secret can be rotated with the old and the new one active at once. An empty
secret is never accepted (an HMAC keyed with ``""`` is computable by anyone), so a list with no
usable secret refuses every delivery. Verify the bytes exactly as received, before parsing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from .errors import SignatureError
from .fields import lower_keys


def sign_sha256(secret: str, body: bytes) -> str:
    """The ``sha256=<hex>`` signature GitHub (X-Hub-Signature-256) and Bitbucket send."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sign_sha1(secret: str, body: bytes) -> str:
    """GitHub's legacy ``sha1=<hex>`` X-Hub-Signature, for tests."""
    return "sha1=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


def verify_github(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    allow_sha1: bool = False,
) -> None:
    """Accept a GitHub delivery signed with one of ``secrets``; raise SignatureError otherwise.

    X-Hub-Signature-256 is the signature. When it is present it decides alone, so a forged
    SHA-1 header can never stand in for a failing SHA-256 one. The legacy SHA-1 X-Hub-Signature
    is consulted only if ``allow_sha1`` and the SHA-256 header is absent.
    """
    usable = _usable(secrets)
    lowered = lower_keys(headers)
    signature = lowered.get("x-hub-signature-256")
    if signature is not None:
        _check_hmac(body, signature, usable, "sha256", "X-Hub-Signature-256")
        return
    legacy = lowered.get("x-hub-signature")
    if allow_sha1 and legacy is not None:
        _check_hmac(body, legacy, usable, "sha1", "X-Hub-Signature")
        return
    raise SignatureError("missing X-Hub-Signature-256 header")


def verify_gitlab(headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Accept a GitLab delivery whose X-Gitlab-Token is one of ``secrets``.

    GitLab sends the secret token itself, not a signature of the body: the token proves who
    sent the request, TLS is what protects the body.
    """
    usable = _usable(secrets)
    token = lower_keys(headers).get("x-gitlab-token")
    if token is None:
        raise SignatureError("missing X-Gitlab-Token header")
    presented = _ascii(token, "X-Gitlab-Token")
    matched = False
    for secret in usable:
        # No early exit: every configured secret is compared every time.
        matched |= hmac.compare_digest(presented, secret)
    if not matched:
        raise SignatureError("X-Gitlab-Token does not match")


def verify_bitbucket(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Accept a Bitbucket Cloud delivery whose ``X-Hub-Signature: sha256=<hex>`` matches.

    Bitbucket uses GitHub's legacy header *name* for an HMAC-SHA256 signature, and sends it
    only when the webhook has a secret: a webhook without one cannot be authenticated.
    """
    usable = _usable(secrets)
    signature = lower_keys(headers).get("x-hub-signature")
    if signature is None:
        raise SignatureError("missing X-Hub-Signature header")
    _check_hmac(body, signature, usable, "sha256", "X-Hub-Signature")


def _usable(secrets: Sequence[str]) -> list[bytes]:
    # A bare str is a Sequence[str] of one-character "secrets"; take it as the one secret.
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    usable = [secret.encode("utf-8") for secret in candidates if secret]
    if not usable:
        raise SignatureError("no webhook secret is configured")
    return usable


def _ascii(value: str, header: str) -> bytes:
    try:
        return value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise SignatureError(f"{header} is not ASCII") from exc


def _check_hmac(
    body: bytes,
    header_value: str,
    secrets: list[bytes],
    method: str,
    header: str,
) -> None:
    presented = _ascii(header_value, header).strip().lower()
    prefix = method.encode("ascii") + b"="
    if not presented.startswith(prefix):
        raise SignatureError(f"{header} must start with '{method}='")
    matched = False
    for secret in secrets:
        expected = prefix + hmac.new(secret, body, method).hexdigest().encode("ascii")
        matched |= hmac.compare_digest(presented, expected)
    if not matched:
        raise SignatureError(f"{header} does not match the body")
