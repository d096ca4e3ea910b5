"""REST routes for data operations: backups, restores, clones, promotions, rollbacks and captured mail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from reconciler.api.rest import (
    ENV_PATTERN,
    actor_of,
    audited,
    audited_refusal,
    ctx_of,
    op,
    run_operation,
)
from reconciler.api.rest_jobs import JobModel
from reconciler.errors import OdooOpsError
from reconciler.service.data import DataService

router = APIRouter(tags=["data"])
EnvName = Path(..., pattern=ENV_PATTERN, description="Environment name, or a tier name matching one environment.")
BackupId = Path(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def data_service(request: Request) -> DataService:
    """The data layer for this request (imported on first use: psycopg and Docker only when needed)."""
    ops = ctx_of(request).ops
    if ops.host is None:
        raise OdooOpsError("HOST_NOT_CONFIGURED", "the server has no host settings",
                           "start odooops serve with its host settings: odooops host show names what is missing")
    return DataService(ops.project, ops.host, enqueue=ops.daemon.enqueue)


class BackupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verify: bool = False


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backup: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    to: str | None = Field(None, pattern=ENV_PATTERN)
    confirm: bool = False


class CloneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(..., pattern=ENV_PATTERN)
    target: str = Field(..., pattern=ENV_PATTERN)
    neutralize: bool = True
    mask: bool = True


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(..., pattern=ENV_PATTERN)
    target: str = Field(..., pattern=ENV_PATTERN)
    confirm: bool = False


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str | None = Field(None, pattern=r"^[0-9a-f]{7,40}$")
    confirm: bool = Field(False, description="Accept that restoring the pre-deploy backup discards what was "
                                             "written since (refused with ROLLBACK_NEEDS_CONFIRMATION otherwise).")
    code_only: bool = Field(False, description="Previous code, database kept as it is; refused "
                                               "(ROLLBACK_CODE_ONLY_REFUSED) when the deploy changed modules.")


class Backups(BaseModel):
    backups: list[dict[str, Any]]


class Messages(BaseModel):
    messages: list[dict[str, Any]]


_DATA_ERRORS = (404, 409, 503, 507)
# Long operations: `Prefer: respond-async` answers 202 with the job (GET /api/v1/jobs/{id}).
ASYNC = {202: {"model": JobModel, "description": "Accepted as a job (request header Prefer: respond-async); "
                                                 "Location: /api/v1/jobs/{id}"}}


@op(router, "GET", "/environments/{env}/backups", "listBackups", "List an environment's backups",
    errors=_DATA_ERRORS, response_model=Backups)
def list_backups(request: Request, env: str = EnvName) -> dict[str, Any]:
    name = ctx_of(request).ops.resolve_env(env)
    result = data_service(request).backups(name)
    return result if isinstance(result, dict) else {"backups": list(result)}


@op(router, "POST", "/environments/{env}/backups", "createBackup", "Back up an environment now",
    status_code=201, errors=_DATA_ERRORS, responses=ASYNC, response_model=dict[str, Any], action="db.backup")
def create_backup(request: Request, body: BackupBody, env: str = EnvName) -> Any:
    with audited_refusal(request, "db.backup", env, body.model_dump()):
        name = ctx_of(request).ops.resolve_env(env)
        svc = data_service(request)
    return run_operation(request, "db.backup", env, body.model_dump(),
                         lambda: dict(svc.backup(name, verify=body.verify)), lambda r: {"backup": r.get("id")})


@op(router, "POST", "/environments/{env}/backups/prune", "pruneBackups",
    "Delete the backups the environment's retention policy does not keep", errors=_DATA_ERRORS,
    response_model=dict[str, Any], action="db.prune")
def prune_backups(request: Request, env: str = EnvName) -> dict[str, Any]:
    with audited(request, "db.prune", env, {}) as out:
        name = ctx_of(request).ops.resolve_env(env)
        result = data_service(request).prune(name)
        out["pruned"] = len(result["pruned"])
    return result


@op(router, "POST", "/environments/{env}/backups/{backup_id}/verify", "verifyBackup",
    "Restore a backup into a scratch database and check it", errors=_DATA_ERRORS,
    responses=ASYNC, response_model=dict[str, Any], action="db.verify")
def verify_backup(request: Request, env: str = EnvName, backup_id: str = BackupId) -> Any:
    with audited_refusal(request, "db.verify", env, {"backup": backup_id}):
        name = ctx_of(request).ops.resolve_env(env)
        svc = data_service(request)
    return run_operation(request, "db.verify", env, {"backup": backup_id},
                         lambda: dict(svc.verify_backup(name, backup_id)), lambda r: {"ok": r.get("ok")})


@op(router, "POST", "/environments/{env}/restore", "restoreBackup",
    "Restore a backup (into the environment or another one)", errors=_DATA_ERRORS,
    responses=ASYNC, response_model=dict[str, Any], action="db.restore")
def restore(request: Request, body: RestoreBody, env: str = EnvName) -> Any:
    ops = ctx_of(request).ops
    with audited_refusal(request, "db.restore", env, body.model_dump()):
        name = ops.resolve_env(env)
        to = ops.resolve_env(body.to) if body.to else None
        svc = data_service(request)
    return run_operation(request, "db.restore", env, body.model_dump(),
                         lambda: dict(svc.restore(name, body.backup, to_env=to, confirm=body.confirm)))


@op(router, "POST", "/clones", "cloneEnvironment", "Clone one environment's data into another",
    errors=_DATA_ERRORS, responses=ASYNC, response_model=dict[str, Any], action="db.clone")
def clone(request: Request, body: CloneBody) -> Any:
    ops = ctx_of(request).ops
    with audited_refusal(request, "db.clone", body.target, body.model_dump()):
        src, dst = ops.resolve_env(body.source), ops.resolve_env(body.target)
        svc = data_service(request)
    return run_operation(request, "db.clone", body.target, body.model_dump(),
                         lambda: dict(svc.clone(src, dst, neutralize=body.neutralize, mask=body.mask)))


@op(router, "POST", "/promotions", "promote", "Promote one environment's commit to another's branch",
    errors=_DATA_ERRORS, responses=ASYNC, response_model=dict[str, Any], action="promote")
def promote(request: Request, body: PromoteBody) -> Any:
    ops = ctx_of(request).ops
    with audited_refusal(request, "promote", body.target, body.model_dump()):
        src, dst = ops.resolve_env(body.source), ops.resolve_env(body.target)
        svc, actor = data_service(request), actor_of(request).subject
    return run_operation(request, "promote", body.target, body.model_dump(),
                         lambda: dict(svc.promote(src, dst, body.confirm, actor=actor)))


@op(router, "POST", "/environments/{env}/rollback", "rollbackEnvironment",
    "Roll an environment back to an earlier deployed commit", errors=_DATA_ERRORS,
    responses=ASYNC, response_model=dict[str, Any], action="env.rollback")
def rollback(request: Request, body: RollbackBody, env: str = EnvName) -> Any:
    ops = ctx_of(request).ops
    with audited_refusal(request, "env.rollback", env, body.model_dump()):
        name = ops.resolve_env(env)
        svc, actor = data_service(request), actor_of(request).subject
    return run_operation(request, "env.rollback", env, body.model_dump(),
                         lambda: dict(svc.rollback(name, to_commit=body.to, actor=actor, confirm=body.confirm,
                                                   code_only=body.code_only)))


@op(router, "DELETE", "/environments/{env}/pin", "clearRollbackPin",
    "Remove the environment's rollback pin: it follows its branch head again", errors=_DATA_ERRORS,
    response_model=dict[str, Any], action="env.unpin")
def clear_pin(request: Request, env: str = EnvName) -> dict[str, Any]:
    ops = ctx_of(request).ops
    with audited(request, "env.unpin", env, {}):
        name = ops.resolve_env(env)
        return data_service(request).clear_pin(name, actor=actor_of(request).subject)


@op(router, "GET", "/environments/{env}/mail", "listMail", "Mail captured from an environment",
    errors=_DATA_ERRORS, response_model=Messages)
def mail(request: Request, env: str = EnvName, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    name = ctx_of(request).ops.resolve_env(env)
    result = data_service(request).mail(name, limit=limit)
    return result if isinstance(result, dict) else {"messages": list(result)}
