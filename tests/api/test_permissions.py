"""The permission table, operation by operation: every role on a production and on a development
environment over real HTTP; every route checks through the table; the docs render the same table;
exec into production is off unless the policy enables it, and then read-only."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.api import rest_admin, rest_data, rest_envs, rest_jobs
from reconciler.api.auth import ROLES
from reconciler.api.permissions import OPERATOR_ENDPOINTS, PERMISSIONS, PROJECT, PUBLIC, Permission, roles_for
from reconciler.api.rest_envs import check_production_exec
from reconciler.core.policy import load_policy
from reconciler.core.production_exec import ProductionExec, read_only_container
from reconciler.core.resources import read_text
from reconciler.errors import OdooOpsError
from tests.api.conftest import ROOT, ApiServer, openapi_operations

OPERATIONS = {op["operationId"]: (method, path, op) for method, path, op in openapi_operations()}
MATRIX = [p for p in PERMISSIONS.values() if p.operation not in OPERATOR_ENDPOINTS]


@pytest.fixture()
def envs(api: ApiServer) -> Iterator[dict[str, str]]:
    """A production environment and two development ones (state entries on branches that do not exist:
    an operation that gets past authorization fails there, or validation stops it, before it changes
    anything real)."""
    tag = uuid.uuid4().hex[:8]
    names = {"prod": api.add_env(f"perm-prod-{tag}", branch=f"gone/prod-{tag}", tier="production"),
             "dev": api.add_env(f"perm-dev-{tag}", branch=f"gone/dev-{tag}", tier="development"),
             "dev2": api.add_env(f"perm-dev2-{tag}", branch=f"gone/dev2-{tag}", tier="development")}
    try:
        yield names
    finally:
        for name in names.values():
            api.remove_env(name)
            api.ctx.ops.secret_store().drop(name)


def _request(perm: Permission, env: str, other: str) -> tuple[str, str, dict[str, Any]]:
    """The request of an operation whose production-relevant environment is env. A body gets one field
    its model forbids: authorization (which reads the environment names) passes or refuses first, then
    validation answers 400 before the handler could act."""
    method, path, op = OPERATIONS[perm.operation]
    url = (path.replace("{env}", env).replace("{name}", "perm_test_secret").replace("{backup_id}", "b1")
           .replace("{job_id}", "0" * 16).replace("{token_id}", "0" * 32))
    kw: dict[str, Any] = {}
    if "requestBody" in op:
        body: dict[str, Any] = {"unexpected_field": 1}
        if perm.operation == "cloneEnvironment":
            body.update(source=env, target=other)  # cloning *from* production
        elif perm.operation == "promote":
            body.update(source=other, target=env)  # promoting *into* production
        kw["json"] = body
    return method, url, kw


def _expected(perm: Permission, role: str, production: bool) -> str:
    scopes = ROLES[role]
    if "admin" not in scopes and perm.scope not in scopes:
        return "SCOPE_REQUIRED"
    if role not in roles_for(perm, production):
        return "PRODUCTION_ROLE_REQUIRED"
    return "allowed"


@pytest.mark.parametrize("perm", MATRIX, ids=[p.operation for p in MATRIX])
def test_every_operation_with_every_role_on_production_and_development(api: ApiServer, envs: dict[str, str],
                                                                       perm: Permission) -> None:
    for production in (True, False):
        env = envs["prod"] if production else envs["dev"]
        method, url, kw = _request(perm, env, envs["dev2"])
        for role in ROLES:
            r = api.request(method, url, token=api.token(role=role, subject=f"{role}@example.com"), **kw)
            expected = _expected(perm, role, production)
            where = (perm.operation, role, "production" if production else "development", r.status_code, r.text)
            if expected == "allowed":
                assert r.status_code not in (401, 403), where
                continue
            assert r.status_code == 403 and r.json()["error"] == expected, where
            body = r.json()
            assert body["remediation"] and body["docs"].endswith(expected), where
            assert body["operation"] == perm.operation and role not in body["roles"], where
            if expected == "PRODUCTION_ROLE_REQUIRED":
                assert (perm.operation in body["message"] and "tier production" in body["message"]) or \
                    PROJECT in perm.touches, where
                assert body["operation"] == perm.operation and body["tier"] == "production", where
                assert body["required_scopes"] == [perm.scope, perm.production], where
                assert role not in body["roles"] and "admin" in body["roles"], where


def test_developer_token_cannot_take_over_production(api: ApiServer, envs: dict[str, str]) -> None:
    """The probe's findings: exec (odoo.conf), rollback, scale, redeploy, logs, credentials of production,
    cloning from it and restoring into it were all open to a developer token."""
    prod, dev, dev2 = envs["prod"], envs["dev"], envs["dev2"]
    developer = api.token(role="developer", subject="dev@example.com")
    refused = [
        ("POST", f"/api/v1/environments/{prod}/exec", {"command": ["cat", "/etc/odoo/odoo.conf"]}),
        ("POST", f"/api/v1/environments/{prod}/rollback", {"confirm": True}),
        ("POST", f"/api/v1/environments/{prod}/scale", {"workers": 1}),
        ("POST", f"/api/v1/environments/{prod}/redeploy", None),
        ("GET", f"/api/v1/environments/{prod}/logs", None),
        ("GET", f"/api/v1/environments/{prod}/credentials", None),
        ("POST", "/api/v1/clones", {"source": prod, "target": dev}),
        ("POST", f"/api/v1/environments/{dev}/restore", {"backup": "b1", "to": prod, "confirm": True}),
        ("POST", f"/api/v1/environments/{prod}/restore", {"backup": "b1", "to": dev, "confirm": True}),
        ("POST", "/api/v1/promotions", {"source": dev, "target": prod, "confirm": True}),
        ("DELETE", f"/api/v1/environments/{prod}?confirm=true", None),
    ]
    for method, path, body in refused:
        r = api.request(method, path, token=developer, **({"json": body} if body else {}))
        assert r.status_code == 403 and r.json()["error"] == "PRODUCTION_ROLE_REQUIRED", (method, path, r.text)
        roles = r.json()["roles"]
        assert r.json()["env"] == prod and roles[-1] in r.json()["remediation"]
        assert roles == (["admin"] if method == "DELETE" else ["admin", "operator"])
    # The same token on a development environment gets past authorization: the handlers answer.
    r = api.request("POST", f"/api/v1/environments/{dev}/exec", token=developer, json={"command": ["id"]})
    assert r.status_code == 409 and r.json()["error"] == "ENV_NOT_DEPLOYED", r.text
    r = api.request("POST", f"/api/v1/environments/{dev}/redeploy", token=developer)
    assert r.status_code == 202 and r.json() == {"status": "queued", "env": dev}
    for method, path, body in [("POST", f"/api/v1/environments/{dev}/rollback", {"confirm": True}),
                               ("POST", f"/api/v1/environments/{dev}/scale", {"workers": 1}),
                               ("POST", "/api/v1/clones", {"source": dev2, "target": dev}),
                               # promoting production's commit onward moves code, not data: allowed
                               ("POST", "/api/v1/promotions", {"source": prod, "target": dev}),
                               ("GET", f"/api/v1/environments/{dev}/credentials", None)]:
        r = api.request(method, path, token=developer, **({"json": body} if body else {}))
        assert r.status_code not in (401, 403), (method, path, r.text)
    # Every refusal is in the audit trail, under the environment the request named.
    events = [e for e in api.ctx.audit.entries(1000) if e["target"] == prod and e["actor"] == "dev@example.com"]
    assert {e["action"] for e in events} >= {"env.exec", "env.rollback", "env.scale", "env.redeploy",
                                             "env.credentials", "db.clone", "db.restore", "promote", "env.destroy"}
    assert all(e["result"] == "refused:PRODUCTION_ROLE_REQUIRED" for e in events)


def test_operator_reaches_production_and_exec_is_off_by_policy(api: ApiServer, envs: dict[str, str]) -> None:
    prod = envs["prod"]
    for role in ("operator", "admin"):
        r = api.request("POST", f"/api/v1/environments/{prod}/exec", role=role, json={"command": ["id"]})
        assert r.status_code == 403 and r.json()["error"] == "PRODUCTION_EXEC_DISABLED", r.text
        assert "production_exec" in r.json()["remediation"]
        r = api.request("POST", f"/api/v1/environments/{prod}/redeploy", role=role)
        assert r.status_code == 202, r.text
    r = api.request("DELETE", f"/api/v1/environments/{prod}?confirm=true", role="operator")
    assert r.status_code == 403 and r.json()["roles"] == ["admin"]  # destroying production stays the admin's


def test_production_exec_policy() -> None:
    default = load_policy(read_text("policies", "default.yaml"))
    assert default.production_exec == ProductionExec(enabled=False, max_seconds=60.0)
    text = read_text("policies", "default.yaml") + "\nproduction_exec: {enabled: true, max_seconds: 30}\n"
    rules = load_policy(text).production_exec
    assert rules == ProductionExec(enabled=True, max_seconds=30.0)
    with pytest.raises(OdooOpsError) as err:
        load_policy(read_text("policies", "default.yaml") + "\nproduction_exec: {enabled: yes-please}\n")
    assert err.value.code == "POLICY_INVALID" and "production_exec" in err.value.message
    with pytest.raises(OdooOpsError) as err:
        check_production_exec(default.production_exec, "prod", 10)
    assert err.value.code == "PRODUCTION_EXEC_DISABLED"
    check_production_exec(rules, "prod", 30)
    with pytest.raises(OdooOpsError) as err:
        check_production_exec(rules, "prod", 31)
    assert err.value.code == "EXEC_TIMEOUT_TOO_LONG"


def test_read_only_container_drops_secrets_and_write_access() -> None:
    container = {"name": "x", "image": "odoo:19.0", "environment": {"HOST": "db", "USER": "prod",
                                                                    "PASSWORD_FILE": "/run/p", "SMTP_TOKEN": "t"},
                 "mounts": [{"source": "/a", "target": "/mnt/extra-addons", "read_only": True},
                            {"source": "/f", "target": "/var/lib/odoo", "read_only": False},
                            {"source": "/c/odoo.conf", "target": "/etc/odoo/odoo.conf", "read_only": True},
                            {"source": "/c", "target": "/etc/odoo/", "read_only": True}]}
    out = read_only_container(container)
    assert out["environment"] == {"HOST": "db", "USER": "prod"}
    assert out["mounts"] == [{"source": "/a", "target": "/mnt/extra-addons", "read_only": True},
                             {"source": "/f", "target": "/var/lib/odoo", "read_only": True}]
    assert container["mounts"][1]["read_only"] is False  # a copy: the deployed spec is not touched


def test_every_route_checks_through_the_table() -> None:
    """No route without the table's dependency; no table entry without its route; the OpenAPI document
    carries the same scopes."""
    seen = set()
    for module in (rest_envs, rest_data, rest_admin, rest_jobs):
        for route in module.router.routes:
            checks = [d.call for d in route.dependant.dependencies  # type: ignore[attr-defined]
                      if getattr(d.call, "permission", None) is not None]
            assert len(checks) == 1, f"{route.path} has no permission check"  # type: ignore[attr-defined]
            assert checks[0].permission.operation == route.operation_id  # type: ignore[attr-defined]
            seen.add(route.operation_id)  # type: ignore[attr-defined]
    assert seen | set(OPERATOR_ENDPOINTS) == set(PERMISSIONS)
    assert set(OPERATIONS) == seen | set(PUBLIC)
    for name, (_method, _path, op) in OPERATIONS.items():
        if name in PUBLIC:
            continue
        perm = PERMISSIONS[name]
        assert op["x-required-scopes"] == [perm.scope], name
        assert op.get("x-production-scopes") == ([perm.scope, perm.production] if perm.production else None), name


def test_docs_render_the_table() -> None:
    ok = subprocess.run([sys.executable, "scripts/role_table.py", "--check"], cwd=ROOT, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    text = (ROOT / "docs" / "api.md").read_text()
    assert "| `execInEnvironment` | `POST /api/v1/environments/{env}/exec` | `shell` | `production` |" in text


def test_stale_docs_fail_the_check(tmp_path: Any) -> None:
    stale = tmp_path / "api.md"
    stale.write_text((ROOT / "docs" / "api.md").read_text().replace("| `shell` | `production` |",
                                                                    "| `shell` | — |"))
    bad = subprocess.run([sys.executable, "scripts/role_table.py", "--check", "--output", str(stale)], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "out of date" in bad.stderr and "+| `execInEnvironment`" in bad.stdout
