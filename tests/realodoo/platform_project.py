"""A small Odoo project deployed the product's way (the real Applier: Terraform, Docker, PostgreSQL, Caddy) on
real Odoo 19, for tests that check what a deployed environment answers through the router."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from psycopg import sql

from reconciler.controller.apply import Applier, ApplyReport
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.data.templates import TemplateRegistry
from reconciler.executors.postgres import Postgres
from reconciler.platform.env_lock import env_lock
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore
from tests.example_repo import git

IMAGE = "odoo:19.0"
SHARED_LOCKS = Path(__file__).resolve().parents[2] / ".work" / "test-locks"


class PlatformProject:
    """A project work tree (the Git remote the platform reads), its host settings and what it deployed."""

    def __init__(self, tmp: Path, host: HostSettings) -> None:
        self.tmp, self.host = tmp, host
        self.work = tmp / "project"
        self.pg = Postgres.from_host(host)
        self.tag = uuid.uuid4().hex[:8]

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

    def applier(self) -> Applier:
        return Applier(self.project(), self.host)

    def apply(self, branch: str) -> ApplyReport:
        project = self.project()
        return Applier(project, self.host).apply(compute_plan(project, branches=[branch]))

    @property
    def secrets(self) -> SecretStore:
        return SecretStore(self.host.state_dir / "secrets")

    def entry(self, env: str) -> dict[str, Any]:
        return self.project().store.entries()[env]

    def domain(self, env: str) -> str:
        return str(self.entry(env)["url"]).split("://", 1)[1].split("/", 1)[0]

    def login(self, env: str, login: str, password: str) -> bool:
        """Odoo's /web/session/authenticate through the router: True when Odoo returns a user id."""
        resp = httpx.post(f"{self.host.router_http}/web/session/authenticate", headers={"Host": self.domain(env)},
                          json={"jsonrpc": "2.0", "method": "call", "id": 1,
                                "params": {"db": env, "login": login, "password": password}}, timeout=120)
        assert resp.status_code == 200, f"{env}: authenticate answered {resp.status_code}: {resp.text[:500]}"
        body = resp.json()
        if (body.get("result") or {}).get("uid"):
            return True
        # A refusal, not a broken endpoint: Odoo says the credentials are wrong.
        assert "AccessDenied" in str(body.get("error")), f"{env}: unexpected authenticate answer {body}"
        return False

    def cleanup(self) -> None:
        project = self.project()
        applier = Applier(project, self.host)
        envs = set(project.store.entries())
        # Scratch and template databases first: an env's role cannot be dropped while it owns one.
        for t in TemplateRegistry(self.host.state_dir).all():
            self.pg.drop(t.db)
        for db in self.pg.list_databases("oo_"):
            with self.pg.connect() as conn:
                owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                     (db,)).fetchone()
            if owner and owner[0] in envs:
                self.pg.drop(db)
        for name, entry in project.store.entries().items():
            if name == "production":
                continue
            applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                    tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))
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


@contextmanager
def platform_project(tmp_path: Path, services_env: dict[str, str], odoo_image: str, files: dict[str, str],
                     *, production: bool) -> Iterator[PlatformProject]:
    """The project with `files` committed on main, its own state, secret key and Caddy routes; everything it
    deployed is removed afterwards. production=True holds the shared lock every test that deploys the
    (one per PostgreSQL server) `production` database takes."""
    saved = {k: os.environ.get(k) for k in ("ODOOOPS_SECRET_KEY_FILE", "ODOOOPS_TEMPLATE_CAP_COUNT")}
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(tmp_path / "secret.key")
    os.environ["ODOOOPS_TEMPLATE_CAP_COUNT"] = "5"
    env = dict(services_env)
    env["ODOOOPS_IMAGE_OVERRIDES"] = f"{IMAGE}={odoo_image}" if odoo_image != IMAGE else ""
    host = HostSettings.from_env(tmp_path / "state", env)
    proj = PlatformProject(tmp_path, host)
    proj.work.mkdir()
    git(proj.work, "init", "-q", "-b", "main")
    proj.commit("main", files, "project")
    try:
        if production:
            with env_lock(SHARED_LOCKS, "production", f"{__name__} pid {os.getpid()}", wait_s=1800):
                if proj.pg.exists("production"):
                    raise AssertionError(
                        "a database named production exists on the shared server (another test, a benchmark or "
                        "a crashed run): drop it (DROP DATABASE production WITH (FORCE)) once nothing uses it")
                try:
                    yield proj
                finally:
                    proj.cleanup()
        else:
            try:
                yield proj
            finally:
                proj.cleanup()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp_path / "state", ignore_errors=True)


def explain(report: ApplyReport) -> str:
    return "; ".join(f"{e.env}: {e.result} {e.error} steps={[(s.name, s.result, s.detail) for s in e.steps]}"
                     for e in report.environments)
