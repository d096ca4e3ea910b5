"""The Odoo stand-in image in the real Docker engine against the real PostgreSQL."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import httpx
import psycopg
import pytest

from tests.services import drop_database

pytestmark = pytest.mark.integration

CUSTOM_MANIFEST = """{
    "name": "OdooOps sample",
    "version": "%s",
    "depends": ["contacts"],
    "license": "LGPL-3",
}
"""


def tar_of(files: dict[str, str], mode: int = 0o644) -> bytes:
    """A tar archive owned by the image's odoo user (uid/gid 101)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 101, 101
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def addons_tar(version: str = "1.0", module: str = "odooops_sample",
               failing: bool = False) -> bytes:
    """/mnt/extra-addons content: a custom module with tests (optionally failing)."""
    files = {
        f"{module}/__init__.py": "",
        f"{module}/__manifest__.py": CUSTOM_MANIFEST % version,
        f"{module}/tests/__init__.py": "",
        f"{module}/tests/test_sample.py": "def test_sample():\n    pass\n",
    }
    if failing:
        files[f"{module}/tests/FAIL_TESTS"] = "test_sample: expected 2, got 3\n"
    return tar_of(files)


@dataclass
class Odoo:
    """Runs the stand-in image the way the product runs odoo:<version>."""

    client: docker.DockerClient
    image: str
    env: dict[str, str]
    tag: str
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    containers: list[Any] = field(default_factory=list)
    pg: dict[str, Any] = field(default_factory=dict)  # the superuser's connection, for diagnostics

    def create(self, command: list[str], addons: bytes | None = None, **kw: Any) -> Any:
        container = self.client.containers.create(
            self.image, command=command, environment=kw.pop("environment", self.env),
            volumes=self.volumes, init=True, labels={"odooops.test": self.tag}, **kw)
        self.containers.append(container)
        if addons is not None:
            container.put_archive("/mnt/extra-addons", addons)
        return container

    def run(self, command: list[str], addons: bytes | None = None,
            timeout: float = 180) -> tuple[int, str]:
        container = self.create(command, addons)
        container.start()
        try:
            status = container.wait(timeout=timeout)
        except Exception:  # the Docker SDK raises requests' ReadTimeout on timeout
            busy = self.busy_sessions()  # seen once under CI load: say what PostgreSQL was waiting on
            container.kill()
            pytest.fail(f"{command} still running after {timeout}s; busy sessions: {busy}\n"
                        + container.logs().decode(errors="replace"))
        logs = container.logs().decode(errors="replace")
        container.remove(force=True)
        self.containers.remove(container)
        return int(status["StatusCode"]), logs

    def busy_sessions(self) -> list[tuple[Any, ...]]:
        try:
            with psycopg.connect(**self.pg, dbname="postgres", connect_timeout=5) as c:
                return c.execute("SELECT pid, datname, state, wait_event_type, wait_event, left(query, 120) "
                                 "FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid()"
                                 ).fetchall()
        except psycopg.Error as exc:
            return [("unavailable", str(exc))]

    def shell(self, script: str, addons: bytes | None = None) -> tuple[int, str]:
        """A first argument that is not `odoo` nor an option runs as is (entrypoint contract)."""
        return self.run(["/bin/sh", "-c", script], addons=addons)


@pytest.fixture(scope="module")
def odoo(docker_client: docker.DockerClient, standin_image: str, pg_conn_params: dict[str, Any],
         pg_host_from_containers: str, unique_name: Any) -> Iterator[Odoo]:
    tag = unique_name("standin")
    # As the product deploys it: a rendered odoo.conf with the db_* keys (ODOO_RC). `odoo db`
    # needs them there: the entrypoint appends --db_* after the subcommand's arguments, which
    # its argparse parser refuses, exactly as with the official image.
    conf = "\n".join([
        "[options]", "addons_path = /mnt/extra-addons", "data_dir = /var/lib/odoo",
        f"db_host = {pg_host_from_containers}", f"db_port = {pg_conn_params['port']}",
        f"db_user = {pg_conn_params['user']}", f"db_password = {pg_conn_params['password']}", ""])
    data = docker_client.volumes.create(f"{tag}_data", labels={"odooops.test": tag})
    addons = docker_client.volumes.create(f"{tag}_addons", labels={"odooops.test": tag})
    runner = Odoo(docker_client, standin_image, {"ODOO_RC": "/var/lib/odoo/odoo.conf"}, tag, {
        data.name: {"bind": "/var/lib/odoo", "mode": "rw"},
        addons.name: {"bind": "/mnt/extra-addons", "mode": "rw"}}, pg=pg_conn_params)
    setup = runner.create(["true"])
    setup.put_archive("/var/lib/odoo", tar_of({"odoo.conf": conf,
                                               "pgpass": pg_conn_params["password"]}, 0o600))
    setup.remove()
    runner.containers.remove(setup)
    yield runner
    for container in runner.containers:
        container.remove(force=True)
    data.remove(force=True)
    addons.remove(force=True)


@pytest.fixture(scope="module")
def initialized_db(odoo: Odoo, pg_conn_params: dict[str, Any], unique_name: Any) -> Iterator[str]:
    """A database made by `odoo -d DB -i odooops_sample --test-enable` (no --stop-after-init)."""
    name = unique_name("standin")
    # --test-enable implies --stop-after-init in 19: the run must end on its own.
    rc, logs = odoo.run(["odoo", "-d", name, "-i", "odooops_sample", "--test-enable"],
                        addons=addons_tar("1.0"))
    assert rc == 0, logs
    assert "0 failed, 0 error(s) of 1 tests" in logs
    yield name
    drop_database(pg_conn_params, name)


def query(params: dict[str, Any], db: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dbname=db, **params) as conn:
        return conn.execute(sql).fetchall()


def params_of(db: str, params: dict[str, Any]) -> dict[str, str]:
    return dict(query(params, db, "SELECT key, value FROM ir_config_parameter"))


def test_init_install_update_and_filestore(odoo: Odoo, initialized_db: str,
                                           pg_conn_params: dict[str, Any]) -> None:
    db = initialized_db
    tables = {r[0] for r in query(pg_conn_params, db,
                                  "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"ir_module_module", "ir_config_parameter", "res_partner", "res_users",
            "ir_mail_server", "ir_cron", "ir_attachment"} <= tables
    modules = dict(query(pg_conn_params, db, "SELECT name, latest_version FROM ir_module_module "
                                             "WHERE state = 'installed'"))
    assert modules["base"] == "19.0.1.3"
    assert modules["odooops_sample"] == "19.0.1.0"
    assert {"contacts", "mail", "web"} <= set(modules)  # dependencies and auto_install
    demo = query(pg_conn_params, db, "SELECT bool_or(demo) FROM ir_module_module")[0][0]
    assert demo is False  # 19.0: no demo data without --with-demo
    conf = params_of(db, pg_conn_params)
    assert conf["database.uuid"] and conf["database.secret"] and conf["web.base.url"]
    (fname,) = query(pg_conn_params, db, "SELECT store_fname FROM ir_attachment LIMIT 1")[0]
    rc, out = odoo.shell(f"test -s /var/lib/odoo/filestore/{db}/{fname} && echo present")
    assert (rc, out.strip()) == (0, "present")

    rc, logs = odoo.run(["odoo", "-d", db, "-u", "odooops_sample", "--stop-after-init"],
                        addons=addons_tar("1.1"))
    assert rc == 0, logs
    (version,) = query(pg_conn_params, db, "SELECT latest_version FROM ir_module_module "
                                           "WHERE name = 'odooops_sample'")[0]
    assert version == "19.0.1.1"


def test_with_demo_loads_partners_only_into_a_new_database(
        odoo: Odoo, fresh_db_name: str, pg_conn_params: dict[str, Any]) -> None:
    rc, logs = odoo.run(["odoo", "db", "init", fresh_db_name, "--with-demo"])
    assert rc == 0, logs
    count = "SELECT count(*) FROM res_partner"
    with_demo = query(pg_conn_params, fresh_db_name, count)[0][0]
    rc, logs = odoo.run(["odoo", "db", "init", fresh_db_name, "--force"])
    assert rc == 0, logs
    assert query(pg_conn_params, fresh_db_name, count)[0][0] < with_demo


def test_health_endpoint(odoo: Odoo, initialized_db: str, pg_conn_params: dict[str, Any],
                         pg_host_from_containers: str) -> None:
    # The entrypoint's other way in: HOST/PORT/USER/PASSWORD_FILE and the image's odoo.conf.
    env = {"HOST": pg_host_from_containers, "PORT": str(pg_conn_params["port"]),
           "USER": pg_conn_params["user"], "PASSWORD_FILE": "/var/lib/odoo/pgpass"}
    up = odoo.create(["odoo", "-d", initialized_db, "--max-cron-threads", "0"], environment=env)
    # PostgreSQL unreachable (nothing listens on port 1): started as-is, past the DB wait.
    down = odoo.create(["/usr/bin/odoo", "--db_host", pg_host_from_containers, "--db_port", "1",
                        "--db_user", "x", "--db_password", "x"])
    for container in (up, down):
        container.start()
    for container, expected in ((up, (200, {"status": "pass", "db_server_status": True})),
                                (down, (500, {"status": "fail", "db_server_status": False}))):
        container.reload()
        ip = container.attrs["NetworkSettings"]["IPAddress"]
        base = f"http://{ip}:8069"
        deadline = time.monotonic() + 30
        while True:
            try:
                plain = httpx.get(f"{base}/web/health", timeout=2, trust_env=False)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, container.logs().decode()
                time.sleep(0.1)
        assert (plain.status_code, plain.json()) == (200, {"status": "pass"})
        assert plain.headers["cache-control"] == "no-store"
        full = httpx.get(f"{base}/web/health?db_server_status=1", timeout=10, trust_env=False)
        assert (full.status_code, full.json()) == expected
        assert full.headers["content-type"] == "application/json"
    up.stop(timeout=10)
    assert up.wait(timeout=10)["StatusCode"] == 0  # SIGTERM is a clean shutdown


def test_neutralize(odoo: Odoo, initialized_db: str, pg_conn_params: dict[str, Any]) -> None:
    db = initialized_db
    with psycopg.connect(dbname=db, **pg_conn_params) as conn:
        conn.execute("INSERT INTO ir_mail_server (name, smtp_host) VALUES ('prod', 'smtp.example')")
    rc, out = odoo.run(["odoo", "neutralize", "-d", db, "--stdout"])
    assert rc == 0, out
    assert out.index("BEGIN;") < out.index("database.is_neutralized") < out.index("COMMIT;")
    assert "database.is_neutralized" not in params_of(db, pg_conn_params)

    rc, logs = odoo.run(["odoo", "neutralize", "-d", db])
    assert rc == 0, logs
    assert params_of(db, pg_conn_params)["database.is_neutralized"] == "true"
    servers = query(pg_conn_params, db, "SELECT name, active FROM ir_mail_server ORDER BY id")
    assert servers == [("prod", False), ("neutralization - disable emails", True)]
    active = query(pg_conn_params, db, "SELECT cron_name FROM ir_cron WHERE active")
    assert active == [("Base: Auto-vacuum internal data",)]

    rc, logs = odoo.run(["odoo", "neutralize"])
    assert rc == 1 and "needs a database name" in logs


def test_db_duplicate_dump_load_drop(odoo: Odoo, initialized_db: str, unique_name: Any,
                                     pg_conn_params: dict[str, Any]) -> None:
    source = initialized_db
    copy, loaded = unique_name("copy"), unique_name("loaded")
    try:
        rc, logs = odoo.run(["odoo", "db", "duplicate", source, copy])
        assert rc == 0, logs
        src, dst = params_of(source, pg_conn_params), params_of(copy, pg_conn_params)
        assert dst["database.uuid"] != src["database.uuid"]
        assert dst["database.secret"] != src["database.secret"]
        rc, out = odoo.shell(f"cd /var/lib/odoo/filestore && diff -r {source} {copy} && echo same")
        assert (rc, out.strip()) == (0, "same")

        rc, logs = odoo.run(["odoo", "db", "duplicate", source, copy])
        assert rc == 1 and f"Target database {copy} exists" in logs

        rc, logs = odoo.shell(f"odoo db dump {copy} /var/lib/odoo/d.zip && "
                              f"odoo db load {loaded} /var/lib/odoo/d.zip && "
                              "python3 -c \"import zipfile,json,sys; z=zipfile.ZipFile("
                              "'/var/lib/odoo/d.zip'); print(json.dumps(sorted(z.namelist())))\"")
        assert rc == 0, logs
        names = json.loads(logs.strip().splitlines()[-1])
        assert "dump.sql" in names and "manifest.json" in names
        assert any(n.startswith("filestore/") for n in names)
        assert params_of(loaded, pg_conn_params)["database.uuid"] != dst["database.uuid"]

        rc, logs = odoo.run(["odoo", "db", "drop", copy])
        assert rc == 0, logs
        assert not query(pg_conn_params, "postgres",
                         f"SELECT 1 FROM pg_database WHERE datname = '{copy}'")
        rc, logs = odoo.run(["odoo", "db", "drop", copy])
        assert rc == 1 and f"Database {copy} does not exist." in logs
    finally:
        drop_database(pg_conn_params, copy)
        drop_database(pg_conn_params, loaded)


def test_failing_tests_give_a_non_zero_exit(odoo: Odoo, fresh_db_name: str) -> None:
    # Its own module name: the addons volume is shared by this file's tests.
    rc, logs = odoo.run(["odoo", "-d", fresh_db_name, "-i", "odooops_failing", "--test-enable",
                         "--test-tags", "/odooops_failing"],
                        addons=addons_tar(module="odooops_failing", failing=True))
    assert rc == 1, logs
    assert "1 failed, 0 error(s) of 1 tests" in logs
    assert "expected 2, got 3" in logs


def test_failing_install_exits_255_and_busy_test_port_fails(odoo: Odoo, fresh_db_name: str) -> None:
    broken = tar_of({"odooops_broken/__init__.py": "",
                     "odooops_broken/__manifest__.py": CUSTOM_MANIFEST % "1.0",
                     "odooops_broken/data/schema.sql": "CREATE TABLE broken (;\n"})
    rc, logs = odoo.run(["odoo", "-d", fresh_db_name, "-i", "odooops_broken",
                         "--stop-after-init"], addons=broken)
    assert rc == 255, logs  # Odoo's "Failed to initialize database" (-1)
    assert f"Failed to initialize database `{fresh_db_name}`" in logs

    # Tests serve HTTP on --http-port: while something listens there, the run fails.
    listening = "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8069))'"
    rc, logs = odoo.shell(
        "python3 -m http.server 8069 >/dev/null 2>&1 & "
        f"for i in $(seq 600); do {listening} 2>/dev/null && break; sleep 0.1; done; "  # up to 60 s on a busy host
        f"odoo -d {fresh_db_name} -i odooops_sample --test-enable; echo rc=$?",
        addons=addons_tar("1.0"))
    assert "rc=1" in logs and "pass another --http-port" in logs, logs
