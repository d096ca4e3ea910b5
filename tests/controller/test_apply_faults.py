"""Faults during apply: a clear error with remediation, nothing half-done, and the next apply converges."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.controller.apply import Applier
from reconciler.controller.planning import compute_plan
from reconciler.errors import OdooOpsError
from tests.controller.test_apply import apply, env_resources, project_of


def test_docker_unreachable_then_converges(world: dict[str, Any]) -> None:
    good = world["host"]
    world["host"] = dataclasses.replace(good, docker_host="unix:///nonexistent/docker.sock")
    with pytest.raises(OdooOpsError) as exc:
        apply(world)  # host preparation checks the engine before any environment is touched
    assert exc.value.code == "ANSIBLE_FAILED" and "Docker Engine" in exc.value.message
    assert project_of(world).store.entries() == {}
    world["host"] = good
    _, report2, _ = apply(world)
    assert report2.ok, report2.to_json()
    env = report2.environments[0].env
    resp = httpx.get(f"{good.router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"})
    assert resp.json() == {"status": "pass"}
    Applier(project_of(world), good).runtime.remove(env)


def test_postgres_unreachable_fails_before_any_change(world: dict[str, Any]) -> None:
    world["host"] = dataclasses.replace(world["host"], pg_port=1)
    project = project_of(world)
    outcome = compute_plan(project, branches=[world["branch"]])
    with pytest.raises(OdooOpsError) as exc:
        Applier(project, world["host"]).apply(outcome)
    assert exc.value.code in ("ANSIBLE_FAILED", "POSTGRES_UNREACHABLE", "TERRAFORM_FAILED")
    assert exc.value.remediation
    assert project.store.entries() == {}


def test_kill_9_mid_apply_then_converges(world: dict[str, Any], tmp_path: Path) -> None:
    host = world["host"]
    env_vars = {**os.environ, "ODOOOPS_STATE_DIR": str(world["state"]),
                "ODOOOPS_PG_HOST": host.pg_host, "ODOOOPS_PG_PORT": str(host.pg_port),
                "ODOOOPS_PG_USER": host.pg_admin_user, "ODOOOPS_PG_PASSWORD": host.pg_admin_password,
                "ODOOOPS_PG_HOST_FROM_CONTAINERS": host.pg_host_from_containers, "DOCKER_HOST": host.docker_host,
                "ODOOOPS_CADDY_ADMIN": host.caddy_admin, "ODOOOPS_ROUTER_HTTP": host.router_http,
                "ODOOOPS_IMAGE_OVERRIDES": ",".join(f"{k}={v}" for k, v in host.image_overrides.items()),
                "ODOOOPS_GIT_MIRRORS": ",".join(f"{k}={v}" for k, v in host.git_mirrors.items())}
    cmd = [sys.executable, "-m", "reconciler", "apply", "--repo", str(world["work"]), "--branch", world["branch"],
           "--auto-approve"]
    proc = subprocess.Popen(cmd, env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if " database " in line or not line:
            break
    assert " files " in seen, seen  # killed after infra and files, while the database step runs
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run(cmd, env=env_vars, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    project = project_of(world)
    entry = next(iter(project.store.entries().values()))
    assert entry["state"] == "running", json.dumps(entry.get("error"), indent=1) + again.stderr
    resp = httpx.get(f"{host.router_http}/web/health", headers={"Host": f"{entry['env']}.odooops.localhost"})
    assert resp.json() == {"status": "pass"}
    left = env_resources(world, entry["env"])
    assert len([c for c in left["containers"] if c.status == "running"]) == 1  # no stray one-shot
    Applier(project, host).runtime.remove(entry["env"])
