"""JSON errors for every API response: stable code, message, remediation, docs link and the request id."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.errors import OdooOpsError

log = logging.getLogger(__name__)

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("odooops_request_id", default="")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Exact codes first, then suffixes: the HTTP status of an OdooOpsError raised below the API.
_EXACT = {
    "BAD_REQUEST": 400, "USAGE": 400, "ENV_NAME_INVALID": 400, "NOT_FOUND": 404, "METHOD_NOT_ALLOWED": 405,
    "FORBIDDEN": 403, "SCOPE_REQUIRED": 403, "IP_NOT_ALLOWED": 403, "RATE_LIMITED": 429,
    "HOST_NOT_CONFIGURED": 503, "NOT_READY": 503, "DAEMON_STALLED": 503, "NOT_IMPLEMENTED": 501,
}
_SUFFIX = (
    ("_NOT_FOUND", 404), ("_NEEDS_CONFIRMATION", 409), ("_CONFIRMATION_REQUIRED", 409), ("_REFUSED", 409),
    ("_CONFLICT", 409), ("_BLOCKED", 409), ("_GATE_FAILED", 409), ("_NOT_DEPLOYED", 409), ("_BUSY", 409),
    ("_AMBIGUOUS", 409), ("_REQUIRED", 409), ("_INVALID", 400), ("_UNKNOWN", 400), ("_MISSING", 400),
    ("_TOO_LARGE", 413), ("DISK_FULL", 507), ("_FULL", 507),
    ("_UNREACHABLE", 503), ("_UNAVAILABLE", 503), ("_NOT_CONFIGURED", 503), ("_TIMEOUT", 504),
)


@dataclass
class ApiError(OdooOpsError):
    """An OdooOpsError with its HTTP status and extra response headers (Retry-After, WWW-Authenticate)."""

    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)


def status_for(err: OdooOpsError) -> int:
    if isinstance(err, ApiError):
        return err.status
    status = getattr(err, "status", None)  # webhook errors carry theirs
    if isinstance(status, int) and 400 <= status < 600:
        return status
    if err.code in _EXACT:
        return _EXACT[err.code]
    for suffix, code in _SUFFIX:
        if err.code.endswith(suffix):
            return code
    # Any other OdooOpsError is an explained failure of the operation (a corrupt backup, a clone that
    # failed verification, a module update that failed), not a server bug: 500 is for the unexpected.
    return 422


def error_body(err: OdooOpsError) -> dict[str, Any]:
    body = err.to_dict()
    body["request_id"] = REQUEST_ID.get() or None
    return body


def error_response(err: OdooOpsError, status: int | None = None) -> JSONResponse:
    headers = dict(getattr(err, "headers", None) or {})
    return JSONResponse(error_body(err), status_code=status or status_for(err), headers=headers)


class RequestIdMiddleware:
    """X-Request-ID in and out; an unhandled exception becomes a 500 JSON error naming the request
    id, with the traceback only in the server log (never sent to the client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if _CLIENT_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = REQUEST_ID.set(rid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", scope.get("method"), scope.get("path"), rid)
            if started:
                raise
            err = OdooOpsError("INTERNAL", "the server failed to handle this request",
                               f"retry; if it persists, report request id {rid} to the operator (the server "
                               "log holds the details)")
            await error_response(err, 500)(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
