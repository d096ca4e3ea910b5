"""Database isolation on the real PostgreSQL: every database the platform makes or swaps in is reachable by its
own environment's role alone, from inside containers too, and the access sweep repairs one that is not."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
from psycopg import sql

from reconciler.data import access_sweep
from reconciler.data.context import DataContext
from reconciler.data.restore import pg_restore
from reconciler.data.scratch import old_name, scratch_name
from reconciler.data.swap import Undo, swap_databases
from reconciler.data.templates import TemplateRegistry, keep_copy
from reconciler.executors.postgres import Postgres
from tests.data.conftest import env_name

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODULE_SCRIPT = REPO / "infra" / "terraform" / "modules" / "local" / "scripts" / "odooops-local.sh"
# What a refusal looks like: the database's ACL (CONNECT) or pg_hba (no entry, or a reject line).
REFUSED = ("permission denied for database", "no pg_hba.conf entry", "pg_hba.conf rejects")

# Runs inside a container: connect to each database named on the command line as $PGUSER, print the outcomes.
PROBE = r"""
import json, os, sys
import psycopg2
out = {}
for db in sys.argv[1:]:
    try:
        psycopg2.connect(dbname=db, connect_timeout=20).close()
        out[db] = "ok"
    except psycopg2.Error as exc:
        out[db] = str(exc).strip()
print(json.dumps(out))
"""


@dataclass
class Cluster:
    """Roles and databases made on the shared server by one test, all removed at its end."""

    pg: Postgres
    services_env: dict[str, str]
    roles: list[str] = field(default_factory=list)
    dbs: list[str] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)

    def module(self, action: str, **env: str) -> None:
        """One action of the Terraform module's provisioner script, as Terraform runs it."""
        p = self.pg.params
        run_env = {**os.environ, "PGHOST": str(p["host"]), "PGPORT": str(p["port"]), "PGUSER": str(p["user"]),
                   "ODOOOPS_PG_ADMIN_PASSWORD": str(p["password"]), "OO_ADMIN_DATABASE": "postgres",
                   "OO_PSQL": str(Path(self.services_env["ODOOOPS_PG_BIN"]) / "psql"), **env}
        proc = subprocess.run(["sh", str(MODULE_SCRIPT), action], env=run_env, capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, f"{action}: {proc.stderr}"

    def env(self, prefix: str, database: bool = True) -> str:
        """An environment as the Terraform module makes one: its login role and (optionally) its database."""
        name = env_name(prefix)
        self.roles.append(name)
        self.passwords[name] = secrets.token_hex(16)
        self.module("role-create", OO_ROLE=name)
        self.module("role-config", OO_ROLE=name, OO_ROLE_PASSWORD=self.passwords[name], OO_CONNECTION_LIMIT="20")
        if database:
            self.dbs.append(name)
            self.module("db-create", OO_ROLE=name, OO_DATABASE=name)
        return name

    def login(self, env: str) -> str:
        """The rotation login of an environment (a member of its role), as the module makes it."""
        login = env + "__r"
        self.roles.insert(0, login)
        self.passwords[login] = secrets.token_hex(16)
        self.module("login-create", OO_LOGIN=login, OO_ROLE=env)
        self.module("login-config", OO_LOGIN=login, OO_ROLE_PASSWORD=self.passwords[login], OO_CONNECTION_LIMIT="20")
        return login

    def connect(self, role: str, db: str) -> psycopg.Connection[Any]:
        return psycopg.connect(dbname=db, autocommit=True,
                               **{**self.pg.params, "user": role, "password": self.passwords[role]})

    def cleanup(self) -> None:
        for db in self.dbs:
            self.pg.drop(db)
        with self.pg.connect() as conn:
            for role in self.roles:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture()
def cluster(pg: Postgres, services_env: dict[str, str]) -> Iterator[Cluster]:
    c = Cluster(pg, services_env)
    yield c
    c.cleanup()


def refused(outcome: str) -> bool:
    return any(marker in outcome for marker in REFUSED)


def grantees(pg: Postgres, db: str) -> dict[str, tuple[str, ...]]:
    """{grantee or "PUBLIC": privileges, "owner": (owner,)} from the catalogue (a NULL ACL is the default one)."""
    with pg.connect() as conn:
        rows = conn.execute(
            "SELECT coalesce(pg_get_userbyid(NULLIF(a.grantee, 0)), 'PUBLIC'), array_agg(a.privilege_type::text "
            "ORDER BY a.privilege_type), pg_get_userbyid(d.datdba) FROM pg_database d, "
            "aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname = %s GROUP BY 1, 3",
            (db,)).fetchall()
    return {r[0]: tuple(r[1]) for r in rows} | {"owner": (rows[0][2],)}


def assert_only(cluster: Cluster, db: str, role: str, others: list[str]) -> None:
    """`db` belongs to `role`, which alone may connect (from the host: the ACL is the barrier here)."""
    access = grantees(cluster.pg, db)
    assert access["owner"] == (role,) and set(access) == {"owner", role}, access
    with cluster.connect(role, db) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (db,)
    for other in others:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            cluster.connect(other, db).close()


def dump_of(ctx: DataContext, db: str, dest: Path) -> Path:
    env = {**os.environ, "PGHOST": ctx.host.pg_host, "PGPORT": str(ctx.host.pg_port),
           "PGUSER": ctx.host.pg_admin_user, "PGPASSWORD": ctx.host.pg_admin_password}
    subprocess.run([ctx.host.pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl", "--dbname", db,
                    "--file", str(dest)], env=env, check=True, capture_output=True)
    return dest


def fill(cluster: Cluster, env: str, secret: str) -> None:
    with cluster.connect(env, env) as conn:
        conn.execute("CREATE TABLE res_partner (id serial PRIMARY KEY, name text)")
        conn.execute("INSERT INTO res_partner (name) VALUES (%s)", (secret,))


# ---------------------------------------------------------------------- made secured, from the host


def test_a_restored_database_is_reachable_by_its_environment_alone(cluster: Cluster, ctx: DataContext,
                                                                   tmp_path: Path) -> None:
    prod, target, other = cluster.env("prod"), cluster.env("stage", database=False), cluster.env("pr")
    fill(cluster, prod, "Margaret Hamilton")
    dump = dump_of(ctx, prod, tmp_path / "prod.dump")
    db = scratch_name("restore")
    cluster.dbs.append(db)
    pg_restore(ctx, dump, db, target)
    assert_only(cluster, db, target, [other, prod])
    # A scratch copy is not named after its role: an access role of its name lets pg_hba's samerole through.
    with cluster.pg.connect() as conn:
        assert conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER'), pg_has_role(%s, %s, 'MEMBER')",
                            (target, db, other, db)).fetchone() == (True, False)
    # The platform's own restores (backup checks, production's copies) are the platform's alone.
    internal = scratch_name("verify")
    cluster.dbs.append(internal)
    pg_restore(ctx, dump, internal, None)
    admin = str(cluster.pg.params["user"])
    access = grantees(cluster.pg, internal)
    assert access["owner"] == (admin,) and set(access) == {"owner", admin}, access
    for role in (prod, target, other):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            cluster.connect(role, internal).close()


def test_a_cloned_database_is_reachable_by_its_environment_alone(cluster: Cluster) -> None:
    prod, stage, other = cluster.env("prod"), cluster.env("stage", database=False), cluster.env("dev")
    fill(cluster, prod, "Grace Hopper")
    db = scratch_name("clone")
    cluster.dbs.append(db)
    cluster.pg.clone(prod, db, owner=stage)
    assert_only(cluster, db, stage, [other, prod])
    # Renamed into the environment's name: the same ACL, and the access role (no longer needed) is gone.
    cluster.pg.rename(db, stage)
    cluster.dbs.append(stage)
    assert_only(cluster, stage, stage, [other, prod])
    assert db not in cluster.pg.access_roles()
    # A scratch copy renamed to another scratch name takes its access role along; dropped, it drops it.
    again, moved = scratch_name("clone"), scratch_name("old")
    cluster.dbs += [again, moved]
    cluster.pg.clone(prod, again, owner=stage)
    assert again in cluster.pg.access_roles()
    cluster.pg.rename(again, moved)
    roles = cluster.pg.access_roles()
    assert moved in roles and again not in roles
    with cluster.pg.connect() as conn:
        assert conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (stage, moved)).fetchone() == (True,)
    cluster.pg.drop(moved)
    assert moved not in cluster.pg.access_roles()


def test_secure_database_takes_back_what_was_given_away(cluster: Cluster) -> None:
    env, intruder = cluster.env("prod"), cluster.env("pr")
    with cluster.pg.connect() as conn:
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO PUBLIC").format(sql.Identifier(env)))
        conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(sql.Identifier(env), sql.Identifier(intruder)))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(env), sql.Identifier(intruder)))
    cluster.connect(intruder, env).close()
    changes = cluster.pg.secure_database(env, env)
    assert f"owner {intruder} -> {env}" in changes and any("from PUBLIC" in c for c in changes), changes
    assert_only(cluster, env, env, [intruder])
    assert cluster.pg.secure_database(env, env) == []  # idempotent


def test_securing_one_database_from_several_processes_at_once_never_collides(cluster: Cluster) -> None:
    """A clone securing its new copy while another process's access sweep repairs that same copy: PostgreSQL
    does not lock a database's catalog row for GRANT/REVOKE/ALTER DATABASE, so without Postgres' own lock one
    of them failed with "tuple concurrently updated" (seen in CI). Eight sessions secure one database at once."""
    env = cluster.env("dev", database=False)
    db = scratch_name("clone")
    cluster.pg.create(db, None)
    cluster.dbs.append(db)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def hammer(n: int) -> None:
        try:
            start.wait(30)
            for i in range(15):
                # Alternating owners: every call really rewrites the row (owner, grants), as a clone securing a
                # copy for its environment and a sweep securing what it found do.
                cluster.pg.secure_database(db, env if (n + i) % 2 else None)
                cluster.pg.allow_connections(db, bool(i % 2))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, [str(e) for e in errors[:3]]
    cluster.pg.secure_database(db, env)
    cluster.pg.allow_connections(db, True)
    assert_only(cluster, db, env, [])


# ---------------------------------------------------------------------- the access sweep


def test_the_access_sweep_repairs_a_database_opened_to_public(cluster: Cluster) -> None:
    env, intruder = cluster.env("staging"), cluster.env("pr")
    bystander = env_name("other")  # not the platform's: never judged, never touched
    cluster.dbs.append(bystander)
    with cluster.pg.connect() as conn:
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO PUBLIC").format(sql.Identifier(env)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(bystander)))
    cluster.connect(intruder, env).close()  # the drift: any role may connect again
    # An access role whose database is gone (a process killed between the two drops) is an orphan.
    orphan = scratch_name("clone")
    cluster.dbs.append(orphan)
    cluster.pg.clone(env, orphan, owner=env)
    with cluster.pg.connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(orphan)))
    assert orphan in cluster.pg.access_roles()

    found = access_sweep.sweep(cluster.pg, {env, intruder}, repair=False)
    assert found.found[env] == ["PUBLIC (every role) may CONNECT"], found.found
    cluster.connect(intruder, env).close()  # a dry run changes nothing

    held = cluster.connect(intruder, env)  # connected while it could: revoking alone would not end it
    report = access_sweep.sweep(cluster.pg, {env, intruder})
    assert report.repaired[env] == ["PUBLIC (every role) may CONNECT"], report.to_json()
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    assert env in report.checked and intruder in report.checked and bystander not in report.checked
    # (Sweeps of other processes on this server may have dropped it first: it is gone either way.)
    assert orphan not in cluster.pg.access_roles(), report.to_json()
    assert_only(cluster, env, env, [intruder])
    assert "PUBLIC" in grantees(cluster.pg, bystander)  # untouched
    again = access_sweep.sweep(cluster.pg, {env, intruder})
    assert env not in again.repaired and intruder not in again.repaired


# ---------------------------------------------------------------------- from inside every kind of environment


def probe(docker_client: docker.DockerClient, image: str, host: str, port: int, user: str, password: str,
          dbs: list[str]) -> dict[str, str]:
    """Connect from a container on the engine's bridge, as `user`, to each database; {db: "ok" or the error}."""
    out = docker_client.containers.run(
        image, ["python3", "-c", PROBE, *dbs], remove=True, init=True, labels={"odooops.test": user},
        environment={"PGHOST": host, "PGPORT": str(port), "PGUSER": user, "PGPASSWORD": password})
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def test_from_inside_every_kind_of_environment_only_its_own_database_opens(
        cluster: Cluster, ctx: DataContext, tmp_path: Path, docker_client: docker.DockerClient,
        standin_image: str, pg_host_from_containers: str) -> None:
    pg = cluster.pg
    # Production: made by the Terraform module, holding personal data; with its rotation login.
    prod = cluster.env("production")
    prod_login = cluster.login(prod)
    fill(cluster, prod, "Ada Lovelace")
    # Staging: its (empty) database replaced by a clone of production, swapped in as a clone or restore is.
    stage = cluster.env("staging")
    copy = scratch_name("clone")
    cluster.dbs += [copy, old_name(copy)]
    pg.clone(prod, copy, owner=stage)
    pg.reassign_objects(copy, stage)
    undo: Undo = []
    swap_databases(pg, stage, copy, old_name(copy), undo)
    pg.drop(old_name(copy))
    # A scratch clone for staging still in flight (an Odoo of staging neutralizes it), and a template.
    in_flight = scratch_name("clone")
    cluster.dbs.append(in_flight)
    pg.clone(prod, in_flight, owner=stage)
    registry = TemplateRegistry(tmp_path / "state", cap_bytes=10**12, cap_count=5)
    (tmp_path / "filestore").mkdir()
    template, _, _ = keep_copy(pg, registry, stage, tmp_path / "filestore", admin=str(pg.params["user"]),
                               key="k" + secrets.token_hex(4), commit="0" * 40, inputs={}, built_by=stage)
    cluster.dbs.append(template.db)
    # A dev environment cloned from the template, as a fresh deploy does (scratch copy, renamed into place).
    dev = cluster.env("dev", database=False)
    scratch = scratch_name("clone")
    pg.clone(template.db, scratch, owner=dev)
    pg.reassign_objects(scratch, dev)
    pg.rename(scratch, dev)
    cluster.dbs.append(dev)
    # A pull-request preview holding a restored backup, swapped in over its empty database.
    preview = cluster.env("pr")
    restored = scratch_name("restore")
    cluster.dbs += [restored, old_name(restored)]
    pg_restore(ctx, dump_of(ctx, dev, tmp_path / "dev.dump"), restored, preview)
    swap: Undo = []
    swap_databases(pg, preview, restored, old_name(restored), swap)
    pg.drop(old_name(restored))
    assert len(undo) == len(swap) == 2

    everything = [prod, stage, dev, preview, in_flight, template.db]
    own = {prod: [prod], prod_login: [prod], stage: [stage, in_flight], dev: [dev], preview: [preview]}
    port = int(pg.params["port"])
    for role, mine in own.items():
        seen = probe(docker_client, standin_image, pg_host_from_containers, port, role, cluster.passwords[role],
                     everything)
        opened = sorted(db for db, outcome in seen.items() if outcome == "ok")
        assert opened == sorted(mine), (role, seen)
        others = {db: outcome for db, outcome in seen.items() if db not in mine}
        assert all(refused(outcome) for outcome in others.values()), (role, others)
