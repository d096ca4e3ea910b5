"""Rollback: the target from the notes, and end to end on the real apply path (pin pushed, old artifact back)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pygit2
import pytest

from reconciler.controller.apply import Applier
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.errors import OdooOpsError
from reconciler.service.rollback import choose_target, clear_pin, healthy_history, rollback
from reconciler.sources.notes import write_env_entry
from reconciler.sources.pins import pin_ref
from tests.controller.conftest import world as world_fixture  # noqa: F401  (the apply tests' `world`)
from tests.example_repo import build_example, commit_file, git

SIG = pygit2.Signature("Test", "t@example.com")


def note(project: Project, commit: str, env: str, state: str, deployed_at: float, **extra: Any) -> None:
    entry = {"env": env, "branch": "main", "tier": "production", "commit": commit, "state": state,
             "deployed_at": deployed_at, "updated_at": deployed_at, **extra}
    write_env_entry(project.source.repo, commit, env, entry, SIG)


def test_target_is_the_newest_healthy_commit_before_the_current_one(tmp_path: Path) -> None:
    build_example(tmp_path / "repo.git", bare=True, oca_dest=tmp_path / "oca.git")
    project = Project.open(str(tmp_path / "repo.git"), state_dir=tmp_path / "state")
    c4, c3, c2, c1 = git(tmp_path / "repo.git", "rev-list", "main").split()
    note(project, c1, "production", "running", 1)
    note(project, c2, "production", "running", 2)
    note(project, c3, "production", "failed", 3)
    note(project, c2, "other-env", "running", 9)  # another environment's history does not count
    assert [c["commit"] for c in healthy_history(project, "production")] == [c2, c1]
    assert choose_target(project, "production", c3, None) == c2  # never the current (failed) one
    assert choose_target(project, "production", c2, None) == c1
    assert choose_target(project, "production", c2, c4[:10]) == c4  # --to takes a short id
    with pytest.raises(OdooOpsError) as err:
        choose_target(project, "production", c2, "no-such-rev")
    assert err.value.code == "ROLLBACK_COMMIT_NOT_FOUND"
    # once rolled back from c2 to c1, c2 is never offered again: it passed its gates but was bad
    note(project, c1, "production", "running", 4, rollback={"from_commit": c2, "commit": c1})
    with pytest.raises(OdooOpsError) as err:
        choose_target(project, "production", c1, None)
    assert err.value.code == "ROLLBACK_NO_HEALTHY_VERSION"
    assert "odooops rollback production --to <commit>" in err.value.remediation


@pytest.fixture()
def mirrored(world_fixture: dict[str, Any]) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The world's project behind a bare remote (git push), reconciled from a mirror of it."""
    world = world_fixture
    remote = world["tmp"] / "remote.git"
    git(world["tmp"], "clone", "-q", "--bare", str(world["work"]), str(remote))
    git(world["work"], "remote", "add", "origin", str(remote))
    world = {**world, "remote": remote, "url": remote.as_uri()}
    yield world
    project = Project.open(world["url"], state_dir=world["state"])
    applier = Applier(project, world["host"])
    for name, entry in project.store.entries().items():
        applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))


def deploy(world: dict[str, Any]) -> Any:
    project = Project.open(world["url"], state_dir=world["state"])
    outcome = compute_plan(project, branches=[world["branch"]])
    return outcome, Applier(project, world["host"]).apply(outcome)


def push(world: dict[str, Any], path: str, text: str, message: str) -> str:
    commit = commit_file(world["work"], world["branch"], path, text, message)
    git(world["work"], "push", "-q", "origin", world["branch"])
    return commit


def running_commit(world: dict[str, Any], env: str) -> str:
    client = docker.DockerClient(base_url=world["host"].docker_host)
    [web] = [c for c in client.containers.list(filters={"label": f"odooops.env={env}"})
             if c.labels.get("odooops.role") == "web"]
    return web.labels["odooops.commit"]


def test_rollback_of_a_bad_deploy_pins_the_previous_commit_until_the_next_push(mirrored: dict[str, Any]) -> None:
    w = mirrored
    git(w["work"], "push", "-q", "origin", w["branch"])
    outcome, report = deploy(w)
    assert report.ok, json.dumps(report.to_json(), indent=1)
    [env] = [a.env for a in outcome.plan.actions if a.action is ActionKind.CREATE]
    a = report.environments[0].commit
    # B passes every gate but is bad: it changes a module, so the rollback runs the module update again
    b = push(w, "addons/acme_sale/models/extra.py", "# a bad idea\n", "acme_sale: bad change")
    _, report_b = deploy(w)
    assert report_b.ok and running_commit(w, env) == b

    project = Project.open(w["url"], state_dir=w["state"])
    result = rollback(project, w["host"], env, actor="alice")
    assert result["status"] == "rolled_back" and result["commit"] == a and result["from_commit"] == b
    assert result["branch_head"] == b and result["pin_pushed"] is True and result["restored_backup"] is None
    assert result["apply"]["action"] == "redeploy" and "pinned by rollback" in result["apply"]["reason"]
    assert set(result["phases"]) == {"pin", "apply", "total"}
    assert running_commit(w, env) == a
    health = httpx.get(f"{w['host'].router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"})
    assert health.status_code == 200
    # the pin and the rollback note (with its timings) are in the remote
    pin = json.loads(git(w["remote"], "show", f"{pin_ref(env)}:pin.json"))
    assert (pin["commit"], pin["branch_head"], pin["actor"]) == (a, b, "alice")
    noted = json.loads(git(w["remote"], "notes", "--ref=odooops", "show", a))["environments"][env]
    assert noted["state"] == "running" and noted["rollback"]["from_commit"] == b
    assert noted["rollback"]["phases"]["total"] > 0

    # the plan keeps the pinned commit; B is never chosen again automatically
    again = compute_plan(Project.open(w["url"], state_dir=w["state"]), branches=[w["branch"]])
    [noop] = again.plan.actions
    assert noop.action is ActionKind.NOOP and "pinned by rollback to" in noop.reason
    with pytest.raises(OdooOpsError) as err:
        rollback(Project.open(w["url"], state_dir=w["state"]), w["host"], env, actor="alice", apply=False)
    assert err.value.code == "ROLLBACK_NO_HEALTHY_VERSION"

    # a new push releases the pin
    c = push(w, "addons/acme_sale/models/extra.py", "# fixed\n", "acme_sale: fix")
    released = compute_plan(Project.open(w["url"], state_dir=w["state"]), branches=[w["branch"]])
    [redeploy] = released.plan.actions
    assert redeploy.action is ActionKind.REDEPLOY and redeploy.commit == c
    assert "rollback pin to" in redeploy.reason and "released" in redeploy.reason
    cleared = clear_pin(Project.open(w["url"], state_dir=w["state"]), env, actor="alice")
    assert cleared["cleared"] and cleared["pin_pushed"]
    assert pin_ref(env) not in git(w["remote"], "for-each-ref", "--format=%(refname)")


def test_rollback_after_a_failed_deploy_returns_to_the_commit_that_still_serves(world_fixture: dict[str, Any]) -> None:  # noqa: F811
    world = world_fixture
    project = Project.open(str(world["work"]), state_dir=world["state"])
    outcome = compute_plan(project, branches=[world["branch"]])
    report = Applier(project, world["host"]).apply(outcome)
    assert report.ok
    env, a = report.environments[0].env, report.environments[0].commit
    b = commit_file(world["work"], world["branch"], "addons/acme_sale/tests/FAIL_TESTS", "fail\n", "break tests")
    failed = Applier(project, world["host"]).apply(compute_plan(project, branches=[world["branch"]]))
    assert failed.environments[0].result == "failed"
    started = time.time()
    result = rollback(Project.open(str(world["work"]), state_dir=world["state"]), world["host"], env, actor="bob")
    assert result["commit"] == a and result["from_commit"] == b and result["pin_pushed"] is None
    # No pre-deploy backup to restore: nothing is discarded, so no confirmation was needed.
    assert result["data_kept"] is True and result["discarded"] is None
    entry = project.store.entries()[env]
    assert entry["state"] == "running" and entry["commit"] == a and entry["updated_at"] >= started
    assert git(world["work"], "cat-file", "-t", pin_ref(env)).strip() == "commit"


def test_rollback_restores_the_pre_deploy_backup_of_a_deploy_that_migrated_data(
        world_fixture: dict[str, Any]) -> None:  # noqa: F811
    from reconciler.data.backup import create_backup
    from reconciler.data.context import DataContext

    world = world_fixture
    project = Project.open(str(world["work"]), state_dir=world["state"])
    report = Applier(project, world["host"]).apply(compute_plan(project, branches=[world["branch"]]))
    assert report.ok
    env, a = report.environments[0].env, report.environments[0].commit
    ctx = DataContext.for_project(project, world["host"])
    backup = create_backup(ctx, env, reason="pre-deploy", commit=a)
    b = commit_file(world["work"], world["branch"], "addons/acme_sale/models/extra.py", "# migrates\n", "migrate")
    assert Applier(project, world["host"]).apply(compute_plan(project, branches=[world["branch"]])).ok
    with ctx.pg.connect(env) as conn:
        conn.execute("CREATE TABLE b_migrated (id int)")  # what B's migration left in the data
    # What the apply's database step records for a production deploy that updates modules (only
    # production takes pre-deploy backups, and only one `production` database fits the shared server).
    ctx.store.set_state(env, "running", tier="production",
                        pre_deploy_backup={"id": backup.id, "from_commit": a, "to_commit": b})
    with ctx.pg.connect(env) as conn:
        conn.execute("INSERT INTO res_partner (name) VALUES ('Created after the deploy')")

    # The restore would discard that record: refused until confirmed, and the refusal says what goes.
    with pytest.raises(OdooOpsError) as refused:
        rollback(Project.open(str(world["work"]), state_dir=world["state"]), world["host"], env, actor="ops")
    assert refused.value.code == "ROLLBACK_NEEDS_CONFIRMATION"
    assert f"backup {backup.id} was taken at" in refused.value.message
    assert "res_partner 1 created" in refused.value.message
    assert f"odooops rollback {env} --confirm" in refused.value.remediation
    # B updated acme_sale in the database: A's code cannot simply run on it.
    assert "--code-only is not possible" in refused.value.remediation
    with pytest.raises(OdooOpsError) as code_only:
        rollback(Project.open(str(world["work"]), state_dir=world["state"]), world["host"], env, actor="ops",
                 code_only=True)
    assert code_only.value.code == "ROLLBACK_CODE_ONLY_REFUSED" and "acme_sale" in code_only.value.message
    assert project.source.repo.references.get(pin_ref(env)) is None  # refusals change nothing

    result = rollback(Project.open(str(world["work"]), state_dir=world["state"]), world["host"], env, actor="ops",
                      confirm=True)
    assert result["commit"] == a and result["restored_backup"] == backup.id and result["data_kept"] is False
    assert result["discarded"]["tables"]["res_partner"] == {"created": 1, "changed": 0}
    assert "res_partner 1 created" in result["discarded"]["text"]
    assert {"pin", "restore", "apply", "swap", "total"} <= set(result["phases"])
    assert result["data"]["swap"]["swapped"] is True
    with ctx.pg.connect(env) as conn:
        assert conn.execute("SELECT to_regclass('b_migrated')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM res_partner WHERE name = 'Created after the deploy'"
                            ).fetchone() == (0,)
    assert not [d for d in ctx.pg.list_databases("oo_") if d.endswith(result["data"]["swap"]["dropped_old"][-12:])]
    health = httpx.get(f"{world['host'].router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"})
    assert health.status_code == 200
    noted = json.loads(git(world["work"], "notes", "--ref=odooops", "show", a))["environments"][env]
    assert noted["rollback"]["restored_backup"] == backup.id and noted["rollback"]["phases"]["swap"] >= 0


def test_code_only_rollback_keeps_what_was_written_when_no_module_changed(
        world_fixture: dict[str, Any]) -> None:  # noqa: F811
    from reconciler.data.backup import create_backup
    from reconciler.data.context import DataContext

    world = world_fixture
    project = Project.open(str(world["work"]), state_dir=world["state"])
    report = Applier(project, world["host"]).apply(compute_plan(project, branches=[world["branch"]]))
    assert report.ok
    env, a = report.environments[0].env, report.environments[0].commit
    ctx = DataContext.for_project(project, world["host"])
    backup = create_backup(ctx, env, reason="pre-deploy", commit=a)
    b = commit_file(world["work"], world["branch"], "NOTES.md", "no module changes\n", "docs only")
    assert Applier(project, world["host"]).apply(compute_plan(project, branches=[world["branch"]])).ok
    ctx.store.set_state(env, "running", tier="production",
                        pre_deploy_backup={"id": backup.id, "from_commit": a, "to_commit": b})
    with ctx.pg.connect(env) as conn:
        conn.execute("INSERT INTO res_partner (name) VALUES ('Kept by a code-only rollback')")

    with pytest.raises(OdooOpsError) as refused:
        rollback(Project.open(str(world["work"]), state_dir=world["state"]), world["host"], env, actor="ops")
    assert refused.value.code == "ROLLBACK_NEEDS_CONFIRMATION" and "res_partner 1 created" in refused.value.message
    assert f"odooops rollback {env} --code-only" in refused.value.remediation  # offered: no module changed

    result = rollback(Project.open(str(world["work"]), state_dir=world["state"]), world["host"], env, actor="ops",
                      code_only=True)
    assert result["commit"] == a and result["status"] == "rolled_back"
    assert result["restored_backup"] is None and result["data_kept"] is True and result["code_only"] is True
    assert result["discarded"] is None and "restore" not in result["phases"]
    with ctx.pg.connect(env) as conn:
        assert conn.execute("SELECT count(*) FROM res_partner WHERE name = 'Kept by a code-only rollback'"
                            ).fetchone() == (1,)
    assert project.store.entries()[env]["commit"] == a
