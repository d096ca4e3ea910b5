"""exec and logs against an environment the real Applier deployed (stand-in Odoo image, real Docker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.api.app import create_app
from reconciler.api.rest import ApiContext
from reconciler.api.token_registry import TokenRegistry
from reconciler.controller.apply import Applier
from reconciler.controller.daemon import Daemon, DaemonConfig
from reconciler.controller.planning import compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.core.naming import env_name_for_branch
from reconciler.core.resources import read_text
from reconciler.service.operations import Operations
from tests.api.conftest import ApiServer, serve_app
from tests.daemon.gitserve import git


@pytest.fixture(scope="module")
def deployed(api: ApiServer) -> Iterator[str]:
    branch = f"feature/exec-{uuid.uuid4().hex[:8]}"
    git(api.bare, "branch", branch, "main")
    project = api.daemon.project()
    project.source.refresh()
    env = env_name_for_branch(branch)
    applier = Applier(project, api.ctx.ops.host)  # type: ignore[arg-type]
    report = applier.apply(compute_plan(project, branches=[branch], refresh=False))
    assert report.ok, [e.to_json() for e in report.environments]
    try:
        yield env
    finally:
        entry = project.store.entries().get(env, {})
        applier._destroy(Action(env=env, action=ActionKind.DESTROY, branch=branch, tier=entry.get("tier"),
                                reason="test cleanup", old_commit=entry.get("commit")))


def test_exec_runs_a_one_off_container(api: ApiServer, deployed: str) -> None:
    r = api.request("POST", f"/api/v1/environments/{deployed}/exec", role="developer",
                    json={"command": ["sh", "-c", "echo on-$HOST; id -u"], "timeout_s": 120})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["exit_code"] == 0 and not out["timed_out"] and "on-" in out["output"], out
    uid = out["output"].split()[-1]
    assert uid.isdigit() and uid != "0"  # the environment's own user (a numeric one no host user has), never root
    piped = api.request("POST", f"/api/v1/environments/{deployed}/exec", role="developer",
                        json={"command": ["wc", "-c"], "stdin": "twelve bytes", "timeout_s": 120})
    assert piped.json()["exit_code"] == 0 and piped.json()["output"].strip() == "12"
    slow = api.request("POST", f"/api/v1/environments/{deployed}/exec", role="developer",
                       json={"command": ["sleep", "60"], "timeout_s": 1})
    assert slow.json()["timed_out"] is True and slow.json()["exit_code"] is None
    too_long = api.request("POST", f"/api/v1/environments/{deployed}/exec", role="developer",
                           json={"command": ["true"], "timeout_s": 601})
    assert too_long.status_code == 400
    events = [e for e in api.ctx.audit.entries() if e["action"] == "env.exec" and e["target"] == deployed]
    assert [e["arguments"]["command"] for e in events[-3:]] == [["sh", "-c", "echo on-$HOST; id -u"],
                                                                ["wc", "-c"], ["sleep", "60"]]
    assert "twelve bytes" not in api.ctx.audit.path.read_text()
    assert events[-1]["result"]["timed_out"] is True


def test_logs_tail_and_follow(api: ApiServer, deployed: str) -> None:
    tail = api.request("GET", f"/api/v1/environments/{deployed}/logs?tail=20", role="tester")
    assert tail.status_code == 200 and tail.headers["content-type"].startswith("text/plain") and tail.text
    headers = api.auth(role="tester")
    with httpx.stream("GET", f"{api.url}/api/v1/environments/{deployed}/logs",
                      params={"follow": "true", "tail": "5", "max_seconds": "1"}, headers=headers, timeout=60) as r:
        assert r.status_code == 200
        body = b"".join(r.iter_bytes())
    assert body  # the tail, then the stream ends after max_seconds (at the next line or on its own)
    none = api.request("GET", f"/api/v1/environments/{deployed}/logs?role=cron", role="tester")
    assert none.status_code == 404 and none.json()["error"] == "CONTAINER_NOT_FOUND"


def test_read_only_exec_sees_no_secrets_and_changes_nothing(api: ApiServer, deployed: str) -> None:
    """What exec into production runs when the policy enables it (Operations.exec(read_only=True))."""
    store = api.ctx.ops.secret_store()
    secrets = [v for v in (store.get(deployed, "db_password"), store.get(deployed, "admin_passwd")) if v]
    assert secrets
    script = ("cat /etc/odoo/odoo.conf; env; touch /var/lib/odoo/probe-ro && echo WROTE-FILESTORE; "
              "ls /mnt/extra-addons >/dev/null && echo CODE-VISIBLE")
    normal = api.ctx.ops.exec(deployed, ["sh", "-c", script], None, 120)
    assert any(s in normal["output"] for s in secrets)  # the environment's own exec: what the probe read
    assert "WROTE-FILESTORE" in normal["output"]
    ro = api.ctx.ops.exec(deployed, ["sh", "-c", script], None, 120, read_only=True)
    assert ro["exit_code"] is not None and "CODE-VISIBLE" in ro["output"], ro
    assert not any(s in ro["output"] for s in secrets), "a secret reached the read-only exec"
    assert "WROTE-FILESTORE" not in ro["output"] and "Read-only file system" in ro["output"], ro["output"]


def _set_tier(api: ApiServer, env: str, tier: str) -> None:
    with api.daemon.project().store._lock:  # type: ignore[attr-defined]
        data = api.store._read()
        data["environments"][env]["tier"] = tier
        api.store._write(data)


def test_exec_into_production_when_the_policy_enables_it(api: ApiServer, deployed: str, tmp_path: Path) -> None:
    """A server whose policy has production_exec enabled, over the same state: the deployed environment
    made production for the length of the test."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(read_text("policies", "default.yaml") + "\nproduction_exec: {enabled: true, max_seconds: 90}\n")
    host = api.ctx.ops.host
    daemon = Daemon(DaemonConfig(repo=api.daemon.config.repo, state_dir=api.state, poll_interval=3600,
                                 policy_file=policy), host)
    registry = TokenRegistry(tmp_path / "tokens.sqlite3")
    ctx = ApiContext(keys=api.keys, ops=Operations(daemon, host), audit=api.ctx.audit, registry=registry,
                     auth_failures=None)
    store = api.ctx.ops.secret_store()
    secrets = [v for v in (store.get(deployed, "db_password"), store.get(deployed, "admin_passwd")) if v]
    tier = api.store.entries()[deployed]["tier"]
    _set_tier(api, deployed, "production")
    try:
        with serve_app(create_app(daemon, None, api=ctx)) as url:
            def run(role: str, **body: object) -> httpx.Response:
                return httpx.post(f"{url}/api/v1/environments/{deployed}/exec", timeout=300, json=body,
                                  headers={"Authorization": f"Bearer {api.token(role=role, subject=role)}"})

            refused = run("developer", command=["id"])
            assert refused.status_code == 403 and refused.json()["error"] == "PRODUCTION_ROLE_REQUIRED"
            too_long = run("operator", command=["id"], timeout_s=120)
            assert too_long.status_code == 400 and too_long.json()["error"] == "EXEC_TIMEOUT_TOO_LONG"
            r = run("operator", command=["sh", "-c", "cat /etc/odoo/odoo.conf; env; touch /var/lib/odoo/x"],
                    timeout_s=60)
            assert r.status_code == 200, r.text
            assert not any(s in r.text for s in secrets) and "Read-only file system" in r.json()["output"]
        event = [e for e in api.ctx.audit.entries(50) if e["action"] == "env.exec" and e["target"] == deployed][-1]
        assert event["actor"] == "operator" and event["arguments"]["read_only"] is True
        assert event["result"]["status"] == "ok"
    finally:
        _set_tier(api, deployed, tier)
        registry.close()
