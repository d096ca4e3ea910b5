"""REST routes for secrets (names only, never values), the audit trail and token creation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from reconciler.api.auth import DEFAULT_TTL_S, MAX_TTL_S, expand_scopes, issue_claims
from reconciler.api.errors import ApiError
from reconciler.api.rest import ENV_PATTERN, audited, ctx_of, guard_production, op, principal_of

router = APIRouter(tags=["admin"])
EnvName = Path(..., pattern=ENV_PATTERN, description="Environment name, or a tier name matching one environment.")
Scope = Literal["env:read", "env:write", "logs:read", "shell", "db:read", "db:backup", "db:restore", "db:clone",
                "mail:read", "secrets:read", "secrets:write", "promote", "audit:read", "tokens:write",
                "credentials:read", "admin"]
SecretName = Path(..., pattern=r"^[a-z][a-z0-9_]{0,62}$")


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
    role: Literal["admin", "developer", "tester"] | None = None
    ttl_s: int = Field(DEFAULT_TTL_S, ge=1, le=MAX_TTL_S)


class Token(BaseModel):
    token: str
    expires_at: float
    scopes: list[str]
    subject: str


@op(router, "GET", "/environments/{env}/secrets", "secrets:read", "listEnvSecrets",
    "Names of an environment's secrets (never values)", response_model=SecretNames)
def env_secrets(request: Request, env: str = EnvName) -> dict[str, Any]:
    return {"secrets": ctx_of(request).ops.secret_names(env)}


@op(router, "PUT", "/environments/{env}/secrets/{name}", "secrets:write", "setEnvSecret",
    "Set one secret of an environment", status_code=204, errors=(404, 409), action="secrets.set",
    response_class=Response)
def set_env_secret(request: Request, body: SecretBody, env: str = EnvName, name: str = SecretName) -> Response:
    ops = ctx_of(request).ops
    if name == "rotate":  # the path of POST …/secrets/rotate, not a secret name
        raise ApiError("METHOD_NOT_ALLOWED", "PUT is not allowed on …/secrets/rotate",
                       f"POST /api/v1/environments/{env}/secrets/rotate rotates the credentials", status=405,
                       headers={"Allow": "POST"})
    with audited(request, "secrets.set", f"{env}/{name}", {"name": name}):
        guard_production(request, ops.resolve_env(env))
        ops.set_secret(env, name, body.value)
    return Response(status_code=204)


@op(router, "POST", "/environments/{env}/secrets/rotate", "secrets:write", "rotateEnvSecrets",
    "Rotate the platform-generated credentials (rolled out by the next apply, queued now)", errors=(404, 409),
    response_model=Rotated, action="secrets.rotate")
def rotate(request: Request, env: str = EnvName) -> dict[str, Any]:
    ops = ctx_of(request).ops
    with audited(request, "secrets.rotate", env, {}) as out:
        name = ops.resolve_env(env)
        guard_production(request, name)
        result = ops.rotate(name)
        out["rotated"] = result["rotated"]
    return result


@op(router, "GET", "/secrets", "secrets:read", "listProjectSecrets", "Names of the project-level secrets",
    errors=(), response_model=SecretNames)
def project_secrets(request: Request) -> dict[str, Any]:
    return {"secrets": ctx_of(request).ops.secret_names(None)}


@op(router, "PUT", "/secrets/{name}", "secrets:write", "setProjectSecret",
    "Set a project-level secret (S3 keys, SMTP relay)", status_code=204, errors=(), action="secrets.set",
    response_class=Response)
def set_project_secret(request: Request, body: SecretBody, name: str = SecretName) -> Response:
    with audited(request, "secrets.set", f"_project/{name}", {"name": name}):
        ctx_of(request).ops.set_secret(None, name, body.value)
    return Response(status_code=204)


@op(router, "GET", "/audit", "audit:read", "listAuditEvents", "The newest audit events", errors=(),
    response_model=Events)
def audit_events(request: Request, limit: int = Query(100, ge=1, le=10000)) -> dict[str, Any]:
    return {"events": ctx_of(request).audit.entries(limit)}


@op(router, "GET", "/audit/verify", "audit:read", "verifyAudit", "Check the audit trail's hash chain",
    errors=(), response_model=Verification)
def audit_verify(request: Request) -> dict[str, Any]:
    return ctx_of(request).audit.verify()


@op(router, "POST", "/tokens", "tokens:write", "createToken", "Issue a token (at most the caller's own scopes)",
    status_code=201, errors=(), response_model=Token, action="token.create")
def create_token(request: Request, body: TokenBody) -> dict[str, Any]:
    args = {"subject": body.subject, "scopes": body.scopes, "role": body.role, "ttl_s": body.ttl_s}
    with audited(request, "token.create", body.subject, args) as out:
        who = principal_of(request)
        wanted = expand_scopes(body.scopes, body.role)
        beyond = sorted(s for s in wanted if not who.has(s))
        if beyond:
            raise ApiError("TOKEN_SCOPE_NOT_ALLOWED",
                           f"a token cannot grant scopes its creator lacks: {' '.join(beyond)}",
                           "ask an admin to create this token", status=403)
        token, claims = issue_claims(ctx_of(request).keys, body.subject, wanted, body.ttl_s)
        out.update(jti=claims["jti"], expires_at=claims["exp"])
    return {"token": token, "expires_at": float(claims["exp"]), "scopes": wanted, "subject": body.subject}
