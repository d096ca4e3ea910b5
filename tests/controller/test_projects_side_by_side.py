"""Two projects on one PostgreSQL cluster, Docker engine and Caddy, both with the same branch: each gets its own
database, role, containers, network, route, host name, filestore, secrets and notes (docs/adr/0037), and
destroying one, or sweeping one's orphans, touches nothing of the other. An installation made before projects
is taken over under its old names, nothing renamed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import httpx
import psycopg
import pygit2
import pytest

from reconciler.controller.apply import Applier
from reconciler.controller.daemon import Daemon, DaemonConfig
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.core.projects import ProjectName, ResourceNames
from reconciler.data.backup import create_backup, list_backups
from reconciler.data.context import DataContext
from reconciler.errors import OdooOpsError
from reconciler.platform.project_registry import ProjectRegistry
from reconciler.sources.notes import read_note
from tests.example_repo import commit_file


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"  # unique: other tests share the services


def _open(world: dict[str, Any], project: str | None) -> Project:
    return Project.open(str(world["work"]), state_dir=world["state"], project=project)


def _apply(world: dict[str, Any], project: Project) -> Any:
    outcome = compute_plan(project, branches=[world["branch"]])
    report = Applier(project, world["host"]).apply(outcome)
    assert report.ok, json.dumps(report.to_json(), indent=1)
    return outcome, report


def _destroy_all(world: dict[str, Any], project: Project) -> None:
    applier = Applier(project, world["host"])
    for name, entry in project.store.entries().items():
        applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))


@contextmanager
def _projects(world: dict[str, Any], *names: str | None) -> Iterator[list[Project]]:
    projects = [_open(world, n) for n in names]
    try:
        yield projects
    finally:
        for p in projects:
            _destroy_all(world, _open(world, p.project_name))


def _resources(world: dict[str, Any], key: str) -> dict[str, Any]:
    host = world["host"]
    client = docker.DockerClient(base_url=host.docker_host)
    with psycopg.connect(host=host.pg_host, port=host.pg_port, user=host.pg_admin_user,
                         password=host.pg_admin_password, dbname="postgres") as conn:
        db = conn.execute("SELECT oid, pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                          (key,)).fetchone()
    routes = httpx.get(f"{host.caddy_admin}/config/apps/http/servers/{host.caddy_server}/routes").json() or []
    return {
        "containers": sorted(c.id for c in client.containers.list(all=True, filters={"label": f"odooops.env={key}"})),
        "networks": sorted(n.name for n in client.networks.list(filters={"label": f"odooops.env={key}"})),
        "database": db,
        "route": [r["@id"] for r in routes if r.get("@id") == f"odooops-{key}"],
        "filestore": (host.filestore_root / key).exists(),
        "secrets": sorted((world["state"] / "secrets").glob(f"{key}.enc")) != [],
    }


def _healthy(world: dict[str, Any], host_name: str) -> bool:
    r = httpx.get(f"{world['host'].router_http}/web/health", headers={"Host": host_name}, timeout=10)
    return r.status_code == 200 and r.json() == {"status": "pass"}


def test_two_projects_with_the_same_branch_run_side_by_side(world: dict[str, Any]) -> None:
    a_name, b_name = _name("pa"), _name("pb")
    with _projects(world, a_name, b_name) as (a, b):
        (_, rep_a), (_, rep_b) = _apply(world, a), _apply(world, b)
        [env] = [e.env for e in rep_a.environments]
        assert [e.env for e in rep_b.environments] == [env]  # the same environment name in both projects
        ka, kb = a.key(env), b.key(env)
        assert (ka, kb) == (ResourceNames(ProjectName(a_name), env).key, ResourceNames(ProjectName(b_name), env).key)
        assert ka.startswith(f"{a_name}--") and kb.startswith(f"{b_name}--") and ka != kb
        ra, rb = _resources(world, ka), _resources(world, kb)
        for res, key in ((ra, ka), (rb, kb)):
            assert res["containers"] and res["database"] is not None and res["database"][1] == key
            assert res["route"] and res["filestore"] and res["secrets"], res
        assert not set(ra["containers"]) & set(rb["containers"]) and not set(ra["networks"]) & set(rb["networks"])
        # Each answers at its own host name, and nothing answers at the bare environment name's.
        base = a.platform.base_domain
        assert _healthy(world, f"{ka}.{base}") and _healthy(world, f"{kb}.{base}")
        assert rep_a.environments[0].url == f"http://{ka}.{base}"
        assert not _resources(world, env)["database"] and not _resources(world, env)["containers"]
        # Each project's status notes go to its own ref; the legacy ref is not written.
        repo = pygit2.Repository(str(world["work"]))
        commit = rep_a.environments[0].commit
        for p in (a, b):
            note = read_note(repo, commit, ref=ResourceNames(ProjectName(p.project_name or ""), env).notes_ref)
            assert note and note["environments"][env]["state"] == "running"
        assert read_note(repo, commit) is None

        # Destroying b's environment leaves every resource of a's as it was, and a still answers.
        b_applier = Applier(b, world["host"])
        entry = b.store.entries()[env]
        destroyed = b_applier._destroy(Action(env=env, action=ActionKind.DESTROY, branch=entry["branch"],
                                              tier=entry["tier"], reason="test", old_commit=entry["commit"]))
        assert destroyed.result != "failed", destroyed
        after = _resources(world, kb)
        assert not after["containers"] and after["database"] is None and not after["route"]
        assert _resources(world, ka) == ra and _healthy(world, f"{ka}.{base}")

        # b's orphan sweep does not see a's running environment as one of its own orphans.
        daemon = Daemon(DaemonConfig(repo=str(world["work"]), state_dir=world["state"], poll_interval=3600,
                                     project=b_name), world["host"])
        found = daemon.sweep()
        assert env not in found["claimed"] and ka not in found["unclaimed"] and env not in found["unclaimed"]
        assert _resources(world, ka) == ra and _healthy(world, f"{ka}.{base}")


def test_an_installation_from_before_projects_is_taken_over_under_its_names(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODOOOPS_BACKUP_KEY_FILE", str(world["tmp"] / "backup.key"))
    legacy_name, new_name = _name("pl"), _name("pn")
    with _projects(world, None) as (old,):
        _, rep = _apply(world, old)
        [env] = [e.env for e in rep.environments]
        before = _resources(world, env)
        assert before["containers"] and before["database"] is not None
        old_backup = create_backup(DataContext.for_project(old, world["host"]), env)
        # The first project named for this repository takes its environments over: nothing is renamed and
        # the next plan changes nothing.
        taken = _open(world, legacy_name)
        assert taken.name is None and taken.project_name == legacy_name and taken.key(env) == env
        assert ProjectRegistry(world["state"]).get(ProjectName(legacy_name)).scheme == "legacy"  # type: ignore[union-attr]
        plan = compute_plan(taken, branches=[world["branch"]]).plan
        assert [a.action for a in plan.actions if a.env == env] == [ActionKind.NOOP]
        assert set(taken.store.entries()) == set(old.store.entries())
        # Its backups and its status notes are where they were, and found through the named project.
        taken_ctx = DataContext.for_project(taken, world["host"])
        assert [m.id for m in list_backups(taken_ctx, env)] == [old_backup.id]
        assert taken.source.notes_ref == "refs/notes/odooops"
        note = read_note(pygit2.Repository(str(world["work"])), rep.environments[0].commit)
        assert note and note["environments"][env]["state"] == "running" and env in taken.observed()
        # A second project of the same repository is namespaced and runs beside it.
        with _projects(world, new_name) as (new,):
            _, rep_new = _apply(world, new)
            assert new.name == ProjectName(new_name) and rep_new.environments[0].env == env
            assert _resources(world, new.key(env))["containers"]
            assert _resources(world, env) == before
            # Each project lists its own backups of the environment of the same name, never the other's.
            new_backup = create_backup(DataContext.for_project(new, world["host"]), env)
            assert [m.id for m in list_backups(DataContext.for_project(new, world["host"]), env)] == [new_backup.id]
            assert [m.id for m in list_backups(taken_ctx, env)] == [old_backup.id]
            # Naming the second project again with another repository is refused, nothing touched.
            with pytest.raises(OdooOpsError) as refused:
                Project.open(str(world["tmp"] / "other"), state_dir=world["state"], project=new_name.upper())
            assert refused.value.code == "PROJECT_REPO_MISMATCH"
        assert _resources(world, env) == before


def test_a_host_name_another_project_routes_is_refused_and_the_other_untouched(world: dict[str, Any]) -> None:
    a_name, b_name = _name("pa"), _name("pb")
    with _projects(world, a_name, b_name) as (a, b):
        _, rep_a = _apply(world, a)
        [env] = [e.env for e in rep_a.environments]
        host = f"{a.key(env)}.{a.platform.base_domain}"
        before = _resources(world, a.key(env))
        # Project b (same repository) gets a branch whose .odooops.yaml claims a's host name explicitly.
        claim = f"{world['branch']}-b"
        config = (world["work"] / ".odooops.yaml").read_text(encoding="utf-8")
        commit_file(world["work"], claim, ".odooops.yaml", config + f"  {claim}:\n    domains: [{host}]\n",
                    "claim another project's host name")
        outcome = compute_plan(b, branches=[claim])
        report = Applier(b, world["host"]).apply(outcome)
        [rep] = report.environments
        assert rep.result == "failed" and rep.error is not None
        assert rep.error["error"] == "HOST_NAME_CLAIMED" and a.key(env) in rep.error["message"], rep.error
        assert rep.error["claimed_by"] == [a.key(env)] and rep.error["hosts"] == [host]
        assert [s.name for s in rep.steps if s.result == "failed"] == ["route"]
        # a's route, containers and database are as they were, and a still answers at its name.
        assert _resources(world, a.key(env)) == before and _healthy(world, host)
