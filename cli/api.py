"""The HTTP client of Roadie's API: JSON in and out, bearer token, timeouts, and every failure
(4xx, 5xx, no answer, not JSON) turned into a ``CliError`` with its exit code."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from .errors import EXIT_CLIENT, EXIT_SERVER, CliError

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TERMINAL = frozenset(
    {
        "succeeded",
        "failed",
        "errored",
        "timed_out",
        "cancelled",
        "rolled_back",
        "superseded",
        "diverged",
    }
)  # the statuses of a deploy that has ended


class Api:
    """A tiny JSON client: bearer token, timeouts, and Roadie's error bodies turned into
    ``CliError`` (exit 2 for 4xx, 3 for 5xx and for no answer)."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"the API URL {url!r} is not an http:// or https:// URL", EXIT_CLIENT)
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        # The local stack never sits behind a proxy; a stray http_proxy must not break it.
        handlers = [urllib.request.ProxyHandler({})] if parsed.hostname in LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """``(status, decoded JSON)`` of a 2xx answer; raises ``CliError`` otherwise."""
        target = self.url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            target += "?" + urllib.parse.urlencode(params)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(target, data=data, headers=headers, method=method)
        where = f"{method} {self.url}{path}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, where) from None
        except TimeoutError:
            raise self._no_answer(where) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise self._no_answer(where) from None
            raise CliError(f"cannot reach Roadie at {self.url}: {reason}", EXIT_SERVER) from None
        except (OSError, http.client.HTTPException) as exc:
            raise CliError(f"connection to Roadie failed ({where}): {exc!r}", EXIT_SERVER) from None
        if not raw.strip():
            return status, {}
        try:
            return status, json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise CliError(
                f"Roadie answered {where} with HTTP {status} but not JSON: {_snippet(raw)}",
                EXIT_SERVER,
            ) from None

    def _no_answer(self, where: str) -> CliError:
        return CliError(f"no answer from Roadie within {self.timeout:g}s ({where})", EXIT_SERVER)


def _http_error(exc: urllib.error.HTTPError, where: str) -> CliError:
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    finally:
        exc.close()
    code = EXIT_CLIENT if 400 <= exc.code < 500 else EXIT_SERVER
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        text = f"{body['message']} (HTTP {exc.code}"
        text += f" {body['error']})" if body.get("error") else ")"
        if body.get("deploy_id"):
            text += f"\n  deploy: {body['deploy_id']}"
        return CliError(text, code)
    detail = _snippet(raw) or exc.reason
    return CliError(f"HTTP {exc.code} from {where}: {detail}", code)


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


def deploy_path(deploy_id: str, action: str = "") -> str:
    """``/deploys/{id}``, or ``/deploys/{id}/{action}`` (``cancel``, ``rollback``)."""
    return f"/deploys/{_segment(deploy_id)}" + (f"/{action}" if action else "")


def environment_path(app: str, environment: str, action: str = "") -> str:
    """``/environments/{app}/{env}``, or with ``/{action}`` (``lock``)."""
    return f"/environments/{_segment(app)}/{_segment(environment)}" + (
        f"/{action}" if action else ""
    )


def _segment(value: str) -> str:
    """One URL path segment."""
    return urllib.parse.quote(value, safe="")
