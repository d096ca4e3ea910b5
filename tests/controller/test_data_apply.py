"""Apply's data paths end to end: staging as a neutralized, masked clone of production, template databases for
dev envs, the pre-deploy backup of production, and the mail catcher (real PostgreSQL, engine, Caddy, stand-in)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pygit2
import pytest

from reconciler.controller.apply import Applier, ApplyReport
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.data.templates import TemplateKey, TemplateRegistry
from reconciler.executors.postgres import Postgres
from reconciler.platform.env_lock import env_lock
from reconciler.platform.host import HostSettings
from reconciler.sources.notes import read_note
from tests.example_repo import build_example, commit_file, git

PII_NAME, PII_EMAIL, PII_PHONE = "Jane Realperson", "jane.realperson@customer-example.com", "+32 470 12 34 56"
# Envs named "production" are one per PostgreSQL server: tests that deploy it take this lock.
SHARED_LOCKS = Path(__file__).resolve().parents[2] / ".work" / "test-locks"


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _db(host: HostSettings, db: str) -> psycopg.Connection[Any]:
    return psycopg.connect(host=host.pg_host, port=host.pg_port, user=host.pg_admin_user,
                           password=host.pg_admin_password, dbname=db, autocommit=True)


def _param(host: HostSettings, db: str, key: str) -> str | None:
    with _db(host, db) as conn:
        row = conn.execute("SELECT value FROM ir_config_parameter WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


class World:
    def __init__(self, tmp: Path, host: HostSettings, catcher: str) -> None:
        self.tmp, self.host, self.catcher = tmp, host, catcher
        self.work = tmp / "project"
        self.state = tmp / "state"
        self.pg = Postgres.from_host(host)
        self.envs: set[str] = set()  # the uniquely named envs this module made (cleanup drops their scratch dbs)

    def project(self) -> Project:
        return Project.open(str(self.work), state_dir=self.state)

    def applier(self) -> Applier:
        return Applier(self.project(), self.host, mail_catcher_name=self.catcher)

    def apply(self, branch: str, host: HostSettings | None = None, ok: bool = True,
              retry_failed: bool = False) -> ApplyReport:
        project = self.project()
        outcome = compute_plan(project, branches=[branch])
        report = Applier(project, host or self.host, mail_catcher_name=self.catcher,
                         retry_failed=retry_failed).apply(outcome)
        assert report.ok is ok, [(e.env, e.error, [s.to_json() for s in e.steps]) for e in report.environments]
        return report

    def step(self, report: ApplyReport, env: str, name: str) -> str:
        [rep] = [e for e in report.environments if e.env == env]
        return next(s.detail for s in rep.steps if s.name == name)

    def health(self, env: str) -> httpx.Response:
        return httpx.get(f"{self.host.router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"})

    def cleanup(self) -> None:
        applier = self.applier()
        # Scratch and template databases first: an env's role cannot be dropped while it owns one.
        for t in TemplateRegistry(self.state).all():
            self.pg.drop(t.db)
        for db in self.pg.list_databases("oo_"):
            with self.pg.connect() as conn:
                owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                     (db,)).fetchone()
            if owner and owner[0] in self.envs:
                self.pg.drop(db)
        for name, entry in applier.project.store.entries().items():
            if name == "production":
                continue
            applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                    tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))
        from reconciler.data import mail
        mail.remove_catcher(applier.runtime, self.catcher)
        if "production" not in applier.project.store.entries():
            return
        # Terraform refuses to drop production (by design): take it down by hand.
        applier.runtime.remove("production")
        applier.router.remove_route("production")
        self.pg.drop("production")
        with self.pg.connect() as conn:
            if self.pg.role_exists("production"):
                conn.execute("DROP OWNED BY production")
                conn.execute("DROP ROLE production")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str],
          standin_image: str) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("data-apply")
    saved = {k: os.environ.get(k) for k in ("ODOOOPS_SECRET_KEY_FILE", "ODOOOPS_TEMPLATE_CAP_COUNT")}
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(tmp / "secret.key")
    os.environ["ODOOOPS_TEMPLATE_CAP_COUNT"] = "5"  # on here even if a suite-wide setting turns templates off
    env = dict(services_env)
    env["ODOOOPS_IMAGE_OVERRIDES"] = f"odoo:19.0={standin_image}"
    env["ODOOOPS_GIT_MIRRORS"] = f"https://github.com/OCA/web.git={(tmp / 'oca-web.git').as_uri()}"
    env["ODOOOPS_MAIL_CATCHER_PORT"] = str(_free_port(env["ODOOOPS_PG_HOST_FROM_CONTAINERS"]))
    host = HostSettings.from_env(tmp / "state", env)
    w = World(tmp, host, f"odooops-mail-catcher-{uuid.uuid4().hex[:8]}")
    build_example(w.work, bare=False, oca_dest=tmp / "oca-web.git")
    with env_lock(SHARED_LOCKS, "production", f"tests/controller/test_data_apply.py pid {os.getpid()}", wait_s=900):
        if w.pg.exists("production"):
            pytest.fail("a database named production exists on the shared server (another test or a crashed "
                        "run): drop it (DROP DATABASE production WITH (FORCE)) once nothing uses it", pytrace=False)
        try:
            yield w
        finally:
            w.cleanup()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            shutil.rmtree(tmp, ignore_errors=True)


def _branch(world: World, base: str, prefix: str) -> tuple[str, str]:
    """A uniquely named branch from `base` (env names are shared by everything on the server)."""
    branch = f"{prefix}/t{uuid.uuid4().hex[:8]}"
    git(world.work, "branch", branch, base)
    project = world.project()
    env = next(s.name for s in compute_plan(project, branches=[branch]).plan.environments if s.branch == branch)
    world.envs.add(env)
    return branch, env


@pytest.fixture(scope="module")
def production(world: World) -> dict[str, Any]:
    """Production deployed from main, then given a customer with personal data."""
    report = world.apply("main")
    assert world.health("production").json() == {"status": "pass"}
    assert "kept as template" not in world.step(report, "production", "database")  # production is never a template
    with _db(world.host, "production") as conn:
        conn.execute("INSERT INTO res_partner (name, display_name, email, phone, street, city) "
                     "VALUES (%s, %s, %s, %s, 'Rue de la Loi 16', 'Brussels')",
                     (PII_NAME, PII_NAME, PII_EMAIL, PII_PHONE))
        conn.execute("UPDATE ir_mail_server SET active = true")
        conn.execute("INSERT INTO ir_mail_server (name, smtp_host, smtp_port, active) "
                     "VALUES ('customer relay', 'smtp.customer-example.com', 587, true)")
    return {"commit": report.environments[0].commit, "uuid": _param(world.host, "production", "database.uuid")}


def test_staging_without_production_is_fresh_and_says_so(world: World) -> None:
    """Runs before production exists (module order): no silent fallback."""
    assert "production" not in world.project().store.entries()
    branch, env = _branch(world, "release/1.0", "release")
    report = world.apply(branch)
    detail = world.step(report, env, "database")
    assert "no running production environment to clone" in detail, detail
    data = world.project().store.entries()[env]["data"]
    assert data["source"] == "fresh" and data["fallback_from"] == "production"
    assert _param(world.host, env, "database.is_neutralized") is None
    assert world.health(env).json() == {"status": "pass"}


def test_staging_is_a_neutralized_masked_clone_of_production(world: World, production: dict[str, Any]) -> None:
    branch, env = _branch(world, "release/1.0", "release")
    report = world.apply(branch)
    detail = world.step(report, env, "database")
    assert "cloned from production" in detail and "neutralized, masked, verified" in detail, detail
    host = world.host
    assert _param(host, env, "database.is_neutralized") == "true"
    assert _param(host, env, "database.uuid") not in (None, production["uuid"])
    with _db(host, env) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM res_partner").fetchall()]
        emails = [r[0] for r in conn.execute("SELECT email FROM res_partner WHERE email IS NOT NULL").fetchall()]
        servers = conn.execute("SELECT smtp_host, smtp_port FROM ir_mail_server WHERE active").fetchall()
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
                             ).fetchone()
    assert PII_NAME not in names and PII_EMAIL not in emails and len(names) >= 2
    # the only active outgoing server is the platform's catcher
    assert servers == [(host.mail_catcher_host, host.mail_catcher_port)]
    assert owner == (env,)
    # production itself is untouched
    with _db(host, "production") as conn:
        assert conn.execute("SELECT count(*) FROM res_partner WHERE email = %s", (PII_EMAIL,)).fetchone() == (1,)
    assert world.health(env).json() == {"status": "pass"}
    entry = world.project().store.entries()[env]
    note = read_note(pygit2.Repository(str(world.work)), entry["commit"])["environments"][env]
    for data in (entry["data"], note["data"]):
        assert data["source"] == "production" and data["production_commit"] == production["commit"]
        assert data["cloned_at"] and data["verification"]
    # odoo.conf authenticates at the catcher as the env; the password is no marker left behind
    conf = (host.env_dir(env) / "odoo.conf").read_text()
    from reconciler.data.mail import banner, smtp_credentials
    from reconciler.secrets import SecretStore

    password = smtp_credentials(SecretStore(world.state / "secrets"), env)[1]
    assert f"smtp_user = {env}\nsmtp_password = {password}\n" in conf and "@@secret" not in conf
    assert banner(host.mail_catcher_host, host.mail_catcher_port)  # the catcher answers where odoo.conf points
    # the mail server row of the copy logs in at the catcher as this env, and what it sends is captured
    import smtplib
    from email.message import EmailMessage

    from reconciler.data.mail import list_messages

    with _db(host, env) as conn:
        [(s_host, s_port, s_user, s_pass)] = conn.execute(
            "SELECT smtp_host, smtp_port, smtp_user, smtp_pass FROM ir_mail_server WHERE active").fetchall()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "odoo@example.com", "someone@example.com", f"hello from {env}"
    msg.set_content("captured, never delivered")
    with smtplib.SMTP(s_host, s_port, timeout=30) as smtp:
        smtp.login(s_user, s_pass)
        smtp.send_message(msg)
    assert [m["subject"] for m in list_messages(host, env)] == [f"hello from {env}"]
    # no secret value reached the state file or the notes
    state_text = "".join(f.read_bytes().decode("latin-1") for f in world.state.rglob("state.sqlite*"))
    notes_text = git(world.work, "log", "-p", "refs/notes/odooops")
    for value in SecretStore(world.state / "secrets").all_values():
        assert value not in state_text and value not in notes_text
    # a redeploy keeps the fact that this database is a copy of production
    commit_file(world.work, branch, "addons/acme_sale/models/extra.py", "# staging change\n", "touch acme_sale")
    report2 = world.apply(branch)
    assert "updated acme_sale" in world.step(report2, env, "database")
    assert world.project().store.entries()[env]["data"]["source"] == "production"


def test_feature_envs_from_production_share_a_masked_snapshot(world: World, production: dict[str, Any]) -> None:
    """Ephemeral envs built from production: the first neutralizes and masks a clone and keeps it as a
    snapshot; the next copies the snapshot and gets its own URL, catcher login and identity."""
    from reconciler.data.mail import smtp_credentials
    from reconciler.secrets import SecretStore

    git(world.work, "checkout", "-q", "release/1.0")
    config = (world.work / ".odooops.yaml").read_text()
    prod_data = config.replace("tiers:\n", "tiers:\n  ephemeral:\n    data: {source: production, neutralize: true, "
                               "mask: true}\n", 1)
    assert prod_data != config
    base = f"feature/snap{uuid.uuid4().hex[:6]}"
    commit_file(world.work, base, ".odooops.yaml", prod_data, "ephemeral envs start from production")
    branch_a, env_a = _branch(world, base, "feature")
    detail_a = world.step(world.apply(branch_a), env_a, "database")
    assert "cloned from production's backup" in detail_a and "kept as production snapshot" in detail_a, detail_a
    [snap] = [t for t in TemplateRegistry(world.state).all() if t.built_by == env_a]
    assert snap.key.startswith("prod-") and snap.commit == production["commit"] and snap.inputs["verified"]["ok"]
    with _db(world.host, snap.db) as conn:  # no environment's catcher login is kept in the snapshot
        assert conn.execute("SELECT count(*) FROM ir_mail_server WHERE smtp_user IS NOT NULL").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM res_partner WHERE email = %s", (PII_EMAIL,)).fetchone() == (0,)
    with world.pg.connect() as conn:
        assert conn.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')", (env_a, snap.db)).fetchone() == (False,)

    branch_b, env_b = _branch(world, base, "feature")
    report_b = world.apply(branch_b)
    detail_b = world.step(report_b, env_b, "database")
    assert f"cloned from production snapshot {snap.db}" in detail_b, detail_b
    assert report_b.environments[0].tests["result"] == "passed"
    assert world.health(env_b).json() == {"status": "pass"}
    host = world.host
    uuids = {_param(host, db, "database.uuid") for db in ("production", env_a, env_b)}
    assert len(uuids) == 3 and None not in uuids
    assert _param(host, env_b, "database.is_neutralized") == "true"
    assert _param(host, env_b, "web.base.url") == f"http://{env_b}.odooops.localhost"
    user, password = smtp_credentials(SecretStore(world.state / "secrets"), env_b)
    with _db(host, env_b) as conn:
        servers = conn.execute("SELECT smtp_host, smtp_port, smtp_user, smtp_pass FROM ir_mail_server WHERE active"
                               ).fetchall()
        leaked = conn.execute("SELECT count(*) FROM res_partner WHERE email = %s OR name = %s",
                              (PII_EMAIL, PII_NAME)).fetchone()
        owners = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> %s", (env_b,)).fetchone()
    assert servers == [(host.mail_catcher_host, host.mail_catcher_port, user, password)]
    assert leaked == (0,) and owners == (0,)
    data = world.project().store.entries()[env_b]["data"]
    assert data["source"] == "production" and data["snapshot"] == snap.db and data["verification"]["ok"]

    # a snapshot older than ODOOOPS_SNAPSHOT_MAX_AGE_S is dropped and a fresh one is taken
    os.environ["ODOOOPS_SNAPSHOT_MAX_AGE_S"] = "0.001"
    try:
        branch_c, env_c = _branch(world, base, "feature")
        detail_c = world.step(world.apply(branch_c), env_c, "database")
    finally:
        os.environ.pop("ODOOOPS_SNAPSHOT_MAX_AGE_S")
    assert "cloned from production's backup" in detail_c and "kept as production snapshot" in detail_c, detail_c
    assert not world.pg.exists(snap.db)


def test_second_dev_env_is_a_template_clone(world: World) -> None:
    branch_a, env_a = _branch(world, "develop", "feature")
    report_a = world.apply(branch_a)
    detail_a = world.step(report_a, env_a, "database")
    assert "initialised with" in detail_a and "kept as template" in detail_a, detail_a
    [tpl] = [t for t in TemplateRegistry(world.state).all() if t.built_by == env_a]
    assert tpl.inputs["demo"] is True and world.pg.exists(tpl.db)
    # nobody but the platform may connect to the template
    with world.pg.connect() as conn:
        acl = conn.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')", (env_a, tpl.db)).fetchone()
    assert acl == (False,)

    branch_b, env_b = _branch(world, "develop", "feature")
    report_b = world.apply(branch_b)
    detail_b = world.step(report_b, env_b, "database")
    assert f"cloned from template {tpl.db}" in detail_b, detail_b
    [rep_b] = report_b.environments
    assert rep_b.tests and rep_b.tests["result"] == "passed"
    assert world.health(env_b).json() == {"status": "pass"}
    host = world.host
    uuid_a, uuid_b = _param(host, env_a, "database.uuid"), _param(host, env_b, "database.uuid")
    assert uuid_a and uuid_b and uuid_a != uuid_b
    assert _param(host, env_a, "database.secret") != _param(host, env_b, "database.secret")
    with _db(host, env_b) as conn:
        foreign = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> %s", (env_b,)).fetchone()
        demo = conn.execute("SELECT count(*) FROM ir_module_module WHERE demo").fetchone()
    assert foreign == (0,) and demo and demo[0] > 0  # owned by its own role; demo data as fresh_demo asks
    assert world.project().store.entries()[env_b]["data"]["source"] == "template"

    # a branch whose module changed since the template's commit: clone, then -u of just that module
    branch_d, env_d = _branch(world, "develop", "feature")
    commit_file(world.work, branch_d, "addons/acme_sale/models/extra.py", "# dev change\n", "touch acme_sale")
    report_d = world.apply(branch_d)
    detail_d = world.step(report_d, env_d, "database")
    assert f"cloned from template {tpl.db}" in detail_d and "updated acme_sale" in detail_d, detail_d
    assert report_d.environments[0].modules["update"] == ["acme_sale"]

    # the key follows its inputs: another image or module set is another template
    entry = world.project().store.entries()[env_b]
    key = TemplateKey.make(**{**tpl.inputs, "external": [tuple(e) for e in tpl.inputs["external"]]})
    assert key.id == tpl.key
    assert TemplateRegistry(world.state).lookup(dataclasses.replace(key, image_id="sha256:other")) is None
    more = TemplateKey.make(**{**key.to_json(), "modules": [*entry["settings"]["modules"], "contacts"],
                               "external": list(key.external)})
    assert more.id != key.id and TemplateRegistry(world.state).lookup(more) is None

    # a template database dropped behind the registry's back: the next env installs and keeps a new one
    world.pg.drop(tpl.db)
    branch_c, env_c = _branch(world, "develop", "feature")
    detail_c = world.step(world.apply(branch_c), env_c, "database")
    assert "initialised with" in detail_c and "kept as template" in detail_c, detail_c
    [tpl2] = [t for t in TemplateRegistry(world.state).all() if t.key == tpl.key]
    assert tpl2.db != tpl.db and world.pg.exists(tpl2.db)


def test_production_update_takes_a_pre_deploy_backup_first(world: World, production: dict[str, Any]) -> None:
    from reconciler.data.backup import list_backups
    from reconciler.data.context import DataContext

    manifest_path = world.work / "addons" / "acme_sale" / "__manifest__.py"
    git(world.work, "checkout", "-q", "main")
    text = manifest_path.read_text()
    with _db(world.host, "production") as conn:
        [(old_version,)] = conn.execute("SELECT latest_version FROM ir_module_module WHERE name = 'acme_sale'"
                                        ).fetchall()
    bumped = text.replace(f'"version": "{old_version}"', '"version": "19.0.9.9"')
    assert bumped != text, (old_version, text[:300])
    new = commit_file(world.work, "main", "addons/acme_sale/__manifest__.py", bumped, "acme_sale 19.0.9.9")

    # a backup store that cannot be written: the deploy fails before the database is touched
    blocker = world.tmp / "not-a-directory"
    blocker.write_text("")
    broken = dataclasses.replace(world.host, backup_store={"local": str(blocker / "store")})
    failed = world.apply("main", host=broken, ok=False)
    [rep] = failed.environments
    assert rep.error and rep.error["error"] == "BACKUP_BEFORE_DEPLOY_FAILED", rep.error
    assert [s.name for s in rep.steps][-1] == "database" and rep.steps[-1].result == "failed"
    with _db(world.host, "production") as conn:
        assert conn.execute("SELECT latest_version FROM ir_module_module WHERE name = 'acme_sale'"
                            ).fetchone() == (old_version,)
    assert world.health("production").json() == {"status": "pass"}
    entry = world.project().store.entries()["production"]
    assert entry["state"] == "failed" and entry["running_commit"] == production["commit"]

    report = world.apply("main", retry_failed=True)
    detail = world.step(report, "production", "database")
    assert "updated acme_sale" in detail and "pre-deploy backup" in detail, detail
    with _db(world.host, "production") as conn:
        assert conn.execute("SELECT latest_version FROM ir_module_module WHERE name = 'acme_sale'"
                            ).fetchone() == ("19.0.9.9",)
    entry = world.project().store.entries()["production"]
    backup = entry["pre_deploy_backup"]
    assert backup["from_commit"] == production["commit"] and backup["to_commit"] == new
    ctx = DataContext.for_project(world.project(), world.host)
    listed = {getattr(m, "id", None) or m.get("id"): m for m in list_backups(ctx, "production")}
    assert backup["id"] in listed
    manifest = listed[backup["id"]]
    as_dict = manifest if isinstance(manifest, dict) else dataclasses.asdict(manifest)
    assert as_dict.get("reason") == "pre-deploy" and as_dict.get("commit") == production["commit"]
    note = read_note(pygit2.Repository(str(world.work)), new)["environments"]["production"]
    assert note["pre_deploy_backup"]["id"] == backup["id"]
    # nothing changed: no module update, so no new backup
    report2 = world.apply("main")
    assert report2.environments == [] or "pre-deploy" not in world.step(report2, "production", "database")
    assert len(list_backups(ctx, "production")) == len(listed)
