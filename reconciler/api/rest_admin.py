"""REST routes for secrets (names only, never values), the audit trail and tokens (create, list, revoke)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from reconciler.api.auth import DEFAULT_TTL_S, MAX_TTL_S, Principal, expand_scopes, issue_claims, project_names
from reconciler.api.errors import ApiError
from reconciler.api.rest import ENV_PATTERN, audited, ctx_of, op, principal_of
from reconciler.core.projects import PROJECT_MAX, PROJECT_MIN, ProjectName
from reconciler.errors import OdooOpsError

router = APIRouter(tags=["admin"])
EnvName = Path(..., pattern=ENV_PATTERN, description="Environment name, or a tier name matching one environment.")
Scope = Literal["env:read", "env:write", "logs:read", "shell", "db:read", "db:backup", "db:restore", "db:clone",
                "mail:read", "secrets:read", "secrets:write", "promote", "audit:read", "tokens:write",
                "credentials:read", "production", "admin"]
SecretName = Path(..., pattern=r"^[a-z][a-z0-9_]{0,62}$")


PROJECT_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"  # reconciler.core.projects.is_valid_project_name's (a test compares)
# The document states the normal form exactly; the server checks it itself (PROJECT_NAME_INVALID, with the
# normal form of what was sent as the fix) instead of a bare validation error.
ProjectField = Annotated[str, Field(max_length=100, json_schema_extra={
    "pattern": PROJECT_PATTERN, "minLength": PROJECT_MIN, "maxLength": PROJECT_MAX})]


class SecretNames(BaseModel):
    secrets: list[str]


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(..., min_length=1, max_length=65536)


class Rotated(BaseModel):
    rotated: list[str]
    env: str


class Events(BaseModel):
    events: list[dict[str, Any]]


class Verification(BaseModel):
    ok: bool
    status: str = "ok"  # ok | tampered (the CLI exits 1) | unverifiable (no or wrong key, anchor unreadable: 2)
    entries: int
    legacy_entries: int = 0
    keyed_entries: int = 0
    anchor: dict[str, Any] | None = None  # the latest anchor checked: seq, hash, anchored_at, where
    first_bad: int | None = None
    reason: str | None = None
    message: str | None = None


class TokenBody(BaseModel):
    # scopes, role or both, non-null (null is accepted for "not given", as clients send it): the
    # document says so, so generated clients and property tests know it
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["scopes"], "properties": {"scopes": {"type": "array"}}},
        {"required": ["role"], "properties": {"role": {"type": "string"}}}]})
    subject: str = Field(..., min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=32)] | None = None
    role: Literal["admin", "operator", "developer", "tester"] | None = None
    ttl_s: int | None = Field(None, ge=1, le=MAX_TTL_S, description=(
        "Lifetime in seconds; default 12 hours, shortened to what the server's --max-token-ttl and the "
        "calling token's own remaining lifetime allow. A longer one than either is refused."))
    projects: Annotated[list[ProjectField], Field(min_length=1, max_length=32)] | None = Field(None, description=(
        "Limit the token to these projects, named as they are registered (normal form: `odooops token create "
        "--project \"Acme Corp\"` sends acme-corp): the servers of other projects refuse it (403 "
        "TOKEN_PROJECT_REFUSED). Default: no limit when an admin asks, else the project of the server asked. "
        "At most the calling token's own projects."))


class Token(BaseModel):
    id: str = Field(..., description="The token's id (jti): GET /api/v1/tokens lists it, DELETE revokes it")
    token: str
    expires_at: float
    scopes: list[str]
    subject: str
    projects: list[str] | None = Field(None, description="The projects the token is limited to; null: no limit")


class TokenInfo(BaseModel):
    id: str
    subject: str
    scopes: list[str]
    issued_at: float | None = None
    expires_at: float
    origin: str = Field(..., description="api (POST /tokens), key-file (signed offline, recorded at its first "
                                         "use) or revocation (revoked before the server saw it)")
    created_by: str | None = None
    parent: str | None = Field(None, description="The id of the token that minted it (revoked with it)")
    revoked_at: float | None = None
    revoked_by: str | None = None
    state: Literal["active", "revoked", "expired"]
    projects: list[str] | None = Field(None, description="The projects the token is limited to; null: no limit")


class TokenList(BaseModel):
    tokens: list[TokenInfo]


class Revoked(BaseModel):
    id: str
    revoked: list[str] = Field(..., description="This token and every token minted from it")
    revoked_at: float


@op(router, "GET", "/environments/{env}/secrets", "listEnvSecrets",
    "Names of an environment's secrets (never values)", response_model=SecretNames)
def env_secrets(request: Request, env: str = EnvName) -> dict[str, Any]:
    return {"secrets": ctx_of(request).ops.secret_names(env)}


@op(router, "PUT", "/environments/{env}/secrets/{name}", "setEnvSecret",
    "Set one secret of an environment", status_code=204, errors=(404, 409), action="secrets.set",
    response_class=Response)
def set_env_secret(request: Request, body: SecretBody, env: str = EnvName, name: str = SecretName) -> Response:
    ops = ctx_of(request).ops
    if name == "rotate":  # the path of POST …/secrets/rotate, not a secret name
        raise ApiError("METHOD_NOT_ALLOWED", "PUT is not allowed on …/secrets/rotate",
                       f"POST /api/v1/environments/{env}/secrets/rotate rotates the credentials", status=405,
                       headers={"Allow": "POST"})
    with audited(request, "secrets.set", f"{env}/{name}", {"name": name}):
        ops.set_secret(env, name, body.value)
    return Response(status_code=204)


@op(router, "POST", "/environments/{env}/secrets/rotate", "rotateEnvSecrets",
    "Rotate the platform-generated credentials (rolled out by the next apply, queued now)", errors=(404, 409),
    response_model=Rotated, action="secrets.rotate")
def rotate(request: Request, env: str = EnvName) -> dict[str, Any]:
    ops = ctx_of(request).ops
    with audited(request, "secrets.rotate", env, {}) as out:
        name = ops.resolve_env(env)
        result = ops.rotate(name)
        out["rotated"] = result["rotated"]
    return result


@op(router, "GET", "/secrets", "listProjectSecrets", "Names of the project-level secrets",
    errors=(), response_model=SecretNames)
def project_secrets(request: Request) -> dict[str, Any]:
    return {"secrets": ctx_of(request).ops.secret_names(None)}


@op(router, "PUT", "/secrets/{name}", "setProjectSecret",
    "Set a project-level secret (S3 keys, SMTP relay)", status_code=204, errors=(), action="secrets.set",
    response_class=Response)
def set_project_secret(request: Request, body: SecretBody, name: str = SecretName) -> Response:
    with audited(request, "secrets.set", f"_project/{name}", {"name": name}):
        ctx_of(request).ops.set_secret(None, name, body.value)
    return Response(status_code=204)


@op(router, "GET", "/audit", "listAuditEvents", "The newest audit events", errors=(),
    response_model=Events)
def audit_events(request: Request, limit: int = Query(100, ge=1, le=10000)) -> dict[str, Any]:
    return {"events": ctx_of(request).audit.entries(limit)}


@op(router, "GET", "/audit/verify", "verifyAudit", "Check the audit trail's hash chain",
    errors=(), response_model=Verification)
def audit_verify(request: Request) -> dict[str, Any]:
    return ctx_of(request).audit.verify()


@op(router, "POST", "/tokens", "createToken",
    "Issue a token: at most the caller's own scopes, never outliving the caller's token or --max-token-ttl",
    status_code=201, errors=(), response_model=Token, action="token.create")
def create_token(request: Request, body: TokenBody) -> dict[str, Any]:
    args = {"subject": body.subject, "scopes": body.scopes, "role": body.role, "ttl_s": body.ttl_s,
            "projects": body.projects}
    ctx = ctx_of(request)
    with audited(request, "token.create", body.subject, args) as out:
        who = principal_of(request)
        wanted = expand_scopes(body.scopes, body.role)
        beyond = sorted(s for s in wanted if not who.has(s))
        if beyond:
            raise ApiError("TOKEN_SCOPE_NOT_ALLOWED",
                           f"a token cannot grant scopes its creator lacks: {' '.join(beyond)}",
                           "ask an admin to create this token", status=403)
        projects = _token_projects(who, body.projects, ctx.served_project())
        now = int(time.time())
        ttl = body.ttl_s if body.ttl_s is not None else _default_ttl(who, now, ctx.max_token_ttl_s)
        if now + ttl > who.expires_at:
            left = max(0, int(who.expires_at) - now)
            raise ApiError("TOKEN_EXPIRY_NOT_ALLOWED",
                           f"a token cannot outlive the token that creates it: ttl_s {ttl} ends after "
                           f"the caller's token (which expires in {left}s)",
                           f"ask for ttl_s {left} or less (odooops token create --ttl {left}), or ask an admin for "
                           "a longer-lived token", {"max_ttl_s": left}, status=403)
        token, claims = issue_claims(ctx.keys, body.subject, wanted, ttl, now=now, max_ttl_s=ctx.max_token_ttl_s,
                                     projects=projects)
        assert ctx.registry is not None
        ctx.registry.record(Principal(body.subject, frozenset(wanted), claims["jti"], float(claims["exp"]), claims),
                            origin="api", created_by=who.subject, parent=who.jti)
        out.update(jti=claims["jti"], expires_at=claims["exp"], projects=claims.get("projects"))
    return {"id": claims["jti"], "token": token, "expires_at": float(claims["exp"]), "scopes": wanted,
            "subject": body.subject, "projects": claims.get("projects")}


def _normal(name: str) -> str:
    """name, when it is a project name in its normal form; PROJECT_NAME_INVALID otherwise (naming the normal
    form when there is one): the API takes names as the registry has them, the CLI normalises first."""
    normal = ProjectName.parse(name).value
    if normal != name:
        raise OdooOpsError("PROJECT_NAME_INVALID", f"project name {name[:100]!r} is not in its normal form "
                           f"{normal!r} (a-z, 0-9 and single hyphens)", f"send {normal!r}",
                           {"input": name[:100], "suggestion": normal})
    return name


def _token_projects(who: Principal, asked: list[str] | None, served: str | None) -> list[str] | None:
    """The projects a new token is limited to (None: none). Asked for: normalised, and within the
    caller's own limit. Not asked for: the caller's limit for an admin; for everyone else this server's
    project, so a token minted on one project's server does not reach the others (on the unnamed
    project's server, which takes only unlimited tokens, the caller's limit, i.e. none)."""
    mine = who.projects
    if asked is not None:
        wanted = project_names([_normal(name) for name in asked])
        beyond = sorted(set(wanted) - set(mine)) if mine is not None else []
        if beyond:
            raise ApiError("TOKEN_PROJECT_NOT_ALLOWED",
                           f"a token cannot reach projects its creator's token does not: {' '.join(beyond)} "
                           f"(the token of {who.subject} is limited to {' '.join(mine or ())})",
                           f"ask for projects among {' '.join(mine or ())}, or ask an admin to create this token",
                           {"projects": beyond}, status=403)
        return wanted
    if who.is_admin or served is None:
        return list(mine) if mine is not None else None
    return [served]


def _default_ttl(who: Principal, now: int, max_ttl_s: float) -> int:
    """12 hours, or less: the server's longest lifetime and what is left of the caller's own token."""
    return max(1, min(DEFAULT_TTL_S, int(max_ttl_s), int(who.expires_at) - now))


TokenId = Path(..., pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A token's id (jti), from GET /api/v1/tokens")


@op(router, "GET", "/tokens", "listTokens",
    "Tokens not yet expired, revoked ones included (an admin sees all; others those they hold or minted)",
    errors=(), response_model=TokenList)
def list_tokens(request: Request) -> dict[str, Any]:
    who, registry = principal_of(request), ctx_of(request).registry
    assert registry is not None
    return {"tokens": registry.list(None if who.is_admin else who.subject)}


@op(router, "DELETE", "/tokens/{token_id}", "revokeToken",
    "Revoke a token and every token minted from it: refused (401 TOKEN_REVOKED) from the next request on",
    response_model=Revoked, action="token.revoke")
def revoke_token(request: Request, token_id: str = TokenId) -> dict[str, Any]:
    registry = ctx_of(request).registry
    assert registry is not None
    with audited(request, "token.revoke", token_id, {}) as out:
        who = principal_of(request)
        if not who.is_admin:
            row = registry.get(token_id)
            if row is None or who.subject not in (row["subject"], row["created_by"]):
                # the same answer as for an unknown id: a non-admin learns nothing about others' tokens
                raise ApiError("TOKEN_NOT_FOUND", f"no token {token_id} of yours on this server",
                               "odooops token list  # the tokens you hold or minted; an admin can revoke any",
                               status=404)
        done = registry.revoke(token_id, who.subject, unknown_ok=who.is_admin)
        out["revoked"] = list(done.revoked)
    return {"id": done.id, "revoked": list(done.revoked), "revoked_at": done.revoked_at}
