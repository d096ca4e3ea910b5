"""The data workflows end to end through `odooops serve` and the CLI, as the seed writes them:
backup --verify, backups, restore (refused without --confirm on production, then swapped in),
`db restore production --backup=<prefix> --to=staging`, `db clone`, `mail`, gated
`promote staging production --confirm`, rollback with the pre-deploy backup, prune
(real Git remote, PostgreSQL, Docker, Terraform and Caddy; Odoo is the stand-in)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from reconciler.core.naming import env_name_for_branch
from reconciler.platform.env_lock import env_lock
from tests.cli import test_client_workflow as workflow
from tests.controller.test_data_apply import SHARED_LOCKS
from tests.daemon import conftest as daemon_conftest
from tests.daemon.gitserve import git, wait_for

served, remote, oca_web = daemon_conftest.served, daemon_conftest.remote, daemon_conftest.oca_web
server, cli, DEADLINE = workflow.server, workflow.cli, workflow.DEADLINE
MARKER_NAME, MARKER_EMAIL = "Zelda Marker", "zelda.marker@customer-example.com"


@pytest.fixture
def exclusive_production(services_env: dict[str, str]) -> Iterator[None]:
    """An env named production is one per PostgreSQL server: one test at a time deploys it."""
    with env_lock(SHARED_LOCKS, "production", f"tests/cli/test_data_workflow.py pid {os.getpid()}", wait_s=1200):
        with psycopg.connect(**_pg(services_env), dbname="postgres") as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'production'").fetchone():
                pytest.fail("a database named production exists on the shared server (a crashed run?): drop it "
                            "(DROP DATABASE production WITH (FORCE)) once nothing uses it", pytrace=False)
        yield


@pytest.fixture
def data_server(exclusive_production: None, server: dict[str, Any]) -> dict[str, Any]:
    """The server, set up after the production lock is taken and torn down (production destroyed)
    before it is released: another worker's production test must never see ours."""
    return server


def _pg(env: dict[str, str]) -> dict[str, Any]:
    return {"host": env["ODOOOPS_PG_HOST"], "port": int(env["ODOOOPS_PG_PORT"]), "user": env["ODOOOPS_PG_USER"],
            "password": env["ODOOOPS_PG_PASSWORD"]}


def _sql(env: dict[str, str], db: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(**_pg(env), dbname=db, autocommit=True) as conn:
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


def _envs(server: dict[str, Any], tmp_path: Path) -> dict[str, dict[str, Any]]:
    listed = cli(server, tmp_path, "env", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {e["name"]: e for e in json.loads(listed.stdout)["environments"]}


def _wait_running(server: dict[str, Any], tmp_path: Path, env: str, commit: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        e = _envs(server, tmp_path).get(env)
        if e and e["state"] == "failed" and e["commit"] == commit:
            raise AssertionError(f"{env} failed: {cli(server, tmp_path, 'env', 'show', env, '--json').stdout}")
        return e if e and e["state"] == "running" and e["commit"] == commit else None

    return wait_for(ready, DEADLINE, f"{env} running at {commit[:12]} (log: {server['log']})", step=0.5)


def _ok(proc: Any, server: dict[str, Any]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stdout + proc.stderr + server["log"].read_text()[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _refused(proc: Any, code: str) -> dict[str, Any]:
    assert proc.returncode == 3, proc.stdout + proc.stderr
    err = json.loads(proc.stdout)
    assert err["error"] == code, err
    assert err["message"] and err["remediation"] and err["docs"].endswith(code)
    return err  # type: ignore[no-any-return]


def _health(server: dict[str, Any], env: str) -> Any:
    router = server["env"]["ODOOOPS_ROUTER_HTTP"]
    return httpx.get(f"{router}/web/health", headers={"Host": f"{env}.odooops.localhost"}, timeout=10).json()


def _marker_rows(env: dict[str, str], db: str) -> int:
    return int(_sql(env, db, "SELECT count(*) FROM res_partner WHERE email = %s", MARKER_EMAIL)[0][0])


def test_backup_restore_clone_promote_rollback(data_server: dict[str, Any], remote: dict[str, Any],
                                               tmp_path: Path) -> None:
    server = data_server
    env, work = server["env"], remote["work"]
    git(work, "config", "user.email", "dev@example.com")
    git(work, "config", "user.name", "Dev")
    git(work, "checkout", "-q", "-b", "main", "origin/base")
    c1 = git(work, "rev-parse", "HEAD")
    git(work, "push", "-q", "origin", "main")
    _wait_running(server, tmp_path, "production", c1)
    _sql(env, "production", "INSERT INTO res_partner (name, display_name, email) VALUES (%s, %s, %s)",
         MARKER_NAME, MARKER_NAME, MARKER_EMAIL)
    uuid_before = _sql(env, "production", "SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'")

    # Backup, verified by a scratch restore; listed with its size and the verification.
    made = _ok(cli(server, tmp_path, "db", "backup", "production", "--verify", "--json"), server)
    backup_id = made["id"]
    assert made["ok"] is True and made["verified_at"] and made["size_bytes"] > 0
    # The CLI ran it as a job (Prefer: respond-async) and followed its phases until it ended.
    jobs = _ok(cli(server, tmp_path, "jobs", "--json"), server)["jobs"]
    job = next(j for j in jobs if j["operation"] == "db.backup" and j["target"] == "production")
    assert job["state"] == "succeeded" and job["result"]["id"] == backup_id and job["error"] is None
    names = [ph["name"] for ph in job["phases"]]
    assert "dumping the database of production" in names
    assert f"verifying backup {backup_id} in a scratch database" in names
    assert all(ph["seconds"] is not None for ph in job["phases"])
    assert _ok(cli(server, tmp_path, "jobs", job["id"], "--json"), server)["phases"] == job["phases"]
    listed = _ok(cli(server, tmp_path, "db", "backups", "production", "--json"), server)
    mine = next(b for b in listed["backups"] if b["id"] == backup_id)
    assert mine["reason"] == "manual" and mine["commit"] == c1 and mine["verification"]["ok"] is True
    table = cli(server, tmp_path, "db", "backups", "production")
    assert backup_id in table.stdout and "CREATED" in table.stdout

    # Production's data is never replaced without --confirm; then the restore brings the deleted row back.
    _sql(env, "production", "DELETE FROM res_partner WHERE email = %s", MARKER_EMAIL)
    prefix = backup_id[:16]  # `--backup=2026-12-06-01-02` style prefixes are enough when unique
    _refused(cli(server, tmp_path, "db", "restore", "production", f"--backup={prefix}", "--json"),
             "RESTORE_NEEDS_CONFIRMATION")
    assert _marker_rows(env, "production") == 0
    restored = _ok(cli(server, tmp_path, "db", "restore", "production", f"--backup={prefix}", "--confirm",
                       "--json"), server)
    assert restored["backup"] == backup_id and restored["swapped"] is True
    assert _marker_rows(env, "production") == 1 and _health(server, "production") == {"status": "pass"}
    # a restored database is the same database moved back: it keeps its uuid
    assert _sql(env, "production", "SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'") == uuid_before

    # Staging: a neutralized, masked clone of production; then the seed's restore of a production backup into it.
    release = f"release/e2e{uuid.uuid4().hex[:6]}"
    staging = env_name_for_branch(release)
    git(work, "push", "-q", "origin", f"{c1}:refs/heads/{release}")
    _wait_running(server, tmp_path, staging, c1)
    _ok(cli(server, tmp_path, "db", "restore", "production", f"--backup={prefix}", "--to=staging", "--json"), server)
    assert _marker_rows(env, staging) == 0  # masked: the customer's e-mail is not in the copy
    assert _sql(env, staging, "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'") \
        == [("true",)]
    assert _health(server, staging) == {"status": "pass"}

    # The human view of a verified backup says so (it once printed "verification None").
    human = cli(server, tmp_path, "db", "backup", "production", "--verify")
    assert human.returncode == 0, human.stderr
    assert "verification  ok (" in human.stdout and "verification None" not in human.stdout, human.stdout
    newest_verified = human.stdout.split("backup ", 1)[1].split()[0]
    cloned = _ok(cli(server, tmp_path, "db", "clone", "production", "staging", "--json"), server)
    assert cloned["status"] == "cloned" and cloned["verification"]["ok"] is True
    # From production's newest verified backup, not from the live database.
    assert cloned["source_backup"]["id"] == newest_verified and cloned["source_backup"]["taken_now"] is False
    assert _marker_rows(env, staging) == 0 and _health(server, staging) == {"status": "pass"}
    _refused(cli(server, tmp_path, "db", "clone", "staging", "production", "--json"), "CLONE_INTO_PRODUCTION_REFUSED")
    mail = _ok(cli(server, tmp_path, "mail", "staging", "--json"), server)
    assert isinstance(mail["messages"], list)

    # Promotion is gated: nothing ran the tests of this tree yet.
    err = _refused(cli(server, tmp_path, "promote", "staging", "production", "--confirm", "--json"),
                   "PROMOTION_GATE_FAILED")
    assert "tests_passed" in err["message"]

    # A change to acme_sale: tested on a feature branch, staged on the release branch, then promoted.
    (work / "addons" / "acme_sale" / "NOTES.md").write_text("quotation channels: tuned\n")
    git(work, "checkout", "-q", "-b", "release-work", c1)
    git(work, "add", "addons/acme_sale/NOTES.md")
    git(work, "commit", "-q", "-m", "acme_sale: tune channels")
    c2 = git(work, "rev-parse", "HEAD")
    feature = f"feature/e2e{uuid.uuid4().hex[:6]}"
    git(work, "push", "-q", "origin", f"{c2}:refs/heads/{feature}", f"{c2}:refs/heads/{release}")
    _wait_running(server, tmp_path, env_name_for_branch(feature), c2)
    _wait_running(server, tmp_path, staging, c2)
    _refused(cli(server, tmp_path, "promote", "staging", "production", "--json"), "PROMOTION_NEEDS_CONFIRMATION")
    assert git(remote["bare"], "rev-parse", "refs/heads/main") == c1  # nothing moved
    promoted = _ok(cli(server, tmp_path, "promote", "staging", "production", "--confirm", "--wait",
                       "--timeout", str(DEADLINE), "--json"), server)
    assert promoted["status"] == "promoted" and promoted["commit"] == c2
    assert promoted["environment"]["commit"] == c2 and git(remote["bare"], "rev-parse", "refs/heads/main") == c2
    # acme_sale changed, so production's data was backed up before its update, ready for a rollback
    pre_deploy = promoted["backup"]
    assert pre_deploy["from_commit"] == c1 and pre_deploy["to_commit"] == c2, promoted
    shown = _ok(cli(server, tmp_path, "env", "show", "production", "--json"), server)
    assert shown["pre_deploy_backup"]["id"] == pre_deploy["id"]

    # Rollback: back to c1's artifact and the data of the pre-deploy backup (the row added after it goes).
    _sql(env, "production", "INSERT INTO res_partner (name, display_name, email) VALUES ('After', 'After', %s)",
         "after.promotion@customer-example.com")
    # The restore would discard that row: refused until confirmed, the refusal names the window.
    refused = _refused(cli(server, tmp_path, "rollback", "production", "--json"), "ROLLBACK_NEEDS_CONFIRMATION")
    assert f"backup {pre_deploy['id']} was taken at" in refused["message"]
    assert "res_partner 1 created" in refused["message"] and "--confirm" in refused["remediation"]
    # acme_sale was updated by the promotion's deploy: its previous code does not fit today's database.
    code_only = _refused(cli(server, tmp_path, "rollback", "production", "--code-only", "--json"),
                         "ROLLBACK_CODE_ONLY_REFUSED")
    assert "acme_sale" in code_only["message"]
    assert _envs(server, tmp_path)["production"]["commit"] == c2  # refusals change nothing
    rolled = _ok(cli(server, tmp_path, "rollback", "production", "--confirm", "--wait", "--timeout", str(DEADLINE),
                     "--json"), server)
    assert rolled["commit"] == c1 and rolled["restored_backup"] == pre_deploy["id"]
    assert rolled["discarded"]["tables"]["res_partner"]["created"] == 1
    assert _envs(server, tmp_path)["production"]["commit"] == c1
    assert _sql(env, "production", "SELECT count(*) FROM res_partner WHERE email = %s",
                "after.promotion@customer-example.com") == [(0,)]
    assert _marker_rows(env, "production") == 1 and _health(server, "production") == {"status": "pass"}

    # Retention: production keeps 7 daily / 4 weekly / 3 monthly; today's backups collapse to the newest.
    before = _ok(cli(server, tmp_path, "db", "backups", "production", "--json"), server)["backups"]
    pruned = _ok(cli(server, tmp_path, "db", "prune", "production", "--json"), server)
    assert pruned["retention"] == {"daily": 7, "weekly": 4, "monthly": 3}
    assert set(pruned["kept"]) | set(pruned["pruned"]) == {b["id"] for b in before}
    assert len(pruned["kept"]) >= 1 and len(pruned["pruned"]) == len(before) - len(pruned["kept"])

    # Every one of these privileged operations is in the audit trail, and the chain verifies.
    audit = _ok(cli(server, tmp_path, "audit", "list", "--json"), server)
    actions = [e["action"] for e in audit["events"]]
    for action in ("db.backup", "db.restore", "db.clone", "promote", "env.rollback", "db.prune"):
        assert action in actions, actions
    assert cli(server, tmp_path, "audit", "verify").returncode == 0

    # No secret value (database roles, Odoo master passwords, catcher logins) left the encrypted store:
    # not in the state, notes, audit log, server log, Git objects or anything the CLI printed.
    from reconciler.secrets import SecretStore

    state: Path = server["state"]
    values = [v for v in SecretStore(state / "secrets", key_file=Path(env["ODOOOPS_SECRET_KEY_FILE"])).all_values()
              if len(v) >= 16]
    assert len(values) >= 6  # db_password, admin_passwd, smtp_password of three environments at least
    leaks = []
    for path in sorted(state.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(state).parts
        # By design: the encrypted store; what Odoo itself reads at run time (envs/ENV/odoo.conf and
        # the PASSWORD_FILE envs/ENV/secrets/db_password, 0400 and owned by the container's user);
        # backups and filestores are the customer's data, whose catcher row holds its own login.
        if rel[0] in ("secrets", "backups", "filestore", "templates", "envs"):
            assert rel[0] != "envs" or rel[2:] in (("odoo.conf",), ("secrets", "db_password")), rel
            continue
        data = path.read_bytes()
        leaks += [f"{path.relative_to(state)}: {v[:4]}..." for v in values if v.encode() in data]
    objects = subprocess.run(["git", "--git-dir", str(remote["bare"]), "cat-file", "--batch-all-objects", "--batch"],
                             capture_output=True, check=True).stdout
    leaks += [f"remote git objects: {v[:4]}..." for v in values if v.encode() in objects]
    leaks += [f"server log: {v[:4]}..." for v in values if v.encode() in server["log"].read_bytes()]
    assert leaks == []
