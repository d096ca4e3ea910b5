"""Deploys on real Odoo 19 through the real Applier: a refused commit never changes the live database (the
update and the tests run on a working copy), the fix commit's deploy updates what differs in the database
(the schema gate passes, the new field works), a production update whose migration fails is rolled back
automatically (schema and data as before), and by default only the repository's own addons are tested.

One small project: two tiny addons on `base` (dd_note, with a model and a test; dd_mig, depending on it,
whose later version carries a migration that fails). Real installs: one for the dev env, one for production.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from reconciler.cli.plan_output import human
from reconciler.controller.apply import Applier, ApplyReport
from reconciler.controller.modules import read_database
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.data.templates import TemplateRegistry
from reconciler.executors.postgres import Postgres
from reconciler.platform.env_lock import env_lock
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore
from tests.example_repo import git

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

SHARED_LOCKS = Path(__file__).resolve().parents[2] / ".work" / "test-locks"
IMAGE = "odoo:19.0"

CONFIG = """\
version: 1
odoo:
  version: "19.0"
addons:
  paths: [addons]
modules: [dd_note, dd_mig]
mail_catcher: false
branches:
  - {match: "dd/*", tier: dev}
tiers:
  dev:
    data: {source: fresh, neutralize: false, mask: false}
"""

MODEL = '''\
from odoo import fields, models


class DdNote(models.Model):
    _name = "dd.note"
    _description = "Deploy Note"

    name = fields.Char(required=True)
{extra}'''

PASSING_TEST = '''\
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestDdNote(TransactionCase):
    def test_note(self):
        self.assertEqual(self.env["dd.note"].create({"name": "hello"}).name, "hello")
'''
FAILING_TEST = PASSING_TEST + '''
    def test_refused_on_purpose(self):
        self.assertEqual(1 + 1, 3, "this commit must never reach the environment")
'''
LEVEL_FIELD = "    dd_level = fields.Integer(default=7)\n"
FAILING_MIGRATION = '''\
def migrate(cr, version):
    raise RuntimeError("dd_mig: this migration fails on purpose")
'''


def dd_note(version: str, extra: str = "", test: str = PASSING_TEST) -> dict[str, str]:
    return {
        "addons/dd_note/__manifest__.py": repr({
            "name": "Deploy Notes", "version": version, "license": "LGPL-3", "depends": ["base"],
            "data": ["security/ir.model.access.csv"], "installable": True}) + "\n",
        "addons/dd_note/__init__.py": "from . import models\n",
        "addons/dd_note/models/__init__.py": "from . import dd_note\n",
        "addons/dd_note/models/dd_note.py": MODEL.format(extra=extra),
        "addons/dd_note/security/ir.model.access.csv": (
            "id,name,model_id:id,group_id:id,perm_read,perm_write,perm_create,perm_unlink\n"
            "access_dd_note_user,dd.note.user,model_dd_note,base.group_user,1,1,1,1\n"),
        "addons/dd_note/tests/__init__.py": "from . import test_dd_note\n",
        "addons/dd_note/tests/test_dd_note.py": test,
    }


def dd_mig(version: str, migration: str | None = None) -> dict[str, str]:
    files = {
        "addons/dd_mig/__manifest__.py": repr({
            "name": "Deploy Migration", "version": version, "license": "LGPL-3", "depends": ["dd_note"],
            "data": [], "installable": True}) + "\n",
        "addons/dd_mig/__init__.py": "",
    }
    if migration is not None:
        files[f"addons/dd_mig/migrations/{version}/post-migrate.py"] = migration
    return files


class Project_:
    """The project's work tree, host settings and what the tests look at."""

    def __init__(self, tmp: Path, host: HostSettings) -> None:
        self.host = host
        self.work = tmp / "project"
        self.pg = Postgres.from_host(host)
        self.production_dropped = False
        self.tag = uuid.uuid4().hex[:8]

    def commit(self, branch: str, files: dict[str, str], message: str, remove: tuple[str, ...] = ()) -> str:
        if git(self.work, "branch", "--list", branch).strip():
            git(self.work, "checkout", "-q", branch)
        else:
            git(self.work, "checkout", "-q", "-b", branch)
        for path in remove:
            shutil.rmtree(self.work / path, ignore_errors=True)
        for path, text in files.items():
            (self.work / path).parent.mkdir(parents=True, exist_ok=True)
            (self.work / path).write_text(text, encoding="utf-8")
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        return git(self.work, "rev-parse", "HEAD").strip()

    def project(self) -> Project:
        return Project.open(str(self.work), state_dir=self.host.state_dir)

    def plan(self, branch: str) -> Any:
        return compute_plan(self.project(), branches=[branch])

    def apply(self, branch: str) -> ApplyReport:
        project = self.project()
        return Applier(project, self.host).apply(compute_plan(project, branches=[branch]))

    def runtime(self) -> Any:
        return Applier(self.project(), self.host).runtime

    def db(self, name: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host=self.host.pg_host, port=self.host.pg_port, user=self.host.pg_admin_user,
                               password=self.host.pg_admin_password, dbname=name, autocommit=True)

    def columns(self, db: str, table: str) -> set[str]:
        with self.db(db) as conn:
            rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                                "AND table_name = %s", (table,)).fetchall()
        return {r[0] for r in rows}

    def modules(self, db: str) -> dict[str, tuple[str, str]]:
        with self.db(db) as conn:
            rows = conn.execute("SELECT name, state, latest_version FROM ir_module_module "
                                "WHERE name LIKE 'dd\\_%%'").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def scratch_of(self, env: str) -> list[str]:
        """Working copies and set-aside databases of env, and their filestores."""
        with self.db("postgres") as conn:
            dbs = [r[0] for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname ~ '^oo_(clone|old)_' "
                "AND pg_get_userbyid(datdba) = %s", (env,)).fetchall()]
        return dbs + [p.name for p in (self.host.filestore_root / env / "filestore").glob("*oo_*")]

    def health(self, env: str) -> int:
        entry = self.project().store.entries()[env]
        domain = str(entry["url"]).split("://", 1)[1].split("/", 1)[0]
        return httpx.get(f"{self.host.router_http}/web/health", headers={"Host": domain}, timeout=60).status_code

    def rpc(self, env: str, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Log in as the env's admin (its platform password) through the router and call a model method."""
        entry = self.project().store.entries()[env]
        domain = str(entry["url"]).split("://", 1)[1].split("/", 1)[0]
        password = SecretStore(self.host.state_dir / "secrets").get(env, "admin_password")
        assert password, f"no admin password of {env} in the platform's store"
        with httpx.Client(base_url=self.host.router_http, headers={"Host": domain}, timeout=120) as client:
            auth = client.post("/web/session/authenticate", json={
                "jsonrpc": "2.0", "method": "call", "id": 1,
                "params": {"db": env, "login": "admin", "password": password}}).json()
            assert (auth.get("result") or {}).get("uid"), f"{env}: admin login refused: {auth}"
            resp = client.post(f"/web/dataset/call_kw/{model}/{method}", json={
                "jsonrpc": "2.0", "method": "call", "id": 2,
                "params": {"model": model, "method": method, "args": list(args), "kwargs": kwargs}})
            assert resp.status_code == 200, f"{model}.{method}: HTTP {resp.status_code} {resp.text[:500]}"
            body = resp.json()
            assert "error" not in body, f"{model}.{method}: {body['error']}"
            return body["result"]

    def cleanup(self) -> None:
        project = self.project()
        applier = Applier(project, self.host)
        envs = set(project.store.entries())
        for t in TemplateRegistry(self.host.state_dir).all():
            self.pg.drop(t.db)
        for db, owner in self.pg.database_owners("oo_").items():
            if owner in envs:
                self.pg.drop(db)
        for name, entry in project.store.entries().items():
            if name == "production":
                continue
            applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                    tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))
        if "production" in envs:
            self.drop_production(applier)

    def drop_production(self, applier: Applier | None = None) -> None:
        """Take this test's production down by hand (Terraform refuses to drop production, by design). Runs
        while the test still holds the shared production lock, and only once: run again after the lock is
        released, it would drop the production another test deploys meanwhile."""
        if self.production_dropped:
            return
        self.production_dropped = True
        applier = applier or Applier(self.project(), self.host)
        for db, owner in self.pg.database_owners("oo_").items():
            if owner == "production":  # its scratch copies: a role that owns a database cannot be dropped
                self.pg.drop(db)
        applier.runtime.remove("production")
        applier.router.remove_route("production")
        self.pg.drop("production")
        with self.pg.connect() as conn:
            for role in ("production", "production__r"):
                if self.pg.role_exists(role):
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture()
def proj(tmp_path: Path, services_env: dict[str, str], odoo_image: str) -> Iterator[Project_]:
    saved = os.environ.get("ODOOOPS_SECRET_KEY_FILE")
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(tmp_path / "secret.key")
    env = dict(services_env)
    env["ODOOOPS_IMAGE_OVERRIDES"] = f"{IMAGE}={odoo_image}" if odoo_image != IMAGE else ""
    p = Project_(tmp_path, HostSettings.from_env(tmp_path / "state", env))
    p.work.mkdir()
    git(p.work, "init", "-q", "-b", "main")
    p.commit("main", {".odooops.yaml": CONFIG, **dd_note("19.0.1.0"), **dd_mig("19.0.1.0")}, "dd_note and dd_mig")
    try:
        yield p
    finally:
        try:
            p.cleanup()
        finally:
            if saved is None:
                os.environ.pop("ODOOOPS_SECRET_KEY_FILE", None)
            else:
                os.environ["ODOOOPS_SECRET_KEY_FILE"] = saved
            shutil.rmtree(tmp_path / "state", ignore_errors=True)


def explain(report: ApplyReport) -> str:
    return "; ".join(f"{e.env}: {e.result} {e.error} tests={e.tests} "
                     f"steps={[(s.name, s.result, s.detail) for s in e.steps]}" for e in report.environments)


STATS = re.compile(r"odoo\.tests\.stats: (\w+): (\d+) tests")


def test_refused_commit_leaves_live_database_then_fix_updates_it(proj: Project_) -> None:
    branch = f"dd/{proj.tag}"
    git(proj.work, "branch", branch, "main")

    # (d) No tests.tags: the plan says the repository's own addons are tested, nothing else.
    outcome = proj.plan(branch)
    [spec] = outcome.plan.environments
    env = spec.name
    assert outcome.test_tags == {env: "/dd_mig,/dd_note"}
    assert "tests run (/dd_mig,/dd_note)" in human(outcome, "repo", "default")
    report = proj.apply(branch)
    assert report.ok, explain(report)
    [rep] = report.environments
    assert rep.tests is not None and rep.tests["result"] == "passed" and rep.tests["tags"] == "/dd_mig,/dd_note"
    # Odoo's per-module test statistics: only the repository's module with tests ran (base has hundreds)
    assert {m for m, _n in STATS.findall(rep.tests["log_tail"])} == {"dd_note"}, rep.tests["log_tail"]
    assert " of 1 tests when loading database" in rep.tests["log_tail"], rep.tests["log_tail"]
    serving = proj.runtime().observe_env(env).container("web")
    assert serving is not None and serving.running
    assert proj.modules(env) == {"dd_note": ("installed", "19.0.1.0"), "dd_mig": ("installed", "19.0.1.0")}

    # (a) A commit with a new field and a failing test: refused; the live database never saw its update.
    proj.commit(branch, dd_note("19.0.1.1", extra=LEVEL_FIELD, test=FAILING_TEST), "dd_note: level, failing test")
    report = proj.apply(branch)
    [rep] = report.environments
    assert rep.result == "failed" and rep.error is not None and rep.error["error"] == "TESTS_FAILED", explain(report)
    database = next(s for s in rep.steps if s.name == "database")
    assert "working copy" in database.detail and "updated dd_note" in database.detail, database.detail
    assert "dd_level" not in proj.columns(env, "dd_note"), "the refused commit's update ran on the live database"
    assert proj.modules(env)["dd_note"] == ("installed", "19.0.1.0"), "the refused commit changed the live version"
    assert proj.scratch_of(env) == [], "the refused working copy was left behind"
    assert proj.health(env) == 200, "the env stopped serving after a refused commit"
    after = proj.runtime().observe_env(env).container("web")
    assert after is not None and after.id == serving.id and after.running, "the serving container was replaced"
    assert proj.rpc(env, "dd.note", "search_count", []) == 0  # the old version works on its database

    # (b) The fix: its deploy updates dd_note (decided from the database, not from the failed commit),
    # the schema gate passes, and the new field works through the served pages.
    proj.commit(branch, dd_note("19.0.1.1", extra=LEVEL_FIELD), "dd_note: fix the test")
    report = proj.apply(branch)
    [rep] = report.environments
    assert rep.result == "ok", explain(report)
    assert rep.modules == {"install": [], "update": ["dd_note"], "removed": []}, rep.modules
    assert "dd_level" in proj.columns(env, "dd_note")
    assert proj.modules(env)["dd_note"] == ("installed", "19.0.1.1")
    with proj.db(env) as conn:
        state = read_database(conn)
    assert not [n for n, s in state.states.items() if s in ("to upgrade", "to install", "to remove")]
    assert set(state.digests) >= {"dd_note", "dd_mig"}
    runtime_step = next(s for s in rep.steps if s.name == "runtime")
    assert "swapped in" in runtime_step.detail, runtime_step.detail
    assert proj.scratch_of(env) == [], "the set-aside live data was left behind"
    created = proj.rpc(env, "dd.note", "create", {"name": "after the fix"})
    [row] = proj.rpc(env, "dd.note", "read", [created], ["name", "dd_level"])
    assert row["dd_level"] == 7


def test_production_migration_failure_is_rolled_back_automatically(proj: Project_) -> None:
    with env_lock(SHARED_LOCKS, "production", f"tests/realodoo/test_deploys.py pid {os.getpid()}", wait_s=1800):
        if proj.pg.exists("production"):
            pytest.fail("a database named production exists on the shared server (another test, a benchmark or a "
                        "crashed run): drop it once nothing uses it", pytrace=False)
        try:
            _production_migration_failure(proj)
        finally:
            proj.drop_production()  # before the lock goes: the next holder must find no production


def _production_migration_failure(proj: Project_) -> None:
    report = proj.apply("main")
    assert report.ok, explain(report)
    first = report.environments[0].commit
    with proj.db("production") as conn:
        conn.execute("INSERT INTO dd_note (name, create_date, write_date) VALUES ('written before', now(), now())")
    before_modules = proj.modules("production")

    # dd_note gains a column (its update commits first), then dd_mig's migration fails.
    proj.commit("main", {**dd_note("19.0.1.1", extra=LEVEL_FIELD), **dd_mig("19.0.1.1", FAILING_MIGRATION)},
                "dd_note: level; dd_mig: a migration that fails")
    report = proj.apply("main")
    [rep] = report.environments
    assert rep.result == "failed" and rep.error is not None, explain(report)
    assert rep.error["error"] == "ODOO_UPDATE_FAILED", explain(report)
    assert "restored automatically" in rep.error["message"], rep.error
    assert rep.error["restore"]["ok"] is True, rep.error
    assert "dd_mig: this migration fails on purpose" in rep.error["log_excerpt"]
    # schema and data as before the deploy, and the previous version serving them
    assert "dd_level" not in proj.columns("production", "dd_note"), "the failed update's column stayed"
    assert proj.modules("production") == before_modules
    with proj.db("production") as conn:
        assert conn.execute("SELECT name FROM dd_note").fetchall() == [("written before",)]
    assert proj.health("production") == 200
    web = proj.runtime().observe_env("production").container("web")
    assert web is not None and web.running and web.commit == first
    assert proj.scratch_of("production") == []
