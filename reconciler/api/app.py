"""The daemon's HTTP API: health, readiness, metrics, status, the webhook receivers and the REST API (/api/v1)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler import __version__
from reconciler.api import rest, routes, webhooks
from reconciler.api.delivery_journal import DEFAULT_RETENTION, DeliveryJournal, Seen, body_digest
from reconciler.api.errors import RequestIdMiddleware, status_for
from reconciler.api.errors import error_response as _error_response
from reconciler.api.project_paths import ProjectPathMiddleware
from reconciler.api.readiness import CachedChecks, NotReadyBody, ReadyBody, verdict
from reconciler.core.hints import Hint
from reconciler.errors import OdooOpsError
from reconciler.platform.metrics import CONTENT_TYPE_LATEST, Metrics

log = logging.getLogger(__name__)

DESCRIPTION = (
    "REST API of the OdooOps reconciler; see docs/api.md.\n\n"
    "Every path under /api/v1/ is also answered under /api/v1/projects/{project}/ (for example "
    "/api/v1/projects/acme/environments), exactly alike, when {project} (normalised: \"Acme\" is acme) is "
    "the project this server reconciles (`odooops serve --project`); any other project is refused with 404 "
    "PROJECT_NOT_FOUND, so a client that names its project never acts on another project's environments "
    "(`odooops --project NAME`). The operations are documented once, in their /api/v1/ form.")
_OUTCOME = {400: "malformed", 401: "bad_signature", 403: "refused", 409: "conflict", 413: "too_large"}
_OUTCOME_BY_CODE = {"WEBHOOK_TOO_OLD": "too_old", "WEBHOOK_PAYLOAD_TOO_DEEP": "too_deep",
                    "WEBHOOK_BAD_BRANCH": "bad_branch"}


class Reconciler(Protocol):
    """What the API needs from the daemon."""

    metrics: Metrics
    dir: Path  # the project's state directory (the webhook delivery journal lives there)

    def hint(self, hint: Hint) -> None: ...

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
    return _error_response(err, status)


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
               max_payload: int = webhooks.DEFAULT_MAX_PAYLOAD, journal: DeliveryJournal | None = None,
               max_age: float = webhooks.DEFAULT_MAX_AGE, api: rest.ApiContext | None = None,
               checks: CachedChecks | None = None) -> FastAPI:
    """The daemon's app; with `api` (keys, operations, audit log) the REST API under /api/v1 is live,
    without it the /api/v1 routes answer 503 (they are always declared, so the OpenAPI document is whole).
    With `checks` (`odooops doctor`'s, cached), /readyz also needs every one of them not to fail."""
    app = FastAPI(title="OdooOps API", version=__version__, docs_url=None, redoc_url=None,
                  description=DESCRIPTION)
    app.router.redirect_slashes = False  # a stray "/" is a 404 JSON error, never a redirect elsewhere

    def served() -> str | None:
        return api.served_project() if api is not None else None

    # Added before the request ids, so they wrap it: its 404 PROJECT_NOT_FOUND carries one too.
    app.add_middleware(ProjectPathMiddleware, served=served)
    app.add_middleware(RequestIdMiddleware)
    routes.install(app, api)
    secrets = SecretSource(secret_file)
    retention = journal.retention if journal is not None else DEFAULT_RETENTION
    if retention < max_age:
        raise OdooOpsError("USAGE", f"the webhook journal keeps deliveries {retention:.0f} s, less than "
                           f"--webhook-max-age ({max_age:.0f} s): a replay could outlive its record",
                           "raise --webhook-retention or lower --webhook-max-age")
    journals = [journal] if journal is not None else []
    journal_lock = threading.Lock()

    def deliveries() -> DeliveryJournal:
        # Opened on the first signed delivery: an app that never takes one (the OpenAPI generator) touches no disk.
        with journal_lock:
            if not journals:
                journals.append(DeliveryJournal(daemon.dir / "webhook-deliveries.sqlite"))
            return journals[0]

    metrics = daemon.metrics
    app.state.deliveries = deliveries

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        err = OdooOpsError(code, str(exc.detail), "see the endpoints in docs/api.md and docs/daemon.md")
        response = error_response(err, exc.status_code)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Starlette lists only the first matching route's methods; RFC 9110 wants all of them.
            response.headers["Allow"] = ", ".join(allowed_methods(request.url.path))
        return response

    path_methods: list[tuple[re.Pattern[str], set[str]]] = []

    def allowed_methods(path: str) -> list[str]:
        if not path_methods:
            for template, item in app.openapi()["paths"].items():
                pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
                path_methods.append((re.compile(f"^{pattern}$"), {m.upper() for m in item}))
            path_methods.append((re.compile("^/(metrics|status)$"), {"GET"}))
        # The most specific template wins (…/secrets/rotate over …/secrets/{name}), as the routes do.
        matches = [(pattern.pattern.count("[^/]+"), allowed) for pattern, allowed in path_methods
                   if pattern.match(path)]
        fewest = min((n for n, _ in matches), default=0)
        methods: set[str] = set().union(*(allowed for n, allowed in matches if n == fewest))
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)

    @app.exception_handler(OdooOpsError)
    async def odooops_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OdooOpsError)
        return _error_response(exc, status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and what: the rejected input is never echoed (it may hold a secret value).
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                     "type": str(e.get("type", ""))} for e in exc.errors()]
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and ctype != "application/json" and any(p["loc"][:1] == ["body"] for p in problems):
            return error_response(OdooOpsError("UNSUPPORTED_MEDIA_TYPE", f"the body must be JSON, not {ctype[:80]}",
                                               "send Content-Type: application/json"), 415)
        return error_response(OdooOpsError("BAD_REQUEST", "the request is not valid",
                                           "see the operation in docs/openapi.json (docs/api.md)",
                                           {"problems": problems}), 400)

    @app.get("/healthz", operation_id="healthz", summary="Liveness (no token)", openapi_extra={"security": []})
    def healthz() -> JSONResponse:
        if daemon.is_alive():
            return JSONResponse({"status": "ok"})
        return error_response(OdooOpsError("DAEMON_STALLED", "the poller or the workers stopped",
                                           "read the daemon's log and restart it"), 503)

    @app.get("/readyz", operation_id="readyz", summary="Readiness (no token)", openapi_extra={"security": []},
             description="Every client gets the same status code and each check's id and status; each "
                         "check's detail, fix and duration go to local clients only (as for /status and "
                         "/metrics: this host, or a client a --trusted-proxy names).",
             responses={200: {"model": ReadyBody, "description": "polled once, and no host check failed"},
                        503: {"model": NotReadyBody, "description": "not polled yet (NOT_READY), or a host "
                              "check failed (HOST_CHECK_FAILED, with every check's status)"}})
    def readyz(request: Request) -> JSONResponse:
        if not daemon.is_ready():
            return error_response(OdooOpsError("NOT_READY", "the first poll of the repository has not succeeded "
                                               "yet", "wait, or read the daemon's log for the poll error"), 503)
        if checks is None:
            return JSONResponse({"status": "ready", "checks": []})
        # Who is local is decided once, for the operator endpoints too (operator_only below); unlike them,
        # /readyz stays open without a token, so a client that is not local gets no details, token or not.
        body, err = verdict(checks.get(), details=rest.client_is_local(request))
        if err is not None:
            return error_response(err, 503)
        return JSONResponse(body)

    def operator_only(request: Request, operation: str) -> None:
        # Operator endpoints: open to local clients (Prometheus, health scripts on this host; a client
        # behind a proxy only counts as local when the proxy is a --trusted-proxy that says so);
        # elsewhere a token with env:read, like GET /api/v1/status.
        if api is not None and not rest.client_is_local(request):
            rest.authorize(request, _bearer_of(request), operation, None)

    @app.get("/metrics", include_in_schema=False)
    def prometheus(request: Request) -> Response:
        operator_only(request, "operatorMetrics")
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status", include_in_schema=False)
    def status(request: Request) -> JSONResponse:
        operator_only(request, "operatorStatus")
        return JSONResponse({**daemon.status(), "project": served()})

    @app.post("/webhooks/{provider}", operation_id="receiveWebhook", summary="Signed webhook delivery (no token)",
              openapi_extra={"security": []}, status_code=202,
              responses={200: {"description": "ping answered"},
                         202: {"description": "accepted, or a duplicate or ignored delivery acknowledged"},
                         409: {"model": rest.ErrorBody, "description": "a delivery id reused with another body"},
                         **{c: {"model": rest.ErrorBody} for c in (400, 401, 403, 404, 413)}})
    async def webhook(provider: str, request: Request) -> JSONResponse:
        received = time.time()
        if provider not in webhooks.PROVIDERS:
            metrics.webhooks.labels(provider="unknown", outcome="unknown_provider").inc()
            return error_response(OdooOpsError("NOT_FOUND", f"no webhook receiver for {provider!r}",
                                               "use /webhooks/github, /webhooks/gitlab or /webhooks/gitea"), 404)
        try:
            result = await _receive(provider, request, received)
        except webhooks.WebhookError as err:
            outcome = _OUTCOME_BY_CODE.get(err.code) or _OUTCOME.get(err.status, "refused")
            metrics.webhooks.labels(provider=provider, outcome=outcome).inc()
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
        head = None
        if about is not None and webhooks.changes_request_state(*about):
            # Opening or closing a request is the one thing a payload decides (with the daemon's
            # check against the mirror's refs): bounded in time by its signed updated_at.
            when, pointer = webhooks.request_time(provider, event, doc)
            webhooks.check_age(when, pointer, received, max_age)
            head = webhooks.request_head(provider, event, doc)
        seen_as = deliveries().record(provider, delivery, body_digest(body))
        if seen_as is Seen.CONFLICT:
            raise webhooks.WebhookError(409, "WEBHOOK_DELIVERY_REUSED", f"the delivery id {delivery!r} was "
                                        "taken before with another body", "send each event with its own "
                                        "delivery id (the provider does); a redelivery must carry the "
                                        "same body", {"delivery": delivery})
        if seen_as is Seen.DUPLICATE:
            return {"status": "duplicate", "delivery": delivery}
        if about is None:
            return {"status": "ignored", "delivery": delivery, "event": event}
        branches, action = about
        daemon.hint(Hint(provider, event, delivery, branches, action, received, head))
        return {"status": "accepted", "delivery": delivery, "event": event, "branches": list(branches)}

    return app


def _bearer_of(request: Request) -> rest.HTTPAuthorizationCredentials | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return rest.HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())
