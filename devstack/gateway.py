"""The local stand-in for API Gateway's own answers, in the API's one error shape.

On AWS, API Gateway answers some requests before any Lambda runs (an unknown route, a body too
large); the template's gateway responses (``infra.template.GATEWAY_ANSWERS``) give those the
``{"error","message"}`` shape. Locally Chalice's ``LocalGateway`` and ``http.server`` answer
them instead (a 403 "Missing Authentication Token", an HTML 431 or 501, a dropped connection
for a bad Content-Length): ``install`` makes them answer as the template says, for the local
server and for ``chalice.test.Client`` alike. Errors the app itself answers (405, 415, ...) are
shaped inside the app (``chalicelib.http.uniform_error``), as on AWS.
"""

from __future__ import annotations

import functools
import json
from http import HTTPStatus
from typing import Any

from infra.template import gateway_answer

# API Gateway refuses a request body over 10 MB; the local server reads one whole first.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# http.server's own 5xx are answers to bad input (an unknown method, an HTTP version it
# does not speak): the API answers those 405 and 400.
_STATUS_FOR_PARSER: dict[int, int] = {
    HTTPStatus.NOT_IMPLEMENTED: 405,
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: 400,
}
_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    431: "request_header_fields_too_large",
}

_installed = False


def error_body(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message}).encode()


def _no_route() -> dict[str, Any]:
    answer = gateway_answer("MISSING_AUTHENTICATION_TOKEN")
    status = answer.status or 403
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "body": error_body(status, answer.code, answer.message or "no such route").decode(),
    }


def install() -> None:
    """Patch chalice.local once per process (idempotent)."""
    global _installed
    if _installed:
        return
    from chalice import local

    original_handle = local.LocalGateway.handle_request

    @functools.wraps(original_handle)
    def handle_request(self: Any, method: str, path: str, headers: Any, body: Any) -> Any:
        try:
            self.event_converter._route_matcher.match_route(path)
        except ValueError:
            # No route: API Gateway's MISSING_AUTHENTICATION_TOKEN, answered as our gateway
            # response says (Chalice's own answer would be a 403, or a crash for a non-ASCII
            # Authorization header).
            return _no_route()
        response = original_handle(self, method, path, headers, body)
        if response.get("body") is None:  # Chalice's automatic OPTIONS answer
            response["body"] = ""
        return response

    local.LocalGateway.handle_request = handle_request  # type: ignore[method-assign]

    handler = local.ChaliceRequestHandler
    original_generic = handler._generic_handle

    def send_error(
        self: Any, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        status = _STATUS_FOR_PARSER.get(code, code)
        if status >= 500:
            status = 400
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "bad request"
        body = error_body(status, _CODES.get(status, "bad_request"), message or phrase)
        self.log_error("code %d, message %s", code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def generic_handle(self: Any) -> None:
        length = self.headers.get("content-length", "0").strip()
        if not (length.isascii() and length.isdigit()):
            self.send_error(400, "Content-Length must be a whole number of bytes")
            return
        if int(length) > MAX_REQUEST_BYTES:
            self.send_error(413, f"request body is over {MAX_REQUEST_BYTES} bytes")
            return
        original_generic(self)

    handler.send_error = send_error  # type: ignore[assignment]
    handler._generic_handle = generic_handle  # type: ignore[method-assign]
    for method in ("GET", "PUT", "POST", "HEAD", "DELETE", "PATCH", "OPTIONS"):
        setattr(handler, f"do_{method}", generic_handle)
    _installed = True
