"""Webhook errors: every way a delivery can be refused, each with its HTTP status and code."""

from __future__ import annotations

# API Gateway (REST) and Lambda both cap a request near 6 MB (Lambda's synchronous payload
# limit is 6 MB, and a binary body grows by a third when API Gateway base64-encodes it).
# GitHub caps payloads at 25 MB and simply drops bigger ones, so its cap never binds first.
# Real push deliveries are tens of kilobytes; 5 MiB leaves headroom for huge pushes while
# refusing, with a clear 413, anything that would otherwise die less politely upstream.
MAX_BODY_BYTES = 5 * 1024 * 1024


class WebhookError(Exception):
    """Base of every error the webhook layer raises; ``str(exc)`` says why, for the reply."""

    status: int = 400
    code: str = "bad_request"


class SignatureError(WebhookError):
    """The signature or token is missing, malformed, or made with none of our secrets."""

    status = 401
    code = "bad_signature"


class PayloadError(WebhookError):
    """The body or its headers cannot be a valid delivery (bad JSON, wrong types, bad SHA...)."""

    status = 400
    code = "bad_payload"


class UnsupportedMediaTypeError(WebhookError):
    """The Content-Type is not one the provider sends."""

    status = 415
    code = "unsupported_media_type"


class PayloadTooLargeError(WebhookError):
    """The body is larger than ``MAX_BODY_BYTES``."""

    status = 413
    code = "payload_too_large"


class UnknownProviderError(WebhookError):
    """The provider name is not github, gitlab or bitbucket."""

    status = 404
    code = "unknown_provider"
