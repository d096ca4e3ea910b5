"""exec and logs against an environment the real Applier deployed (stand-in Odoo image, real Docker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from reconciler.controller.apply import Applier
from reconciler.controller.planning import compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.core.naming import env_name_for_branch
from tests.api.conftest import ApiServer
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
                    json={"command": ["sh", "-c", "echo on-$HOST; id -un"], "timeout_s": 120})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["exit_code"] == 0 and not out["timed_out"] and "on-" in out["output"] and "odoo" in out["output"]
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
    assert [e["arguments"]["command"] for e in events[-3:]] == [["sh", "-c", "echo on-$HOST; id -un"],
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
