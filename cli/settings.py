"""Where the API is and the token to use: flags first, then ``ROADIE_URL`` / ``ROADIE_TOKEN``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import EXIT_CLIENT, CliError

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    url: str
    token: str


def resolve_settings(url: str | None, token: str | None, environ: Mapping[str, str]) -> Settings:
    """Flags first, then ``ROADIE_URL`` / ``ROADIE_TOKEN`` (then ``ROADIE_API_TOKEN``)."""
    url = url or environ.get("ROADIE_URL") or DEFAULT_URL
    token = token or environ.get("ROADIE_TOKEN") or environ.get("ROADIE_API_TOKEN")
    if not token:
        raise CliError(
            "no API token: pass --token or set ROADIE_TOKEN (or ROADIE_API_TOKEN)", EXIT_CLIENT
        )
    return Settings(url=url, token=token)
