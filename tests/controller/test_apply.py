"""Apply end to end on the real engine, PostgreSQL, Terraform, Ansible and Caddy (Odoo is the stand-in)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import httpx
import psycopg
import pygit2
import pytest

from reconciler.controller.apply import Applier
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import ActionKind
from reconciler.core.naming import rotation_login
from reconciler.sources.notes import read_note
from tests.example_repo import commit_file, git


def project_of(world: dict[str, Any]) -> Project:
    return Project.open(str(world["work"]), state_dir=world["state"])


def apply(world: dict[str, Any]) -> Any:
    project = project_of(world)
    outcome = compute_plan(project, branches=[world["branch"]])
    events: list[tuple[str, str, str]] = []
    report = Applier(project, world["host"], lambda e, s, st, d: events.append((e, s, st))).apply(outcome)
    return outcome, report, events


def env_resources(world: dict[str, Any], env: str) -> dict[str, Any]:
    """Every kind of resource an environment owns, read from the real systems."""
    import docker

    client = docker.DockerClient(base_url=world["host"].docker_host)
    host = world["host"]
    with psycopg.connect(host=host.pg_host, port=host.pg_port, user=host.pg_admin_user,
                         password=host.pg_admin_password, dbname="postgres") as conn:
        dbs = conn.execute("SELECT datname FROM pg_database WHERE datname = %s", (env,)).fetchall()
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname IN (%s, %s)",
                             (env, rotation_login(env))).fetchall()
    routes = httpx.get(f"{host.caddy_admin}/config/apps/http/servers/{host.caddy_server}/routes").json() or []
    return {
        "containers": client.containers.list(all=True, filters={"label": f"odooops.env={env}"}),
        "networks": client.networks.list(filters={"label": f"odooops.env={env}"}),
        "volumes": client.volumes.list(filters={"label": f"odooops.env={env}"}),
        "databases": dbs, "roles": roles,
        "routes": [r for r in routes if r.get("@id") == f"odooops-{env}"],
        "filestore": (host.filestore_root / env).exists(),
        "terraform": (host.state_dir / "terraform" / env).exists(),
    }


@contextmanager
def probing(world: dict[str, Any], env: str, query: str = "") -> Iterator[Counter[str]]:
    """Ask the router for the env's /web/health without pause while the body runs; count the answers."""
    seen: Counter[str] = Counter()
    done = threading.Event()

    def run() -> None:
        # One connection per request: every route change reloads Caddy's server, which closes idle
        # keep-alive connections, and a request sent on one at that instant is dropped unanswered (a
        # client's retry case, RFC 9112 9.3.1), which says nothing about the upstreams being served.
        with httpx.Client(trust_env=False) as client:
            while not done.is_set():
                try:
                    r = client.get(f"{world['host'].router_http}/web/health{query}",
                                   headers={"Host": f"{env}.odooops.localhost", "Connection": "close"}, timeout=10)
                    seen["pass" if r.status_code == 200 and r.json().get("status") == "pass"
                         else f"HTTP {r.status_code}"] += 1
                except httpx.HTTPError as exc:
                    seen[type(exc).__name__] += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(timeout=20)


def test_branch_lifecycle_create_noop_redeploy_destroy(world: dict[str, Any]) -> None:
    outcome, report, _ = apply(world)
    [env] = [a.env for a in outcome.plan.actions if a.action is ActionKind.CREATE]
    assert report.ok, json.dumps(report.to_json(), indent=1)
    [rep] = report.environments
    assert [s.name for s in rep.steps][:4] == ["secrets", "build", "infra", "files"]
    assert rep.tests and rep.tests["result"] == "passed"
    # reachable through the router at its own host name, and healthy
    resp = httpx.get(f"{world['host'].router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"})
    assert resp.status_code == 200 and resp.json() == {"status": "pass"}
    res = env_resources(world, env)
    web = next(c for c in res["containers"] if c.labels.get("odooops.role") == "web")
    assert web.labels["odooops.commit"] == rep.commit and web.labels["odooops.tier"] == "ephemeral"
    assert res["databases"] and res["roles"] and res["routes"] and res["filestore"]
    # the status note sits on the deployed commit
    note = read_note(pygit2.Repository(str(world["work"])), rep.commit)
    assert note and note["environments"][env]["state"] == "running"
    assert note["environments"][env]["url"] == f"http://{env}.odooops.localhost"

    # no secret in the notes, the state file, the report or the plan
    from reconciler.secrets import SecretStore
    store = SecretStore(world["state"] / "secrets")
    # the database role, Odoo's master password, the admin user's password (and the hash last written
    # into the database) and the env's login at the mail catcher
    assert store.names(env) == ["admin_passwd", "admin_password", "admin_password_hash", "db_password",
                                "smtp_password"]
    values = store.all_values()
    assert len(values) == 5 and store.get(env, "admin_password") != store.get(env, "admin_passwd")
    notes = git(world["work"], "log", "-p", "refs/notes/odooops")
    state_text = "".join(p.read_bytes().decode("latin-1") for p in (world["state"] / "projects").rglob("state.sqlite*"))
    plan_text = json.dumps(outcome.plan.actions[0].to_json()) + "".join(outcome.artifacts[env].values())
    for value in values:
        assert value not in notes and value not in state_text and value not in plan_text
        assert value not in json.dumps(report.to_json())
    # nor in what the engine or the host's `ps` shows: no command-line option, no environment variable
    engine = docker.DockerClient(base_url=world["host"].docker_host)
    shown = json.dumps(engine.api.inspect_container(web.id)) + json.dumps(engine.api.top(web.id, "auxww"))
    assert "odoo" in shown and not [v for v in values if v in shown]

    # second apply: nothing to do, no restart
    started = web.attrs["State"]["StartedAt"]
    outcome2, report2, _ = apply(world)
    assert not outcome2.plan.has_changes and report2.environments == []
    web.reload()
    assert web.attrs["State"]["StartedAt"] == started

    # Caddy lost the route (a restart forgets API changes): the next apply repairs only the route
    Applier(project_of(world), world["host"]).router.remove_route(env)
    _, report_r, events = apply(world)
    assert report_r.environments == [] and (env, "route", "changed") in events
    resp = httpx.get(f"{world['host'].router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"})
    assert resp.json() == {"status": "pass"}
    web.reload()
    assert web.attrs["State"]["StartedAt"] == started

    # rotated secrets (odooops secrets rotate): the next apply redeploys with the new password, given
    # to the env's second login, while the running version keeps its own until it is replaced
    old_password = store.get(env, "db_password")
    store.rotate(env, "db_password", keep_previous=True)
    store.rotate(env, "admin_passwd")
    with probing(world, env, "?db_server_status=1") as answers:
        outcome_s, report_s, _ = apply(world)
    # no downtime, database included: the router never answered for a missing container, and the
    # running version could always open a new connection to PostgreSQL
    assert answers["pass"] > 10 and set(answers) == {"pass"}, answers
    assert not outcome_s.plan.has_changes  # nothing in Git changed: observed credentials did
    [rep_s] = report_s.environments
    assert rep_s.action == "redeploy" and rep_s.result == "ok", rep_s.to_json()
    infra_step = next(s for s in rep_s.steps if s.name == "infra")
    assert infra_step.result == "changed"  # ALTER ROLE through Terraform
    web = next(c for c in env_resources(world, env)["containers"] if c.labels.get("odooops.role") == "web")
    assert web.attrs["State"]["StartedAt"] != started  # restarted on the new odoo.conf
    resp = httpx.get(f"{world['host'].router_http}/web/health?db_server_status=1",
                     headers={"Host": f"{env}.odooops.localhost"})
    assert resp.json() == {"status": "pass", "db_server_status": True}  # Odoo reaches PostgreSQL as the role
    host = world["host"]
    login = rotation_login(env)
    assert f"db_user = {login}" in (host.env_dir(env) / "odoo.conf").read_text()
    for user in (env, login):  # the old password opens nothing; the env's own role cannot log in now
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=host.pg_host, port=host.pg_port, user=user, password=old_password, dbname=env).close()
    assert store.names(env) == ["admin_passwd", "admin_password", "admin_password_hash", "db_password",
                                "smtp_password"]  # the previous one is gone
    psycopg.connect(host=host.pg_host, port=host.pg_port, user=login, password=store.get(env, "db_password"),
                    dbname=env).close()
    _, report_n, _ = apply(world)
    assert report_n.environments == []  # recorded: no second redeploy

    # a new commit that touches one module: redeploy, update only that module
    commit_file(world["work"], world["branch"], "addons/acme_sale/models/extra.py", "# change\n", "touch acme_sale")
    with probing(world, env, "?db_server_status=1") as answers:
        outcome3, report3, _ = apply(world)
    assert answers["pass"] > 10 and set(answers) == {"pass"}, answers  # no downtime, database included
    runtime = next(s for s in report3.environments[0].steps if s.name == "runtime")
    assert "started beside the serving one" in runtime.detail, runtime
    [action] = [a for a in outcome3.plan.actions if a.env == env]
    assert action.action is ActionKind.REDEPLOY
    [rep3] = report3.environments
    assert rep3.result == "ok" and rep3.modules == {"install": [], "update": ["acme_sale"], "removed": []}

    # branch deleted: destroyed with every resource
    git(world["work"], "checkout", "-q", "develop")
    git(world["work"], "branch", "-q", "-D", world["branch"])
    outcome4, report4, _ = apply(world)
    assert [(a.env, a.action) for a in outcome4.plan.actions] == [(env, ActionKind.DESTROY)]
    assert report4.ok, report4.to_json()
    left = env_resources(world, env)
    assert {k: v for k, v in left.items() if v} == {}


def test_failed_update_keeps_previous_version_serving(world: dict[str, Any]) -> None:
    outcome, report, _ = apply(world)
    [env] = [a.env for a in outcome.plan.actions if a.action is ActionKind.CREATE]
    assert report.ok
    commit_file(world["work"], world["branch"], "addons/acme_sale/tests/FAIL_TESTS", "fail\n", "break tests")
    _, report2, _ = apply(world)
    [rep] = report2.environments
    assert rep.result == "failed" and rep.error and rep.error["error"] == "TESTS_FAILED"
    resp = httpx.get(f"{world['host'].router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"})
    assert resp.status_code == 200  # the previous version still serves
    res = env_resources(world, env)
    web = next(c for c in res["containers"] if c.labels.get("odooops.role") == "web")
    assert web.labels["odooops.commit"] == report.environments[0].commit
    # recorded once: the next plan does not retry the same failing commit
    again = compute_plan(project_of(world), branches=[world["branch"]])
    [a] = again.plan.actions
    assert a.action is ActionKind.NOOP and "failed" in a.reason
    Applier(project_of(world), world["host"]).runtime.remove(env)
