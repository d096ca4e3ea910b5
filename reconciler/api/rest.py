"""The REST API's frame: per-operation scope checks, rate limits, audit entries, error docs, routers."""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from reconciler.api import client_address
from reconciler.api.audit import AuditLog
from reconciler.api.auth import MAX_TTL_S, KeyRing, Principal, TokenCache, check_project
from reconciler.api.client_address import LOOPBACK, IPAddress, Network
from reconciler.api.errors import REQUEST_ID, ApiError
from reconciler.api.jobs import Job, JobRegistry
from reconciler.api.permissions import Permission, named_envs, permission, production_in, refusal, roles_for
from reconciler.api.ratelimit import RateLimiter, limited
from reconciler.api.token_registry import TokenRegistry
from reconciler.core.error_codes import audit_outcome
from reconciler.core.projects import ProjectName
from reconciler.errors import OdooOpsError
from reconciler.service.operations import Actor, Operations

PREFIX = "/api/v1"
ENV_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="A JWT from `odooops token create` or POST /api/v1/tokens.")
BEARER = Security(bearer)


class ErrorBody(BaseModel):
    error: str
    message: str
    remediation: str
    docs: str
    request_id: str | None = None


_ERROR_TEXT = {400: "Invalid request", 401: "Missing, invalid or expired token", 403: "Token lacks the scope",
               404: "Not found", 409: "Refused: needs confirmation, a gate or a fresh state", 429: "Rate limited",
               415: "The body is not JSON", 422: "The operation failed (the error says why and how to fix it)",
               507: "Not enough space (backup store or disk)", 500: "Internal error (details in the server log)",
               501: "Not available in this build", 503: "A backing service is unreachable"}


def error_responses(*extra: int) -> dict[int | str, dict[str, Any]]:
    codes = sorted({400, 401, 403, 422, 429, 500, *extra})
    return {c: {"model": ErrorBody, "description": _ERROR_TEXT.get(c, "Error")} for c in codes}


def default_auth_failures() -> RateLimiter:
    """Failed authentications per client address: a burst of 10, then one every 2 seconds (30/min)."""
    return RateLimiter(0.5, 10)


@dataclass
class ApiContext:
    """What every route needs, built once at server start (keys read once: no per-request file reads)."""

    keys: KeyRing
    ops: Operations
    audit: AuditLog
    limiter: RateLimiter | None = None
    # Privileged operations on production only from these networks (--allow-ip; default: this host).
    allow_nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = LOOPBACK
    known_secrets: Callable[[], list[str]] = field(default=lambda: [])
    jobs: JobRegistry | None = None  # default: <state>/jobs, a named project's in <state>/jobs/<project>
    trusted_proxies: tuple[Network, ...] = ()  # --trusted-proxy: whose X-Forwarded-For is believed
    auth_failures: RateLimiter | None = field(default_factory=default_auth_failures)
    max_token_ttl_s: float = MAX_TTL_S  # --max-token-ttl
    registry: TokenRegistry | None = None  # default: <state>/tokens/registry.sqlite3
    tokens: TokenCache = field(init=False)
    _served: list[str | None] = field(default_factory=list, init=False, repr=False)

    def served_project(self) -> str | None:
        """The registered name of the project this server reconciles (`odooops serve --project`), None
        for the installation's unnamed project; read once (it does not change while the server runs)."""
        if not self._served:
            self._served.append(self.ops.project.project_name)
        return self._served[0]

    def __post_init__(self) -> None:
        self.tokens = TokenCache(self.keys, max_ttl_s=self.max_token_ttl_s)
        state = Path(self.ops.daemon.config.state_dir)
        if self.jobs is None:
            # The serves of a host (one per project) share the state directory: each project's jobs are
            # its own (a serve that starts marks the running jobs it finds as interrupted; a token of
            # one project must not read another's). The unnamed project keeps <state>/jobs. From the
            # configured name: the project itself is opened on first use, not here.
            named = self.ops.daemon.config.project
            self.jobs = JobRegistry(state / "jobs" / ProjectName.parse(named).value if named else state / "jobs")
        if self.registry is None:
            self.registry = TokenRegistry(state / "tokens" / "registry.sqlite3", self.max_token_ttl_s)


def ctx_of(request: Request) -> ApiContext:
    ctx: ApiContext | None = request.app.state.api
    if ctx is None:
        raise ApiError("API_NOT_CONFIGURED", "this server runs without the REST API",
                       "start it with odooops serve (which loads --api-key-file)", status=503)
    return ctx


def principal_of(request: Request) -> Principal:
    who: Principal = request.state.principal
    return who


def actor_of(request: Request) -> Actor:
    who = principal_of(request)
    return Actor(who.subject, who.is_admin)


Allow = Callable[[Request, Principal], bool]
_UNKNOWN = object()


def client_ip(request: Request) -> IPAddress | None:
    """The client's address (X-Forwarded-For only from --trusted-proxy peers), None when unknown."""
    known = getattr(request.state, "client_ip", _UNKNOWN)
    if known is not _UNKNOWN:
        return cast("IPAddress | None", known)
    ctx: ApiContext | None = request.app.state.api
    headers = {k: request.headers[k] for k in client_address.PROXY_HEADERS if k in request.headers}
    ip = client_address.client_ip(request.client.host if request.client else None, headers,
                                  ctx.trusted_proxies if ctx else ())
    request.state.client_ip = ip
    return ip


def client_key(request: Request) -> str:
    """The failed-authentication bucket: the client's address, or the peer an unknown client came through."""
    ip = client_ip(request)
    return str(ip) if ip is not None else f"unknown via {request.client.host if request.client else '?'}"


def client_is_local(request: Request) -> bool:
    ip = client_ip(request)
    return ip is not None and ip.is_loopback


def requires(operation: str, action: str | None, allow: Allow | None = None) -> Callable[..., Awaitable[Principal]]:
    """The dependency of one operation: a valid bearer token (401), the rate limit (429), the scopes of the
    permission table (403). `allow`: a narrower grant checked when the scope is missing (a job's own actor
    may read it)."""
    perm = permission(operation)  # an operation missing from the table fails when the route is declared
    reads_body = any(t.startswith("body:") for t in perm.touches) and perm.production is not None

    # async: CPU only (a cached token is a dict lookup), so no thread-pool hop per request
    async def check(request: Request, creds: HTTPAuthorizationCredentials | None = BEARER) -> Principal:
        body: Any = None
        if reads_body:
            # FastAPI has read (and cached) the body before solving dependencies; a body that is not
            # JSON names no environment here and is refused by validation before the handler runs.
            try:
                body = json.loads(await request.body() or b"null")
            except ValueError:
                body = None
        return authorize(request, creds, operation, action, allow, body=body)

    check.permission = perm  # type: ignore[attr-defined]  # tests find every route's check by this
    return check


def authenticate(request: Request, creds: HTTPAuthorizationCredentials | None) -> Principal:
    """The token's principal (401), revoked tokens refused; failed attempts limited per client address (429)."""
    ctx = ctx_of(request)
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise ApiError("TOKEN_MISSING", "this endpoint needs a bearer token",
                       "send 'Authorization: Bearer TOKEN' (odooops token create ... makes one)", status=401,
                       headers={"WWW-Authenticate": 'Bearer realm="odooops"'})
    failures = ctx.auth_failures
    if failures is not None and not ctx.tokens.cached(creds.credentials):
        # Refused before verifying: a client spending its failures costs no HMAC/RSA check either.
        wait = failures.peek(client_key(request))
        if wait > 0:
            raise limited(wait, "AUTH_RATE_LIMITED", f"too many failed authentications from "
                          f"{client_key(request)}", "--auth-failure-limit")
    try:
        who = ctx.tokens.verify(creds.credentials)
        assert ctx.registry is not None
        ctx.registry.check(who)
    except ApiError:
        if failures is not None:
            failures.take(client_key(request))
        raise
    # A valid token for another project: refused, but no failed authentication (nothing was guessed).
    check_project(who, ctx.served_project())
    return who


def authorize(request: Request, creds: HTTPAuthorizationCredentials | None, operation: str,
              action: str | None, allow: Allow | None = None, *, body: Any = None) -> Principal:
    """Token (401), rate limit (429), unknown query parameters (400), the operation's scope (403) and,
    when it touches production, the production column of the permission table (403, audited), the
    --allow-ip networks (403) and nothing else: every route passes here."""
    ctx = ctx_of(request)
    perm = permission(operation)
    who = authenticate(request, creds)
    if ctx.limiter is not None:
        ctx.limiter.check(f"{who.subject}\x00{who.jti}")
    request.state.principal = who
    route = request.scope.get("route")
    known = {p.alias for p in route.dependant.query_params} if route is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:  # a misspelt ?confirm=... must not be silently ignored
        raise ApiError("QUERY_PARAMETER_UNKNOWN", f"unknown query parameter {unknown[0][:60]!r}",
                       f"use only {', '.join(sorted(known)) or 'no query parameters'} (docs/openapi.json)",
                       status=400)
    scope = perm.scope
    if not who.has(scope) and not (allow is not None and allow(request, who)):
        if action is not None:
            audit(request, action, request.url.path, {}, f"refused:SCOPE_REQUIRED ({scope})")
        roles = roles_for(perm, False)
        raise ApiError("SCOPE_REQUIRED", f"{operation} needs the scope {scope!r} on every tier (roles: "
                       f"{', '.join(roles)}); the token has {' '.join(sorted(who.scopes))}",
                       f"ask an admin for a token with {scope}: odooops token create --subject "
                       f"{who.subject} --scope {scope} (or --role {roles[-1]})",
                       {"operation": operation, "required_scopes": [scope], "roles": roles}, status=403)
    if perm.production is not None:
        guard_production(request, perm, who, action, body)
    return who


def is_production(ops: Operations, name: str) -> bool:
    """An environment of the production tier (or named production), by its state entry."""
    return name == "production" or (ops.entries().get(name) or {}).get("tier") == "production"


def _tier_of(ops: Operations) -> Callable[[str], tuple[str, str | None] | None]:
    def tier_of(name: str) -> tuple[str, str | None] | None:
        try:
            resolved = ops.resolve_env(name)
        except OdooOpsError:
            return None  # unknown or ambiguous: the handler answers it with its own error
        return resolved, (ops.entries().get(resolved) or {}).get("tier")
    return tier_of


def guard_production(request: Request, perm: Permission, who: Principal, action: str | None, body: Any) -> None:
    """The production column: its scope, then the --allow-ip networks."""
    ctx = ctx_of(request)
    names = named_envs(perm, request.path_params, body)
    prod = production_in(perm, names, _tier_of(ctx.ops))
    if prod is None:
        return
    target = prod if prod != "project" else request.url.path
    if not who.has(perm.production or "admin"):
        err = refusal(perm, who, prod)
        if action is not None:
            audit(request, action, target, {}, f"refused:{err.code}")
        raise err
    ip = client_ip(request)
    if not client_address.allowed(ip, ctx.allow_nets):
        if ip is None:
            peer = request.client.host if request.client else "?"
            message = (f"production operations need a known client address; this request came through a "
                       f"proxy at {peer} that is not a --trusted-proxy")
            fix = f"start the server with --trusted-proxy {peer} (the proxy must set X-Forwarded-For)"
        else:
            message = f"production operations are not allowed from {ip}"
            fix = "run it from an allowed network (odooops serve --allow-ip CIDR; the default is this host only)"
        if action is not None:
            audit(request, action, target, {}, "refused:IP_NOT_ALLOWED")
        raise ApiError("IP_NOT_ALLOWED", message, fix, {"operation": perm.operation, "tier": "production"},
                       status=403)


def op(router: APIRouter, method: str, path: str, operation_id: str, summary: str, *,
       status_code: int = 200, errors: tuple[int, ...] = (404,), action: str | None = None,
       allow: Allow | None = None, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an operation: its auth dependency, the scopes of the permission table (x-required-scopes,
    x-production-scopes) and error docs."""
    perm = permission(operation_id)
    extra: dict[str, Any] = {"x-required-scopes": [perm.scope]}
    if perm.production is not None:
        extra["x-production-scopes"] = [perm.scope, perm.production]
    if action is not None:
        extra["x-audited-action"] = action
    body = (415,) if method in ("POST", "PUT") else ()
    responses = {**error_responses(*errors, *body), **kw.pop("responses", {})}
    return router.api_route(
        path, methods=[method], operation_id=operation_id, summary=summary, status_code=status_code,
        responses=responses, openapi_extra=extra, dependencies=[Depends(requires(operation_id, action, allow))],
        **kw)


def audit(request: Request, action: str, target: str, arguments: dict[str, Any], result: Any) -> None:
    ctx = ctx_of(request)
    who: Principal | None = getattr(request.state, "principal", None)
    ctx.audit.append(actor=who.subject if who else "anonymous", scopes=sorted(who.scopes) if who else [],
                     action=action, target=target, arguments=arguments, result=result,
                     request_id=REQUEST_ID.get() or None, secrets=ctx.known_secrets())


@contextlib.contextmanager
def audited(request: Request, action: str, target: str, arguments: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Audit the operation's outcome: ok (with what the handler put in the yielded dict), refused or failed."""
    outcome: dict[str, Any] = {}
    with audited_refusal(request, action, target, arguments):
        yield outcome
    audit(request, action, target, arguments, {"status": "ok", **outcome})


@contextlib.contextmanager
def audited_refusal(request: Request, action: str, target: str, arguments: dict[str, Any]) -> Iterator[None]:
    """Audit only a failure: refused (a known error code) or failed; used alone for the checks before an
    operation starts, whose own outcome is audited when it ends (a job ends later)."""
    try:
        yield
    except OdooOpsError as err:
        audit(request, action, target, arguments, audit_outcome(err.code))
        raise
    except Exception:
        audit(request, action, target, arguments, "failed:INTERNAL")
        raise


def wants_async(request: Request) -> bool:
    """RFC 7240 `Prefer: respond-async`: the client would rather poll a job than hold the request open."""
    prefs = request.headers.get("prefer", "")
    return any(p.split(";")[0].strip().lower() == "respond-async" for p in prefs.split(","))


def run_operation(request: Request, action: str, target: str, arguments: dict[str, Any],
                  fn: Callable[[], dict[str, Any]],
                  summary: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Any:
    """A long data operation: answered when done, or (Prefer: respond-async) answered 202 at once with
    the job (Location: /api/v1/jobs/ID) and run in the background. Audited when it ends, either way."""
    if not wants_async(request):
        with audited(request, action, target, arguments) as out:
            result = fn()
            out.update(summary(result) if summary else {})
        return result
    ctx = ctx_of(request)
    assert ctx.jobs is not None
    who = principal_of(request)
    request_id = REQUEST_ID.get() or None

    def done(job: Job) -> None:
        if job.state == "succeeded":
            result: Any = {"status": "ok", "job": job.id, **(summary(job.result or {}) if summary else {})}
        else:
            result = audit_outcome(str((job.error or {}).get("error") or "INTERNAL"))
        ctx.audit.append(actor=who.subject, scopes=sorted(who.scopes), action=action, target=target,
                         arguments=arguments, result=result, request_id=request_id, secrets=ctx.known_secrets())

    job = ctx.jobs.submit(action, target, who.subject, fn, done, request_id=request_id)
    return JSONResponse(job.to_json(), status_code=202,
                        headers={"Location": f"{PREFIX}/jobs/{job.id}", "Preference-Applied": "respond-async"})
