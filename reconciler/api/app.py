"""The daemon's HTTP API: health, readiness, metrics, status and the webhook receivers."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler import __version__
from reconciler.api import webhooks
from reconciler.api.metrics import CONTENT_TYPE_LATEST, Metrics
from reconciler.errors import OdooOpsError

log = logging.getLogger(__name__)

_OUTCOME = {400: "malformed", 401: "bad_signature", 403: "refused", 413: "too_large"}


class Reconciler(Protocol):
    """What the API needs from the daemon."""

    metrics: Metrics

    def hint(self, hint: webhooks.Hint) -> None: ...

    def is_ready(self) -> bool: ...

    def is_alive(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...


class SecretSource:
    """The webhook secrets, re-read when the file changes (rotation without a restart)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._secrets: tuple[bytes, ...] = ()
        self._lock = threading.Lock()
        if path is not None:
            self._secrets = webhooks.load_secrets(path)  # fail at start-up, not on the first delivery

    def get(self) -> tuple[bytes, ...]:
        if self.path is None:
            return ()
        try:
            st = os.stat(self.path)
        except OSError:
            return ()  # a deleted secret file refuses webhooks rather than accepting them unsigned
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._secrets = webhooks.load_secrets(self.path)
                except OdooOpsError:
                    self._secrets = ()
                self._stamp = stamp
            return self._secrets


def error_response(err: OdooOpsError, status: int) -> JSONResponse:
    return JSONResponse(err.to_dict(), status_code=status)


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it exceeds limit (Content-Length is only a hint)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise webhooks.WebhookError(400, "WEBHOOK_MALFORMED", "Content-Length is not a number",
                                        "send a valid Content-Length or use chunked encoding")
        if int(declared) > limit:
            raise _too_large(limit)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise _too_large(limit)
    return bytes(buf)


def _too_large(limit: int) -> webhooks.WebhookError:
    return webhooks.WebhookError(413, "WEBHOOK_TOO_LARGE", f"the payload is larger than {limit} bytes",
                                 "configure the webhook to send push, create, delete and pull/merge request "
                                 "events only, or raise --max-payload-bytes")


def create_app(daemon: Reconciler, secret_file: Path | None = None,
               max_payload: int = webhooks.DEFAULT_MAX_PAYLOAD, dedupe_capacity: int = 10_000) -> FastAPI:
    app = FastAPI(title="OdooOps daemon", version=__version__, docs_url=None, redoc_url=None)
    secrets = SecretSource(secret_file)
    seen = webhooks.DeliveryLog(dedupe_capacity)
    metrics = daemon.metrics
    app.state.deliveries = seen

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        err = OdooOpsError(code, str(exc.detail), "see the endpoints in docs/daemon.md")
        return error_response(err, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(OdooOpsError("BAD_REQUEST", "the request is not valid",
                                           "see docs/daemon.md", {"problems": exc.errors()}), 400)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        if daemon.is_alive():
            return JSONResponse({"status": "ok"})
        return error_response(OdooOpsError("DAEMON_STALLED", "the poller or the workers stopped",
                                           "read the daemon's log and restart it"), 503)

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        if daemon.is_ready():
            return JSONResponse({"status": "ready"})
        return error_response(OdooOpsError("NOT_READY", "the first poll of the repository has not succeeded yet",
                                           "wait, or read the daemon's log for the poll error"), 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status")
    def status() -> JSONResponse:
        return JSONResponse(daemon.status())

    @app.post("/webhooks/{provider}")
    async def webhook(provider: str, request: Request) -> JSONResponse:
        received = time.time()
        if provider not in webhooks.PROVIDERS:
            metrics.webhooks.labels(provider="unknown", outcome="unknown_provider").inc()
            return error_response(OdooOpsError("NOT_FOUND", f"no webhook receiver for {provider!r}",
                                               "use /webhooks/github, /webhooks/gitlab or /webhooks/gitea"), 404)
        try:
            result = await _receive(provider, request, received)
        except webhooks.WebhookError as err:
            metrics.webhooks.labels(provider=provider, outcome=_OUTCOME.get(err.status, "refused")).inc()
            return error_response(err, err.status)
        metrics.webhooks.labels(provider=provider, outcome=result["status"]).inc()
        return JSONResponse(result, status_code=200 if result["status"] == "pong" else 202)

    async def _receive(provider: str, request: Request, received: float) -> dict[str, Any]:
        accepted = secrets.get()
        if not accepted:
            # Before reading the body: an unconfigured daemon never processes a payload.
            raise webhooks.refuse_unconfigured()
        body = await read_capped(request, max_payload)
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhooks.verify(provider, headers, body, accepted)
        doc = webhooks.parse_json(body, headers.get("content-type", "application/json"))
        event = webhooks.event_name(provider, headers, doc)
        if not event:
            raise webhooks.WebhookError(400, "WEBHOOK_UNKNOWN_SHAPE", "the delivery names no event",
                                        "send the provider's event header (X-GitHub-Event, X-Gitea-Event, "
                                        "X-Gitlab-Event)")
        delivery = webhooks.delivery_id(provider, headers, body)
        if event == "ping":
            return {"status": "pong", "delivery": delivery}
        about = webhooks.branches_of(provider, event, doc)  # raises 400 on a known event's bad shape
        if not seen.first_time(f"{provider}:{delivery}"):
            return {"status": "duplicate", "delivery": delivery}
        if about is None:
            return {"status": "ignored", "delivery": delivery, "event": event}
        branches, action = about
        daemon.hint(webhooks.Hint(provider, event, delivery, branches, action, received))
        return {"status": "accepted", "delivery": delivery, "event": event, "branches": list(branches)}

    return app
