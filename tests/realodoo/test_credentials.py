"""The platform's own admin passwords on real Odoo 19, deployed through the real Applier: production refuses
`admin`/`admin` and accepts its platform password; a staging clone of it (neutralized, masked) has a
password of its own (production's is refused there); the hash is what Odoo's passlib accepts; the
credentials API and CLI return the password that really logs in, audit every read, and refuse
production's to a developer token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from reconciler.api.app import create_app
from reconciler.api.audit import AuditLog
from reconciler.api.auth import KeyRing, issue_token
from reconciler.api.rest import ApiContext
from reconciler.cli.main import main
from reconciler.controller.daemon import Daemon, DaemonConfig
from reconciler.data.admin_password import SECRET_NAME
from reconciler.service.operations import Operations
from tests.daemon.gitserve import free_port, wait_for
from tests.realodoo.platform_project import PlatformProject, explain, platform_project

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

CONFIG = """\
version: 1
odoo:
  version: "19.0"
modules: [bus]
mail_catcher: false
tiers:
  production:
    workers: 2
    cron_workers: 1
  staging:
    workers: 2
    cron_workers: 1
    data: {source: production, neutralize: true, mask: true}
"""
# Odoo's own passlib (python3-passlib in the image) judges the hash the platform wrote.
PASSLIB_CHECK = """
import os
from passlib.context import CryptContext
ctx = CryptContext(['pbkdf2_sha512', 'plaintext'], deprecated=['auto'], pbkdf2_sha512__rounds=600000)
h = os.environ['HASH']
print('identify', ctx.identify(h))
print('verify', ctx.verify(os.environ['PASSWORD'], h))
print('admin', ctx.verify('admin', h))
print('needs_update', ctx.needs_update(h))
"""


@pytest.fixture()
def project(tmp_path: Path, services_env: dict[str, str], odoo_image: str) -> Iterator[PlatformProject]:
    with platform_project(tmp_path, services_env, odoo_image, {".odooops.yaml": CONFIG}, production=True) as p:
        yield p


class Server:
    """The REST API over the project's state, served by uvicorn on loopback (what `odooops serve` runs)."""

    def __init__(self, p: PlatformProject, tmp: Path) -> None:
        self.keys = KeyRing.from_file(tmp / "api.key", create=True)
        daemon = Daemon(DaemonConfig(repo=str(p.work), state_dir=p.host.state_dir, poll_interval=3600), p.host)
        ops = Operations(daemon, p.host)
        self.audit = AuditLog(p.host.state_dir / "audit" / "audit.jsonl")
        ctx = ApiContext(keys=self.keys, ops=ops, audit=self.audit,
                         known_secrets=lambda: ops.secret_store().all_values())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(daemon, None, api=ctx), host="127.0.0.1",
                                                    port=self.port, log_level="warning", access_log=False,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "uvicorn")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def token(self, role: str, subject: str) -> str:
        return issue_token(self.keys, subject, None, 3600, role=role)

    def credentials(self, env: str, token: str) -> httpx.Response:
        return httpx.get(f"{self.url}/api/v1/environments/{env}/credentials",
                         headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def events(self, env: str) -> list[dict[str, Any]]:
        return [e for e in self.audit.entries() if e["action"] == "env.credentials" and e["target"] == env]


def _admin_hash(p: PlatformProject, db: str) -> str:
    with p.pg.connect(db) as conn:
        row = conn.execute("SELECT u.password FROM res_users u JOIN ir_model_data d ON d.res_id = u.id "
                           "AND d.model = 'res.users' WHERE d.module = 'base' AND d.name = 'user_admin'").fetchone()
    assert row and row[0], f"{db}: the admin user has no password hash"
    return str(row[0])


def test_admin_passwords_on_production_and_its_clone(project: PlatformProject, tmp_path: Path,
                                                     docker_client: docker.DockerClient, odoo_image: str) -> None:
    p = project
    report = p.apply("main")
    assert report.ok, explain(report)
    [prod] = report.environments
    assert prod.env == "production"
    database = next(s for s in prod.steps if s.name == "database")
    assert "admin password set" in database.detail, database.detail
    prod_pw = p.secrets.get("production", SECRET_NAME)
    assert prod_pw and prod_pw not in ("admin", p.secrets.get("production", "admin_passwd"))
    # Real Odoo, through the router: Odoo's default is refused, the platform's password logs in.
    assert p.login("production", "admin", "admin") is False
    assert p.login("production", "admin", prod_pw) is True

    # The hash is what Odoo's passlib writes: identified as pbkdf2_sha512, verified, no rehash needed.
    out = docker_client.containers.run(
        odoo_image, entrypoint=["python3", "-c", PASSLIB_CHECK], remove=True, labels={"odooops.test": "realodoo"},
        environment={"HASH": _admin_hash(p, "production"), "PASSWORD": prod_pw}).decode()
    assert out.split() == ["identify", "pbkdf2_sha512", "verify", "True", "admin", "False", "needs_update",
                           "False"], out

    # A staging clone of production: its own admin password; production's opens nothing there.
    branch = f"release/cr-{p.tag}"
    p.commit(branch, {"README": "staging\n"}, "staging")
    report = p.apply(branch)
    assert report.ok, explain(report)
    [stg] = report.environments
    assert "cloned from production" in next(s for s in stg.steps if s.name == "database").detail
    stg_pw = p.secrets.get(stg.env, SECRET_NAME)
    assert stg_pw and stg_pw != prod_pw
    assert p.login(stg.env, "admin", "admin") is False
    assert p.login(stg.env, "admin", prod_pw) is False
    assert p.login(stg.env, "admin", stg_pw) is True
    assert p.login("production", "admin", stg_pw) is False
    assert p.login("production", "admin", prod_pw) is True  # the clone changed nothing on production

    with Server(p, tmp_path) as api:
        dev = api.token("developer", "dev@example.com")
        r = api.credentials(stg.env, dev)
        assert r.status_code == 200, r.text
        assert r.json()["login"] == "admin" and r.json()["password"] == stg_pw and r.json()["set_in_database"]
        r = api.credentials("production", dev)
        assert r.status_code == 403 and r.json()["error"] == "PRODUCTION_ROLE_REQUIRED", r.text
        assert prod_pw not in r.text
        r = api.credentials("production", api.token("admin", "ops-admin@example.com"))
        assert r.status_code == 200 and r.json()["password"] == prod_pw, r.text
        # The CLI prints a password that really logs in.
        cli = CliRunner().invoke(main, ["env", "credentials", stg.env, "--json"],
                                 env={"ODOOOPS_SERVER": api.url, "ODOOOPS_TOKEN": dev})
        assert cli.exit_code == 0, cli.output
        shown = json.loads(cli.output)
        assert p.login(stg.env, shown["login"], shown["password"]) is True
        # Every read audited (refusals too), never with the password.
        assert [(e["actor"], e["result"]["status"]) for e in api.events(stg.env)] == [
            ("dev@example.com", "ok"), ("dev@example.com", "ok")]
        assert [(e["actor"], e["result"] if isinstance(e["result"], str) else e["result"]["status"])
                for e in api.events("production")] == [
            ("dev@example.com", "refused:PRODUCTION_ROLE_REQUIRED"), ("ops-admin@example.com", "ok")]
        audit_text = (p.host.state_dir / "audit" / "audit.jsonl").read_text()
        assert prod_pw not in audit_text and stg_pw not in audit_text
