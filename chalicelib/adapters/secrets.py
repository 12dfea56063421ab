"""Secrets through Powertools Parameters (cached): API token hashes and webhook secrets."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)

from ..domain.errors import UnavailableError
from .observability import keep_secret


class SecretsError(UnavailableError):
    """A SecureString or secret could not be read or has the wrong shape (a domain
    ``UnavailableError``: infrastructure, never the request's fault)."""

    code = "secrets_unavailable"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ApiTokens:
    """Bearer tokens: a JSON SecureString ``{"<token name>": "<sha256 hex of token>"}``."""

    def __init__(self, parameter_name: str, max_age: int, provider: Any = None) -> None:
        self._name = parameter_name
        self._max_age = max_age
        self._provider = provider

    def _hashes(self) -> dict[str, str]:
        try:
            if self._provider is not None:
                value = self._provider.get(
                    self._name, decrypt=True, transform="json", max_age=self._max_age
                )
            else:
                value = parameters.get_parameter(
                    self._name, decrypt=True, transform="json", max_age=self._max_age
                )
        except (GetParameterError, TransformParameterError) as exc:
            raise SecretsError(f"API tokens parameter {self._name} is unreadable") from exc
        if not isinstance(value, dict):
            raise SecretsError(f"API tokens parameter {self._name} must be a JSON object")
        return {str(k): str(v) for k, v in value.items()}

    def identify(self, token: str) -> str | None:
        """The token's name if it is valid. Compares every hash in constant time."""
        digest = token_hash(token)
        found = None
        for name, expected in self._hashes().items():
            if hmac.compare_digest(digest, expected.lower()):
                found = name
        return found


class WebhookSecrets:
    """Each provider's active secrets: a JSON list in a SecureString, so two can overlap while
    one is rotated (``["new", "old"]``)."""

    def __init__(self, parameter_names: dict[str, str], max_age: int) -> None:
        self._names = parameter_names
        self._max_age = max_age

    def active(self, provider: str) -> list[str]:
        name = self._names[provider]
        try:
            value = parameters.get_parameter(
                name, decrypt=True, transform="json", max_age=self._max_age
            )
        except (GetParameterError, TransformParameterError) as exc:
            raise SecretsError(f"webhook secret parameter {name} is unreadable") from exc
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SecretsError(f"webhook secret parameter {name} must be a JSON list of strings")
        keep_secret(*value)
        return [v for v in value if v]


# Visible ASCII only: anything else is refused by http.client, whose error quotes the value.
_HEADER_SAFE = frozenset(chr(c) for c in range(0x21, 0x7F))


class ScmTokens:
    """SCM API tokens, read lazily and cached for ``max_age`` seconds. A token reference is an
    SSM SecureString name (``/roadie/prod/scm/github``) or ``secretsmanager:<secret id>`` whose
    secret string is the token itself. Errors name the reference, never the value."""

    def __init__(self, max_age: int) -> None:
        self._max_age = max_age

    def read(self, reference: str) -> str:
        try:
            if reference.startswith("secretsmanager:"):
                value = parameters.get_secret(
                    reference.removeprefix("secretsmanager:"), max_age=self._max_age
                )
            else:
                value = parameters.get_parameter(reference, decrypt=True, max_age=self._max_age)
        except (GetParameterError, TransformParameterError) as exc:
            raise SecretsError(f"SCM token {reference} is unreadable") from exc
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise SecretsError(f"SCM token {reference} is not text") from None
        token = str(value).strip() if value is not None else ""
        if not token or not set(token) <= _HEADER_SAFE:
            raise SecretsError(f"SCM token {reference} is empty or not a single printable word")
        if token.startswith(("{", "[")):
            raise SecretsError(f"SCM token {reference} must hold the token itself, not JSON")
        keep_secret(token)
        return token
