"""REST routes for environments: list, show, redeploy, scale, destroy, plan, deployments, logs, exec, status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from reconciler.api.errors import ApiError
from reconciler.api.rest import ENV_PATTERN, actor_of, audited, ctx_of, is_production, op
from reconciler.core.production_exec import ProductionExec
from reconciler.data.admin_password import credentials as admin_credentials
from reconciler.executors.postgres import Postgres

router = APIRouter(tags=["environments"])
EnvName = Path(..., pattern=ENV_PATTERN, description="Environment name, or a tier name matching one environment.")


class EnvSummary(BaseModel):
    name: str
    branch: str | None = None
    tier: str | None = None
    commit: str | None = None
    state: str | None = None
    url: str | None = None
    workers: int | None = None
    cron_workers: int | None = None
    updated_at: float | None = None


class EnvList(BaseModel):
    environments: list[EnvSummary]


class EnvDetail(EnvSummary):
    model_config = ConfigDict(extra="allow")
    steps: list[dict[str, Any]] | None = None
    tests: Any = None
    modules: Any = None
    error: dict[str, Any] | None = None
    names: dict[str, str] | None = Field(
        None, description="What the environment's resources are called: database, role, containers, network, route, "
                          "host name, state folders, backup prefix, pin ref (docs/projects.md)")


class Queued(BaseModel):
    status: str
    env: str


class ScaleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workers: int | None = Field(None, ge=0, le=256)
    cron_workers: int | None = Field(None, ge=0, le=64)


class Committed(BaseModel):
    status: str
    commit: str
    env: str
    branch: str


class Destroyed(BaseModel):
    status: str
    env: str
    branch: str


class ExecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: list[str] = Field(..., min_length=1, max_length=256)
    stdin: str | None = Field(None, max_length=1_048_576)
    timeout_s: float = Field(60.0, gt=0, le=600)


class ExecResult(BaseModel):
    exit_code: int | None
    timed_out: bool
    output: str
    seconds: float


class Deployments(BaseModel):
    deployments: list[dict[str, Any]]


class Credentials(BaseModel):
    env: str
    url: str | None = None
    database: str
    login: str = Field(..., description="The Odoo admin user's login (base.user_admin)")
    password: str = Field(..., description="Its password, the platform's own for this environment")
    set_in_database: bool = Field(..., description="False when someone changed it in Odoo since the platform "
                                                   "set it; the next deploy sets it again")


@op(router, "GET", "/environments", "listEnvironments", "List environments", errors=(),
    response_model=EnvList)
async def list_environments(request: Request) -> Response:
    # Served from bytes cached per state-file version, on the event loop (a stat per request).
    return Response(ctx_of(request).ops.list_json(), media_type="application/json")


@op(router, "GET", "/environments/{env}", "getEnvironment", "Show an environment",
    response_model=EnvDetail)
def get_environment(request: Request, env: str = EnvName) -> dict[str, Any]:
    return ctx_of(request).ops.show_env(env)


@op(router, "POST", "/environments/{env}/redeploy", "redeployEnvironment",
    "Queue an environment for redeploying", status_code=202, errors=(404, 409), response_model=Queued,
    action="env.redeploy")
def redeploy(request: Request, env: str = EnvName) -> dict[str, Any]:
    ops = ctx_of(request).ops
    with audited(request, "env.redeploy", env, {}) as out:
        name = ops.resolve_env(env)
        result = ops.redeploy(name)
        out["env"] = name
    return result


@op(router, "POST", "/environments/{env}/scale", "scaleEnvironment",
    "Scale workers (a commit to .odooops.yaml on the environment's branch)", status_code=202, errors=(404, 409),
    response_model=Committed, action="env.scale")
def scale(request: Request, body: ScaleBody, env: str = EnvName) -> dict[str, Any]:
    ops = ctx_of(request).ops
    args = body.model_dump(exclude_none=True)
    with audited(request, "env.scale", env, args) as out:
        name = ops.resolve_env(env)
        result = ops.scale(name, actor_of(request), body.workers, body.cron_workers)
        out["commit"] = result["commit"]
    return result


@op(router, "DELETE", "/environments/{env}", "destroyEnvironment",
    "Destroy an environment (deletes its branch; production needs confirm, admin and a fresh backup)",
    status_code=202, errors=(404, 409), response_model=Destroyed, action="env.destroy")
def destroy(request: Request, env: str = EnvName, confirm: bool = Query(False)) -> dict[str, Any]:
    ops = ctx_of(request).ops
    with audited(request, "env.destroy", env, {"confirm": confirm}) as out:
        name = ops.resolve_env(env)
        result = ops.destroy(name, actor_of(request), confirm)
        out["branch"] = result["branch"]
    return result


@op(router, "GET", "/plan", "getPlan", "The current plan (all branches or one)",
    response_model=dict[str, Any])
def get_plan(request: Request, branch: str | None = Query(None, min_length=1, max_length=255)) -> dict[str, Any]:
    return ctx_of(request).ops.plan(branch)


@op(router, "GET", "/environments/{env}/deployments", "listDeployments",
    "Deployment history from the status notes", response_model=Deployments)
def deployments(request: Request, env: str = EnvName) -> dict[str, Any]:
    return {"deployments": ctx_of(request).ops.deployments(env)}


@op(router, "GET", "/environments/{env}/logs", "getLogs", "Container logs (tail, or follow as a stream)",
    errors=(404, 503), response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Log lines"}})
def logs(request: Request, env: str = EnvName, tail: int = Query(200, ge=0, le=10000),
         follow: bool = Query(False), role: str = Query("web", pattern="^(web|cron)$"),
         max_seconds: float = Query(300, gt=0, le=3600)) -> Any:
    ops = ctx_of(request).ops
    if follow:
        return StreamingResponse(ops.follow_logs(env, tail, role, max_seconds), media_type="text/plain")
    return PlainTextResponse(ops.logs(env, tail, role))


@op(router, "POST", "/environments/{env}/exec", "execInEnvironment",
    "Run a one-off command in the environment's container (audited, at most 600 s; on production only when "
    "the policy enables it, read-only and without secrets)", errors=(404, 409, 503),
    response_model=ExecResult, action="env.exec")
def exec_command(request: Request, body: ExecBody, env: str = EnvName) -> dict[str, Any]:
    ops = ctx_of(request).ops
    args: dict[str, Any] = {"command": body.command, "timeout_s": body.timeout_s, "stdin": body.stdin is not None}
    with audited(request, "env.exec", env, args) as out:
        name = ops.resolve_env(env)
        read_only = is_production(ops, name)
        if read_only:
            args["read_only"] = True
            check_production_exec(ops.project.policy.production_exec, name, body.timeout_s)
        result = ops.exec(name, body.command, body.stdin, body.timeout_s, read_only=read_only)
        out.update(exit_code=result["exit_code"], timed_out=result["timed_out"])
    return result


def check_production_exec(rules: ProductionExec, env: str, timeout_s: float) -> None:
    """The policy's production_exec: off by default (403 saying how to enable it), time-limited when on."""
    if not rules.enabled:
        raise ApiError("PRODUCTION_EXEC_DISABLED", f"exec into {env} (tier production) is off in the platform "
                       "policy", "enable it in the policy file (production_exec: {enabled: true, max_seconds: "
                       "60}, then odooops serve --policy FILE); it then runs read-only, without odoo.conf "
                       "or credentials, for the admin and operator roles. Or exec into a staging copy",
                       {"env": env, "tier": "production"}, status=403)
    if timeout_s > rules.max_seconds:
        raise ApiError("EXEC_TIMEOUT_TOO_LONG", f"timeout_s {timeout_s:g} is longer than the policy allows on "
                       f"production ({rules.max_seconds:g} s)", f"send timeout_s: {rules.max_seconds:g} or less",
                       {"env": env, "max_seconds": rules.max_seconds}, status=400)


@op(router, "GET", "/environments/{env}/credentials", "getEnvironmentCredentials",
    "The Odoo admin login and password of an environment (audited; production's need the production scope)",
    errors=(404, 409, 503), response_model=Credentials, action="env.credentials")
def credentials(request: Request, env: str = EnvName) -> Response:
    ctx = ctx_of(request)
    with audited(request, "env.credentials", env, {}) as out:
        name = ctx.ops.resolve_env(env)
        entry = ctx.ops.entries()[name]
        if ctx.ops.host is None:
            raise ApiError("HOST_NOT_CONFIGURED", "the server has no host settings",
                           "start odooops serve with its host settings: odooops host show names what is missing",
                           status=503)
        result = admin_credentials(Postgres.from_host(ctx.ops.host), ctx.ops.secret_store(), ctx.ops.project.key(name))
        result["url"] = entry.get("url")
        out["env"] = name
    body = Credentials(**result).model_dump_json().encode()
    # Never kept by a cache or a proxy on the way.
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@op(router, "GET", "/status", "getStatus", "Daemon status (queue, last poll, the project it serves)", errors=(),
    response_model=dict[str, Any])
def status(request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    # project: the served project's name, null for the installation's unnamed project
    return {**ctx.ops.status(), "project": ctx.served_project()}
