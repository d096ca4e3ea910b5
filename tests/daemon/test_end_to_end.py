"""The daemon over the real apply path: git daemon remote, Docker, PostgreSQL, Terraform, Caddy.

Each real apply costs seconds, so each test walks one environment through a whole life.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from reconciler.controller.daemon import Daemon
from reconciler.controller.host import HostSettings
from reconciler.controller.state_store import StateStore
from reconciler.core.model import Action, ActionKind
from reconciler.core.naming import env_name_for_branch
from tests.daemon.conftest import DaemonFactory, destroy_leftovers, push_branch, serve_api, unique_branch
from tests.daemon.gitserve import git, github_pr, sign_github, wait_for

APPLY_DEADLINE = 240.0  # a create is ~10-20 s on these machines; two workers share two cores


def state_of(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return StateStore(daemon.dir / "state.json").entries()


def running(daemon: Daemon, env: str, commit: str) -> bool:
    e = state_of(daemon).get(env) or {}
    if e.get("state") == "failed":
        raise AssertionError(f"{env} failed: {json.dumps(e.get('error'), indent=1)}")
    return e.get("state") == "running" and e.get("commit") == commit


def healthy(host: HostSettings, env: str) -> bool:
    resp = httpx.get(f"{host.router_http}/web/health", headers={"Host": f"{env}.{host.base_domain}"})
    return resp.status_code == 200 and resp.json() == {"status": "pass"}


def leftovers(host: HostSettings, env: str) -> dict[str, Any]:
    """Every kind of resource an environment can own, read from the real systems; empty = gone."""
    import docker

    client = docker.DockerClient(base_url=host.docker_host)
    flt = {"label": f"odooops.env={env}"}
    with psycopg.connect(host=host.pg_host, port=host.pg_port, user=host.pg_admin_user,
                         password=host.pg_admin_password, dbname="postgres") as conn:
        dbs = conn.execute("SELECT datname FROM pg_database WHERE datname = %s", (env,)).fetchall()
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = %s", (env,)).fetchall()
    routes = httpx.get(f"{host.caddy_admin}/config/apps/http/servers/{host.caddy_server}/routes").json() or []
    found = {
        "containers": [c.name for c in client.containers.list(all=True, filters=flt)],
        "networks": [n.name for n in client.networks.list(filters=flt)],
        "volumes": [v.name for v in client.volumes.list(filters=flt)],
        "databases": dbs, "roles": roles, "routes": [r for r in routes if r.get("@id") == f"odooops-{env}"],
        "filestore": (host.filestore_root / env).exists(),
        "terraform": (host.state_dir / "terraform" / env).exists(),
    }
    return {k: v for k, v in found.items() if v}


def remote_note(bare: Path, commit: str) -> dict[str, Any]:
    return json.loads(git(bare, "notes", "--ref", "odooops", "show", commit) or "{}")


@pytest.fixture
def cleanup() -> Iterator[list[Daemon]]:
    daemons: list[Daemon] = []
    yield daemons
    for d in daemons:
        d.stop(120)
        destroy_leftovers(d)


def test_push_deploys_by_polling_alone_and_branch_delete_leaves_nothing(
        remote: dict[str, Any], host: HostSettings, make_daemon: DaemonFactory, cleanup: list[Daemon]) -> None:
    daemon = make_daemon(remote["url"], host, poll_interval=0.2, sweep_interval=3600)
    cleanup.append(daemon)
    wait_for(daemon.is_ready, 30, "first poll")
    branch = unique_branch()
    env = env_name_for_branch(branch)
    commit = push_branch(remote["work"], branch)
    wait_for(lambda: running(daemon, env, commit), APPLY_DEADLINE, f"{env} running")
    assert healthy(host, env)
    assert remote_note(remote["bare"], commit)["environments"][env]["state"] == "running"
    assert daemon.metrics.polls.labels(trigger="hint", result="changed")._value.get() == 0

    git(remote["work"], "push", "-q", "origin", f":refs/heads/{branch}")
    wait_for(lambda: env not in state_of(daemon), APPLY_DEADLINE, f"{env} destroyed")
    assert leftovers(host, env) == {}
    assert remote_note(remote["bare"], commit)["environments"][env]["state"] == "destroyed"
    assert daemon.claims.all() == {}
