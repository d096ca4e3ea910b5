"""The lifecycle of one project on real Odoo 19, through the real Applier (Terraform, Docker, PostgreSQL, Caddy):
production created (admin/admin refused), staging as a neutralized, masked clone (its own admin password,
no production e-mail anywhere), a dev env whose tests run, a module update whose new field reaches the
database, a refused commit (failing test) that leaves the live env unchanged and serving, a production
rollback that states what it discards, and the deletion of branch environments.

One small project (contacts + a tiny addon) keeps the real installs few. Its databases are named after
its environments: staging and dev come from uniquely named branches, and `production` (one per PostgreSQL
server) is deployed under the shared lock in .work/test-locks, like every test that deploys a production.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from reconciler.controller.apply import Applier, ApplyReport
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.core.naming import env_name_for_branch
from reconciler.data import mail
from reconciler.data.templates import TemplateRegistry
from reconciler.errors import OdooOpsError
from reconciler.executors.postgres import Postgres
from reconciler.platform.env_lock import env_lock
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore
from reconciler.service.rollback import rollback
from tests.example_repo import git

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

SHARED_LOCKS = Path(__file__).resolve().parents[2] / ".work" / "test-locks"
IMAGE = "odoo:19.0"
PII_NAME, PII_EMAIL, PII_PHONE = "Jane Realperson", "jane.realperson@lifecycle-customer.example", "+32 470 12 34 56"

CONFIG = """\
version: 1
odoo:
  version: "19.0"
addons:
  paths: [addons]
modules: [contacts, lc_note]
tests:
  tags: "/lc_note"
mail_catcher: true
branches:
  - {match: "lcdev/*", tier: dev}
tiers:
  staging:
    data: {source: production, neutralize: true, mask: true}
"""

MODEL = '''\
from odoo import fields, models


class LcNote(models.Model):
    _name = "lc.note"
    _description = "Lifecycle Note"

    name = fields.Char(required=True)
    partner_id = fields.Many2one("res.partner")
{extra}'''

PASSING_TEST = '''\
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestLcNote(TransactionCase):
    def test_note_on_a_partner(self):
        partner = self.env["res.partner"].create({"name": "Note Owner"})
        note = self.env["lc.note"].create({"name": "hello", "partner_id": partner.id})
        self.assertEqual(note.partner_id, partner)
'''
FAILING_TEST = PASSING_TEST + '''
    def test_refused_on_purpose(self):
        self.assertEqual(1 + 1, 3, "this commit must never reach the environment")
'''


def addon(version: str, extra: str = "", test: str = PASSING_TEST) -> dict[str, str]:
    return {
        "addons/lc_note/__manifest__.py": repr({
            "name": "Lifecycle Notes", "version": version, "license": "LGPL-3", "depends": ["contacts"],
            "data": ["security/ir.model.access.csv"], "installable": True}) + "\n",
        "addons/lc_note/__init__.py": "from . import models\n",
        "addons/lc_note/models/__init__.py": "from . import lc_note\n",
        "addons/lc_note/models/lc_note.py": MODEL.format(extra=extra),
        "addons/lc_note/security/ir.model.access.csv": (
            "id,name,model_id:id,group_id:id,perm_read,perm_write,perm_create,perm_unlink\n"
            "access_lc_note_user,lc.note.user,model_lc_note,base.group_user,1,1,1,1\n"),
        "addons/lc_note/tests/__init__.py": "from . import test_lc_note\n",
        "addons/lc_note/tests/test_lc_note.py": test,
    }


LEVEL_FIELD = "    lc_level = fields.Integer(default=1)\n"
REFUSED_FIELD = "    lc_refused = fields.Char()\n"


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class Lifecycle:
    """The project's work tree, host settings and helpers to look at what runs."""

    def __init__(self, tmp: Path, host: HostSettings, catcher: str) -> None:
        self.tmp, self.host, self.catcher = tmp, host, catcher
        self.work = tmp / "project"
        self.pg = Postgres.from_host(host)
        self.tag = uuid.uuid4().hex[:8]
        self.staging_branch = f"release/lc-{self.tag}"
        self.dev_branch = f"lcdev/{self.tag}"

    def commit(self, branch: str, files: dict[str, str], message: str) -> str:
        if git(self.work, "branch", "--list", branch).strip():
            git(self.work, "checkout", "-q", branch)
        else:
            git(self.work, "checkout", "-q", "-b", branch)
        for path, text in files.items():
            (self.work / path).parent.mkdir(parents=True, exist_ok=True)
            (self.work / path).write_text(text, encoding="utf-8")
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        return git(self.work, "rev-parse", "HEAD").strip()

    def project(self) -> Project:
        return Project.open(str(self.work), state_dir=self.host.state_dir)

    def apply(self, branch: str | None) -> ApplyReport:
        project = self.project()
        outcome = compute_plan(project, branches=[branch] if branch else None)
        return Applier(project, self.host, mail_catcher_name=self.catcher).apply(outcome)

    def env_of(self, report: ApplyReport) -> Any:
        [rep] = report.environments
        return rep

    def entry(self, env: str) -> dict[str, Any]:
        return self.project().store.entries()[env]

    def domain(self, env: str) -> str:
        url = str(self.entry(env)["url"])
        return url.split("://", 1)[1].split("/", 1)[0]

    def get(self, env: str, path: str) -> httpx.Response:
        return httpx.get(f"{self.host.router_http}{path}", headers={"Host": self.domain(env)}, timeout=60)

    def session(self, env: str, login: str, password: str) -> httpx.Client | None:
        """A client logged into env's Odoo through the router, or None when Odoo refuses the credentials."""
        client = httpx.Client(base_url=self.host.router_http, headers={"Host": self.domain(env)}, timeout=120)
        resp = client.post("/web/session/authenticate", json={
            "jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"db": env, "login": login, "password": password}})
        assert resp.status_code == 200, f"{env}: authenticate answered {resp.status_code}: {resp.text[:500]}"
        body = resp.json()
        if (body.get("result") or {}).get("uid"):
            return client
        client.close()
        # A refusal, not a broken endpoint: Odoo says why.
        assert "error" in body, f"{env}: unexpected authenticate answer {body}"
        return None

    def call(self, client: httpx.Client, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        resp = client.post(f"/web/dataset/call_kw/{model}/{method}", json={
            "jsonrpc": "2.0", "method": "call", "id": 2,
            "params": {"model": model, "method": method, "args": list(args), "kwargs": kwargs}})
        body = resp.json()
        assert "error" not in body, f"{model}.{method}: {body.get('error')}"
        return body["result"]

    def admin_password(self, env: str) -> str:
        password = SecretStore(self.host.state_dir / "secrets").get(env, "admin_password")
        assert password, f"no admin password for {env} in the platform's encrypted store"
        return password

    def db(self, name: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host=self.host.pg_host, port=self.host.pg_port, user=self.host.pg_admin_user,
                               password=self.host.pg_admin_password, dbname=name, autocommit=True)

    def columns(self, db: str, table: str) -> set[str]:
        with self.db(db) as conn:
            rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                                "AND table_name = %s", (table,)).fetchall()
        return {r[0] for r in rows}

    def module_version(self, db: str, module: str) -> str | None:
        with self.db(db) as conn:
            row = conn.execute("SELECT latest_version FROM ir_module_module WHERE name = %s AND state = 'installed'",
                               (module,)).fetchone()
        return row[0] if row else None

    def places_holding(self, db: str, needle: str) -> list[str]:
        """Every table.column (text, varchar, jsonb) of db whose value contains needle."""
        found = []
        with self.db(db) as conn:
            cols = conn.execute(
                "SELECT c.table_name, c.column_name FROM information_schema.columns c JOIN information_schema.tables t "
                "ON t.table_schema = c.table_schema AND t.table_name = c.table_name WHERE c.table_schema = 'public' "
                "AND t.table_type = 'BASE TABLE' AND c.data_type IN ('text', 'character varying', 'jsonb')"
            ).fetchall()
            for table, column in cols:
                hit = conn.execute(sql.SQL("SELECT 1 FROM {t} WHERE {c}::text ILIKE %s LIMIT 1").format(
                    t=sql.Identifier(table), c=sql.Identifier(column)), (f"%{needle}%",)).fetchone()
                if hit:
                    found.append(f"{table}.{column}")
        return found

    def files_holding(self, env: str, needle: str) -> list[str]:
        root = self.host.filestore_dir(env)
        hits = []
        for path in root.rglob("*") if root.exists() else []:
            if path.is_file() and needle.encode() in path.read_bytes():
                hits.append(str(path.relative_to(root)))
        return hits

    def cleanup(self) -> None:
        project = self.project()
        applier = Applier(project, self.host, mail_catcher_name=self.catcher)
        entries = project.store.entries()
        # A deploy that crashed (not a failed step) leaves no state entry: its env is found by its branch.
        branches = {env_name_for_branch(b): b for b in (self.staging_branch, self.dev_branch)}
        envs = set(entries) | set(branches)
        # Scratch and template databases first: an env's role cannot be dropped while it owns one.
        for t in TemplateRegistry(self.host.state_dir).all():
            self.pg.drop(t.db)
        for db in self.pg.list_databases("oo_"):
            with self.pg.connect() as conn:
                owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                     (db,)).fetchone()
            if owner and owner[0] in envs:
                self.pg.drop(db)
        for name in sorted(envs - {"production"}):
            entry = entries.get(name, {})
            branch = entry.get("branch", branches.get(name, ""))
            applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=branch, tier=entry.get("tier"),
                                    reason="test cleanup", old_commit=entry.get("commit")))
        mail.remove_catcher(applier.runtime, self.catcher)
        if "production" in envs:
            # Terraform refuses to drop production (by design): take it down by hand.
            applier.runtime.remove("production")
            applier.router.remove_route("production")
            self.pg.drop("production")
            with self.pg.connect() as conn:
                for role in ("production", "production__r"):
                    if self.pg.role_exists(role):
                        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture()
def lifecycle(tmp_path: Path, services_env: dict[str, str], odoo_image: str) -> Iterator[Lifecycle]:
    saved = {k: os.environ.get(k) for k in ("ODOOOPS_SECRET_KEY_FILE", "ODOOOPS_TEMPLATE_CAP_COUNT")}
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(tmp_path / "secret.key")
    os.environ["ODOOOPS_TEMPLATE_CAP_COUNT"] = "5"
    env = dict(services_env)
    env["ODOOOPS_IMAGE_OVERRIDES"] = f"{IMAGE}={odoo_image}" if odoo_image != IMAGE else ""
    env["ODOOOPS_MAIL_CATCHER_PORT"] = str(_free_port(env["ODOOOPS_PG_HOST_FROM_CONTAINERS"]))
    host = HostSettings.from_env(tmp_path / "state", env)
    lc = Lifecycle(tmp_path, host, f"odooops-mail-catcher-lc-{uuid.uuid4().hex[:8]}")
    lc.work.mkdir()
    git(lc.work, "init", "-q", "-b", "main")
    lc.commit("main", {".odooops.yaml": CONFIG, **addon("19.0.1.0.0")}, "contacts and lc_note")
    try:
        with env_lock(SHARED_LOCKS, "production", f"tests/realodoo/test_lifecycle.py pid {os.getpid()}",
                      wait_s=1800):
            # A run that deploys production without the lock (a demo) may still hold it: wait for it to end.
            deadline = time.monotonic() + 900
            while lc.pg.exists("production") and time.monotonic() < deadline:
                time.sleep(5)
            if lc.pg.exists("production"):
                pytest.fail("a database named production exists on the shared server (another test, a benchmark "
                            "or a crashed run): drop it (DROP DATABASE production WITH (FORCE)) once nothing uses "
                            "it", pytrace=False)
            try:
                yield lc
            finally:
                lc.cleanup()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp_path / "state", ignore_errors=True)


def _explain(report: ApplyReport) -> str:
    return "; ".join(f"{e.env}: {e.result} {e.error} steps={[(s.name, s.result, s.detail) for s in e.steps]}"
                     for e in report.environments)


def test_lifecycle_on_real_odoo(lifecycle: Lifecycle) -> None:
    lc = lifecycle

    # 1. Production: created from main, its admin user has the platform's password, never admin/admin.
    report = lc.apply("main")
    assert report.ok, _explain(report)
    assert lc.get("production", "/web/health").status_code == 200
    assert lc.session("production", "admin", "admin") is None, "production accepts admin/admin"
    prod_password = lc.admin_password("production")
    admin = lc.session("production", "admin", prod_password)
    assert admin is not None, "production refuses its own admin password"
    # Personal data in production, entered through Odoo itself: a contact and a text attachment about it.
    with closing(admin):
        partner_id = lc.call(admin, "res.partner", "create", {"name": PII_NAME, "email": PII_EMAIL,
                                                              "phone": PII_PHONE})
        lc.call(admin, "ir.attachment", "create", {
            "name": "call-notes.txt", "res_model": "res.partner", "res_id": partner_id, "mimetype": "text/plain",
            "datas": base64.b64encode(f"Call {PII_NAME} at {PII_PHONE} or {PII_EMAIL}\n".encode()).decode()})
    assert lc.places_holding("production", PII_EMAIL), "the contact did not reach production's database"

    # 2. Staging: a neutralized, masked clone with its own admin password; production's e-mail is nowhere.
    git(lc.work, "branch", lc.staging_branch, "main")
    report = lc.apply(lc.staging_branch)
    assert report.ok, _explain(report)
    staging = lc.env_of(report).env
    with lc.db(staging) as conn:
        neutral = conn.execute("SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
                               ).fetchone()
        copied = conn.execute("SELECT count(*) FROM res_partner WHERE id = %s", (partner_id,)).fetchone()
    assert neutral is not None and neutral[0].lower() == "true", f"staging is not neutralized: {neutral}"
    assert copied == (1,), "staging is not a copy of production (the contact's record is missing)"
    assert lc.places_holding(staging, PII_EMAIL) == [], "production's e-mail is in staging's database"
    assert lc.places_holding(staging, PII_PHONE) == [], "production's phone is in staging's database"
    assert lc.files_holding(staging, PII_EMAIL) == [], "production's e-mail is in staging's filestore"
    staging_password = lc.admin_password(staging)
    assert staging_password != prod_password
    assert lc.session(staging, "admin", "admin") is None, "staging accepts admin/admin"
    assert lc.session(staging, "admin", prod_password) is None, "staging accepts production's admin password"
    staging_admin = lc.session(staging, "admin", staging_password)
    assert staging_admin is not None, "staging refuses its own admin password"
    staging_admin.close()

    # 3. A dev environment: fresh database, the repository's tests run and pass.
    git(lc.work, "branch", lc.dev_branch, "main")
    report = lc.apply(lc.dev_branch)
    assert report.ok, _explain(report)
    rep = lc.env_of(report)
    dev = rep.env
    assert lc.entry(dev).get("tier") == "dev", lc.entry(dev).get("tier")
    assert rep.tests is not None and rep.tests["result"] == "passed", rep.tests
    assert "/lc_note" in str(rep.tests.get("tags")), rep.tests
    assert lc.session(dev, "admin", "admin") is None, "dev accepts admin/admin"
    assert lc.module_version(dev, "lc_note") == "19.0.1.0.0"

    # 4. A module update with a new field reaches the database.
    lc.commit(lc.dev_branch, addon("19.0.1.0.1", extra=LEVEL_FIELD), "lc_note: a level on notes")
    report = lc.apply(lc.dev_branch)
    assert report.ok, _explain(report)
    assert "lc_level" in lc.columns(dev, "lc_note"), "the new field's column is not in the dev database"
    assert lc.module_version(dev, "lc_note") == "19.0.1.0.1"
    serving = lc.project().store.entries()[dev]["running_commit"]
    web = Applier(lc.project(), lc.host).runtime.observe_env(dev).container("web")
    assert web is not None and web.running

    # 5. A refused commit (a failing test) leaves the live environment unchanged and serving.
    lc.commit(lc.dev_branch, addon("19.0.1.0.2", extra=LEVEL_FIELD + REFUSED_FIELD, test=FAILING_TEST),
              "lc_note: a field, and a test that fails")
    report = lc.apply(lc.dev_branch)
    assert not report.ok, "a commit whose test fails was deployed"
    rep = lc.env_of(report)
    assert rep.tests is not None and rep.tests["result"] == "failed", rep.tests
    assert "lc_refused" not in lc.columns(dev, "lc_note"), "the refused commit's update ran on the live database"
    assert lc.module_version(dev, "lc_note") == "19.0.1.0.1", "the refused commit changed the module's version"
    assert lc.get(dev, "/web/health").status_code == 200, "the env stopped serving after a refused commit"
    after = Applier(lc.project(), lc.host).runtime.observe_env(dev).container("web")
    assert after is not None and after.id == web.id and after.running, "the serving container was replaced"
    entry = lc.project().store.entries()[dev]
    assert entry.get("running_commit") == serving, "the state says another commit runs"

    # 6. Production: a module update (pre-deploy backup), a write after it, then a rollback that says what it
    #    discards, and puts back the code and the data of before the update.
    lc.commit("main", addon("19.0.1.0.1", extra=LEVEL_FIELD), "lc_note: a level on notes")
    report = lc.apply("main")
    assert report.ok, _explain(report)
    assert "lc_level" in lc.columns("production", "lc_note")
    admin = lc.session("production", "admin", prod_password)
    assert admin is not None
    with closing(admin):
        late_id = lc.call(admin, "res.partner", "create", {"name": "Written After The Deploy"})
    # Without confirmation the rollback only states what it would discard, and changes nothing.
    with pytest.raises(OdooOpsError) as refused:
        rollback(lc.project(), lc.host, "production", actor="test")
    assert refused.value.code == "ROLLBACK_NEEDS_CONFIRMATION", refused.value.to_dict()
    assert "res_partner 1 created" in refused.value.message, refused.value.message
    assert refused.value.details["window"]["tables"]["res_partner"]["created"] == 1, refused.value.details
    assert "lc_level" in lc.columns("production", "lc_note"), "an unconfirmed rollback changed production"
    result = rollback(lc.project(), lc.host, "production", actor="test", confirm=True)
    assert result["status"] == "rolled_back", result
    assert result["discarded"] and "res_partner 1 created" in result["discarded"]["text"], result["discarded"]
    assert result["restored_backup"], f"the rollback restored no pre-deploy backup: {result}"
    assert "lc_level" not in lc.columns("production", "lc_note"), "the rollback left the update's column"
    with lc.db("production") as conn:
        late = conn.execute("SELECT count(*) FROM res_partner WHERE id = %s", (late_id,)).fetchone()
        kept = conn.execute("SELECT count(*) FROM res_partner WHERE id = %s", (partner_id,)).fetchone()
    assert late == (0,) and kept == (1,), (late, kept)
    assert lc.get("production", "/web/health").status_code == 200

    # 7. Delete: branches removed, their environments go (database, containers, route); production stays.
    git(lc.work, "checkout", "-q", "main")
    git(lc.work, "branch", "-D", lc.staging_branch, lc.dev_branch)
    report = lc.apply(None)
    destroyed = {e.env for e in report.environments if e.action == "destroy"}
    assert {staging, dev} <= destroyed, _explain(report)
    runtime = Applier(lc.project(), lc.host).runtime
    for env in (staging, dev):
        assert not lc.pg.exists(env), f"{env}'s database is still there"
        assert runtime.observe_env(env).containers == (), f"{env}'s containers are still there"
        resp = httpx.get(f"{lc.host.router_http}/web/health", headers={"Host": f"{env}.{lc.host.base_domain}"},
                         timeout=30)
        assert resp.status_code == 404, f"{env} is still routed ({resp.status_code})"
    assert lc.get("production", "/web/health").status_code == 200
