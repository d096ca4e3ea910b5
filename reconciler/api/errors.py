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

from reconciler.core.error_codes import http_status
from reconciler.errors import OdooOpsError

log = logging.getLogger(__name__)

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("odooops_request_id", default="")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

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
    # The error table's kind decides (reconciler/core/error_codes.py); a code outside it is an explained
    # failure of the operation (a corrupt backup, a failed module update), not a server bug: 500 is for the
    # unexpected.
    return http_status(err.code)


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
