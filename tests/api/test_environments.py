"""Environment routes against the live server: list/show, scale and destroy as Git changes, hostile names."""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import uuid
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from ruamel.yaml import YAML

from reconciler.api.errors import RequestIdMiddleware
from reconciler.core.naming import env_name_for_branch
from tests.api.conftest import ApiServer
from tests.daemon.gitserve import free_port, git, wait_for


def test_list_show_and_tier_names(api: ApiServer) -> None:
    a = api.add_env(tier="staging")
    b = api.add_env(tier="staging")
    p = api.add_env(tier="preview")
    try:
        listed = api.request("GET", "/api/v1/environments", role="tester").json()["environments"]
        mine = {e["name"]: e for e in listed if e["name"] in (a, b, p)}
        assert set(mine) == {a, b, p}
        assert mine[a]["tier"] == "staging" and mine[a]["workers"] == 2 and mine[a]["cron_workers"] == 1
        assert set(mine[a]) == {"name", "branch", "tier", "commit", "state", "url", "workers", "cron_workers",
                                "updated_at"}
        shown = api.request("GET", f"/api/v1/environments/{a}", role="tester").json()
        assert shown["name"] == a and "steps" in shown and "container_spec" not in shown
        assert api.request("GET", "/api/v1/environments/preview", role="tester").json()["name"] == p
        ambiguous = api.request("GET", "/api/v1/environments/staging", role="tester")
        assert ambiguous.status_code == 409 and ambiguous.json()["error"] == "ENV_AMBIGUOUS"
        missing = api.request("GET", "/api/v1/environments/nope-nope", role="tester")
        assert missing.status_code == 404 and missing.json()["remediation"].startswith("odooops env list")
        deployments = api.request("GET", f"/api/v1/environments/{a}/deployments", role="tester")
        assert deployments.status_code == 200 and deployments.json() == {"deployments": []}
    finally:
        for env in (a, b, p):
            api.remove_env(env)


def _new_branch(api: ApiServer, start: str = "develop") -> tuple[str, str]:
    branch = f"feature/api-{uuid.uuid4().hex[:8]}"
    git(api.bare, "branch", branch, start)
    api.daemon.project().source.refresh()
    return branch, env_name_for_branch(branch)


def test_scale_commits_to_the_branch_as_the_token_subject(api: ApiServer) -> None:
    branch, env = _new_branch(api)
    api.add_env(env, branch=branch)
    try:
        before = api.branch_in_remote(branch)
        r = api.request("POST", f"/api/v1/environments/{env}/scale", json={"workers": 1, "cron_workers": 0},
                        token=api.token(role="developer", subject="alice@example.com"))
        assert r.status_code == 202, r.text
        commit = r.json()["commit"]
        assert r.json()["status"] == "committed" and api.branch_in_remote(branch) == commit
        assert git(api.bare, "rev-parse", f"{commit}^") == before  # a fast-forward, nothing lost
        assert git(api.bare, "log", "-1", "--format=%an <%ae>", commit) == "alice@example.com <alice@example.com>"
        text = git(api.bare, "show", f"{commit}:.odooops.yaml")
        assert text.startswith("# yaml-language-server: $schema=")  # comments survive the edit
        doc = YAML(typ="safe").load(text)
        assert doc["environments"][env] == {"workers": 1, "cron_workers": 0}
        assert doc["environments"]["production"]["workers"] == 12 and doc["environments"]["develop"]["workers"] == 3
        # the plan of that branch now has the new worker count
        api.daemon.project().source.refresh()
        plan = api.request("GET", f"/api/v1/plan?branch={branch}", role="tester").json()
        spec = next(e for e in plan["environments"] if e["name"] == env)
        assert spec["workers"] == 1 and spec["settings"]["cron_workers"] == 0  # within the ephemeral limits
        # someone pushed meanwhile (the mirror has not seen it): refused, not forced
        git(api.bare, "branch", "-f", branch, "main")
        moved = api.request("POST", f"/api/v1/environments/{env}/scale", json={"workers": 1}, role="developer")
        assert moved.status_code == 409 and moved.json()["error"] == "BRANCH_CONFLICT"
        assert api.branch_in_remote(branch) == git(api.bare, "rev-parse", "main")
        bad = api.request("POST", f"/api/v1/environments/{env}/scale", json={"workers": -1}, role="developer")
        assert bad.status_code == 400 and bad.json()["error"] == "BAD_REQUEST"
    finally:
        api.remove_env(env)


def test_destroy_deletes_the_branch_and_guards_production(api: ApiServer) -> None:
    branch, env = _new_branch(api)
    api.add_env(env, branch=branch)
    pr = api.add_env(branch="pull/7", tier="preview")
    prod = api.add_env(branch="main", tier="production")
    try:
        r = api.request("DELETE", f"/api/v1/environments/{env}", role="developer")
        assert r.status_code == 202 and r.json() == {"status": "branch_deleted", "env": env, "branch": branch}
        assert api.branch_in_remote(branch) is None
        refused = api.request("DELETE", f"/api/v1/environments/{pr}", role="developer")
        assert refused.status_code == 409 and "close the pull/merge request" in refused.json()["remediation"]
        r = api.request("DELETE", f"/api/v1/environments/{prod}", role="admin")
        assert r.status_code == 409 and r.json()["error"] == "DESTROY_NEEDS_CONFIRMATION", r.text
        for role in ("developer", "operator"):  # destroying production is the admin's alone
            r = api.request("DELETE", f"/api/v1/environments/{prod}?confirm=true", role=role)
            assert r.status_code == 403 and r.json()["error"] == "PRODUCTION_ROLE_REQUIRED", (role, r.text)
        r = api.request("DELETE", f"/api/v1/environments/{prod}?confirm=true", role="admin")
        assert r.status_code == 409 and r.json()["error"] == "BACKUP_REQUIRED", r.text  # no verified backup today
        assert api.branch_in_remote("main") is not None
        saved = api.ctx.allow_nets
        api.ctx.allow_nets = (ipaddress.ip_network("10.0.0.0/8"),)
        try:
            r = api.request("DELETE", f"/api/v1/environments/{prod}?confirm=true", role="admin")
            assert r.status_code == 403 and r.json()["error"] == "IP_NOT_ALLOWED"
            # non-production environments are not restricted by --allow-ip
            assert api.request("POST", f"/api/v1/environments/{pr}/redeploy", role="developer").status_code == 202
        finally:
            api.ctx.allow_nets = saved
    finally:
        for e in (env, pr, prod):
            api.remove_env(e)


HOSTILE = ["..%2Fetc", "%2e%2e", "%2e%2e%2fsecrets", "a;rm -rf", "a%3Brm%20-rf%20%2F", "x" * 300, "caf%C3%A9",
           "%E2%80%AEevil", "Production", "-lead", "a_b", "%00", "%0a"]


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        # the audit trail and the token registry record every request's token, whatever it asked
        if path.is_file() and not rel.startswith(("audit/", "tokens/", "mirrors/", "cache/")):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_and_touch_nothing(api: ApiServer, name: str) -> None:
    before = _snapshot(api.state)
    calls = [("GET", f"/api/v1/environments/{name}", None), ("DELETE", f"/api/v1/environments/{name}", None),
             ("POST", f"/api/v1/environments/{name}/scale", {"workers": 1}),
             ("POST", f"/api/v1/environments/{name}/exec", {"command": ["id"]}),
             ("PUT", f"/api/v1/environments/{name}/secrets/x", {"value": "v"}),
             ("PUT", f"/api/v1/secrets/{name}", {"value": "v"}),
             ("GET", f"/api/v1/environments/{name}/logs", None),
             ("POST", f"/api/v1/environments/{name}/backups/{name}/verify", None)]
    if name == "a_b":
        calls = [c for c in calls if not c[1].startswith("/api/v1/secrets/")]  # a valid secret name
    for method, path, body in calls:
        r = api.request(method, path, role="admin", json=body) if body else api.request(method, path, role="admin")
        # 405: an encoded "/" can land on another route (DELETE .../../secrets), which has no such method
        assert r.status_code in (400, 404, 405), (method, path, r.status_code, r.text)
        doc = r.json()
        assert doc["error"] and doc["remediation"] and doc["request_id"] == r.headers["x-request-id"]
    assert _snapshot(api.state) == before


def test_request_ids_and_json_errors(api: ApiServer) -> None:
    r = api.request("GET", "/api/v1/nothing-here", headers={"X-Request-ID": "trace-42.a"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "trace-42.a"
    assert r.json()["request_id"] == "trace-42.a" and r.json()["error"] == "NOT_FOUND"
    r = api.request("GET", "/api/v1/environments", headers={"X-Request-ID": "x" * 500})
    assert r.status_code == 200 and len(r.headers["x-request-id"]) == 32  # replaced, not echoed
    r = api.request("POST", "/api/v1/clones", json={"source": 1})
    assert r.status_code == 400 and r.json()["error"] == "BAD_REQUEST"


def test_unhandled_errors_are_500_json_without_traceback(api: ApiServer) -> None:
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail 7f3a")

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="critical",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20, "uvicorn")
    try:
        import httpx

        r = httpx.get(f"http://127.0.0.1:{server.config.port}/boom", headers={"X-Request-ID": "req-boom"})
    finally:
        server.should_exit = True
        thread.join(10)
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "INTERNAL" and body["request_id"] == "req-boom" and "req-boom" in body["remediation"]
    assert "7f3a" not in r.text and "Traceback" not in r.text
    log = api.log_file.read_text()
    assert "req-boom" in log and "internal detail 7f3a" in log and "Traceback" in log
