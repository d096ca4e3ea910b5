"""The one permission table: the scope each API operation needs on every tier, and what production adds.

Every route is declared with its operation id (reconciler/api/rest.py: `op`), which looks its scope up
here; the same dependency then checks the production column against the environments the request
names. docs/api.md renders this table (`scripts/role_table.py`), and tests/api/test_permissions.py
calls every operation with every role on a production and on a development environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.api.auth import ROLES, Principal
from reconciler.api.errors import ApiError

PRODUCTION = "production"  # the scope production's privileged operations need besides their own

# Where an operation's environments come from: the {env} path parameter, fields of the JSON body,
# or the project itself (project-level secrets reach production too).
ENV, PROJECT = "path:env", "project"
BODY_SOURCE, BODY_TARGET, BODY_TO = "body:source", "body:target", "body:to"


@dataclass(frozen=True)
class Permission:
    operation: str  # the OpenAPI operationId
    scope: str  # needed on every tier
    production: str | None = None  # needed besides when the operation touches production (None: nothing more)
    touches: tuple[str, ...] = (ENV,)
    why: str = ""  # why production needs more (the docs table shows it)

    @property
    def guarded(self) -> bool:
        """Privileged on production: also limited to --allow-ip networks and audited when refused."""
        return self.production is not None


def _p(operation: str, scope: str, production: str | None = None, touches: tuple[str, ...] = (ENV,),
       why: str = "") -> tuple[str, Permission]:
    return operation, Permission(operation, scope, production, touches, why)


_NONE: tuple[str, ...] = ()
PERMISSIONS: dict[str, Permission] = dict([
    _p("listEnvironments", "env:read", touches=_NONE),
    _p("getEnvironment", "env:read"),
    _p("listDeployments", "env:read"),
    _p("getPlan", "env:read", touches=_NONE),
    _p("getStatus", "env:read", touches=_NONE),
    _p("redeployEnvironment", "env:write", PRODUCTION, why="restarts production"),
    _p("scaleEnvironment", "env:write", PRODUCTION, why="commits to the production branch"),
    _p("destroyEnvironment", "env:write", "admin", why="deletes production (also needs confirm and a fresh backup)"),
    _p("rollbackEnvironment", "env:write", PRODUCTION, why="replaces production's code and data"),
    _p("clearRollbackPin", "env:write", PRODUCTION, why="changes the commit production runs"),
    _p("getLogs", "logs:read", PRODUCTION, why="production's logs carry customer data and may carry secrets"),
    _p("execInEnvironment", "shell", PRODUCTION,
       why="a shell next to production's data; also off unless the policy enables it (production_exec)"),
    _p("getEnvironmentCredentials", "credentials:read", PRODUCTION, why="production's Odoo admin password"),
    _p("listBackups", "db:read"),
    _p("createBackup", "db:backup"),
    _p("verifyBackup", "db:backup"),
    _p("pruneBackups", "db:backup", PRODUCTION, why="deletes production's backups"),
    _p("restoreBackup", "db:restore", PRODUCTION, (ENV, BODY_TO),
       why="overwrites production, or copies production's data elsewhere"),
    _p("cloneEnvironment", "db:clone", PRODUCTION, (BODY_SOURCE, BODY_TARGET),
       why="copies production's data out (or overwrites production)"),
    _p("promote", "promote", PRODUCTION, (BODY_TARGET,), why="deploys to production"),
    _p("listMail", "mail:read"),
    _p("listEnvSecrets", "secrets:read"),
    _p("setEnvSecret", "secrets:write", PRODUCTION, why="changes production's secrets"),
    _p("rotateEnvSecrets", "secrets:write", PRODUCTION, why="changes production's credentials"),
    _p("listProjectSecrets", "secrets:read", touches=_NONE),
    _p("setProjectSecret", "secrets:write", PRODUCTION, (PROJECT,),
       why="project secrets (backup store, mail relay) serve production too"),
    _p("listAuditEvents", "audit:read", touches=_NONE),
    _p("verifyAudit", "audit:read", touches=_NONE),
    _p("createToken", "tokens:write", touches=_NONE),
    _p("listTokens", "tokens:write", touches=_NONE),
    _p("revokeToken", "tokens:write", touches=_NONE),
    _p("listJobs", "env:read", touches=_NONE),
    _p("getJob", "env:read", touches=_NONE),
    # Outside /api/v1 (app.py): open on loopback, a token from anywhere else.
    _p("operatorMetrics", "env:read", touches=_NONE),
    _p("operatorStatus", "env:read", touches=_NONE),
])
PUBLIC = ("healthz", "readyz", "receiveWebhook")  # no token: liveness, readiness, signed webhooks
OPERATOR_ENDPOINTS = {"operatorMetrics": "GET /metrics", "operatorStatus": "GET /status"}  # not in the OpenAPI


def permission(operation: str) -> Permission:
    try:
        return PERMISSIONS[operation]
    except KeyError:
        raise KeyError(f"operation {operation!r} is not in reconciler/api/permissions.py: add it to "
                       "PERMISSIONS (every route must be)") from None


def roles_for(perm: Permission, production: bool) -> list[str]:
    """The roles whose tokens may run the operation on production (or on the other tiers)."""
    production = production or PROJECT in perm.touches  # project-wide: production's rules on every tier
    needed = [perm.scope, *([perm.production] if production and perm.production else [])]
    return [role for role, scopes in ROLES.items() if "admin" in scopes or all(s in scopes for s in needed)]


def named_envs(perm: Permission, path_params: Mapping[str, Any], body: Any) -> list[str]:
    """The environment names the request names where this operation looks for production."""
    out: list[str] = []
    for where in perm.touches:
        value: Any = None
        if where == ENV:
            value = path_params.get("env")
        elif where.startswith("body:") and isinstance(body, dict):
            value = body.get(where.removeprefix("body:"))
        if isinstance(value, str) and value:
            out.append(value)
    return out


def production_in(perm: Permission, names: list[str], tier_of: Callable[[str], tuple[str, str | None] | None]
                  ) -> str | None:
    """The first name among names (as the request gave it) that is a production environment (tier_of:
    name -> (resolved name, tier), None when unknown: the handler answers that one), or "project" for
    project-wide operations."""
    if perm.production is None:
        return None
    if PROJECT in perm.touches:
        return PROJECT
    for name in names:
        found = tier_of(name)
        if found is not None and (found[1] == "production" or found[0] == "production"):
            return name
    return None


def refusal(perm: Permission, who: Principal, env: str) -> ApiError:
    """403 naming the operation, the tier, the scope it needs and the roles that have it."""
    needed = perm.production or PRODUCTION
    roles = roles_for(perm, True)
    where = "the project (it serves production)" if env == PROJECT else f"{env} (tier production)"
    return ApiError(
        "PRODUCTION_ROLE_REQUIRED",
        f"{perm.operation} on {where} needs the scope {needed!r} besides {perm.scope!r} ({perm.why}); "
        f"the token of {who.subject} has {' '.join(sorted(who.scopes))}",
        f"use a token of the role {' or '.join(roles)}: ask an admin for `odooops token create --role "
        f"{'operator' if 'operator' in roles else 'admin'} --subject {who.subject}`; on environments of "
        "other tiers this token is enough (docs/api.md#roles)",
        {"operation": perm.operation, "tier": "production", "env": None if env == PROJECT else env,
         "required_scopes": [perm.scope, needed], "roles": roles},
        status=403)
