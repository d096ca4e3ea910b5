"""pg_hba as scripts/services.sh writes it, on a throwaway PostgreSQL cluster this test starts: from a container,
a login reaches only the database named after a role it belongs to (its environment's, or a scratch copy's
access role), plus `postgres`; the cluster's superuser is refused unless the test command's flag is set.

The databases here keep PostgreSQL's default privileges (PUBLIC may connect): pg_hba alone must stop a
login at the door, so one leaked environment password opens nothing else even where the ACL drifted."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
from psycopg import sql

from reconciler.executors.postgres import Postgres
from tests.data.test_db_isolation import PROBE

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ADMIN = "odooops"  # the superuser name services.sh gives the cluster


@dataclass
class Throwaway:
    """A PostgreSQL cluster in a temporary directory, listening on loopback and the engine's bridge gateway."""

    root: Path
    bin: Path
    os_user: str
    gateway: str
    bridge_cidr: str
    pool: str
    port: int
    password: str

    @property
    def data(self) -> Path:
        return self.root / "data"

    def as_owner(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", self.os_user, "--", *cmd], capture_output=True, text=True,
                              check=False, timeout=120)

    def write_pg_hba(self, superuser_from_containers: bool) -> str:
        """Exactly what `services.sh start` writes, for this cluster's networks."""
        env = {**os.environ, "ODOOOPS_DOCKER_BRIDGE_CIDR": self.bridge_cidr, "ODOOOPS_DOCKER_POOL": self.pool,
               "ODOOOPS_PG_SUPERUSER_FROM_CONTAINERS": "1" if superuser_from_containers else "0"}
        text = subprocess.run(["bash", str(REPO / "scripts" / "services.sh"), "pg-hba"], env=env,
                              capture_output=True, text=True, check=True).stdout
        (self.data / "pg_hba.conf").write_text(text)
        shutil.chown(self.data / "pg_hba.conf", self.os_user)
        return text

    def restart(self) -> None:
        """Restart (not reload): a reload is signalled, and new sessions could still see the old rules."""
        proc = self.as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-m", "fast",
                             "-l", str(self.root / "log"), "restart")
        assert proc.returncode == 0, proc.stderr + (self.root / "log").read_text()

    def admin(self) -> Postgres:
        return Postgres("127.0.0.1", self.port, ADMIN, self.password)


def _free_port(*addresses: str) -> int:
    """A port free on every address (the cluster listens on all of them)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((addresses[0], 0))
            port = int(first.getsockname()[1])
            try:
                for other in addresses[1:]:
                    with socket.socket() as s:
                        s.bind((other, port))
            except OSError:
                continue
        return port
    raise AssertionError(f"no port free on all of {addresses}")


def _bridge_cidr(bridge: str, gateway: str) -> str:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", bridge], capture_output=True, text=True,
                         check=True).stdout
    for field in out.split():
        if field.startswith(gateway + "/"):
            return field
    raise AssertionError(f"bridge {bridge} has no address {gateway}: {out}")


@pytest.fixture(scope="module")
def throwaway(services_env: dict[str, str]) -> Iterator[Throwaway]:
    os_user = os.environ.get("ODOOOPS_OS_USER", "odooops")
    try:
        pwd.getpwnam(os_user)
    except KeyError:
        pytest.fail(f"OS user {os_user} (services.sh makes it to run PostgreSQL) does not exist: "
                    "run `bash scripts/services.sh start` first", pytrace=False)
    gateway = services_env["ODOOOPS_DOCKER_BRIDGE_GATEWAY"]
    root = Path(tempfile.mkdtemp(prefix="odooops-pghba-"))
    shutil.chown(root, os_user)
    cluster = Throwaway(root, Path(services_env["ODOOOPS_PG_BIN"]), os_user, gateway,
                        _bridge_cidr(services_env["ODOOOPS_DOCKER_BRIDGE"], gateway),
                        services_env["ODOOOPS_DOCKER_ADDRESS_POOL"], _free_port("127.0.0.1", gateway),
                        secrets.token_hex(16))
    (root / "pw").write_text(cluster.password)
    shutil.chown(root / "pw", os_user)
    try:
        init = cluster.as_owner(str(cluster.bin / "initdb"), "-D", str(cluster.data), "-U", ADMIN,
                                f"--pwfile={root / 'pw'}", "--auth=scram-sha-256", "-E", "UTF8",
                                "--locale=C.UTF-8", "--no-sync")
        assert init.returncode == 0, init.stderr
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {cluster.port}\nlisten_addresses = '127.0.0.1,{gateway}'\n"
                       f"unix_socket_directories = '{root}'\nfsync = off\nmax_connections = 40\n")
        cluster.write_pg_hba(superuser_from_containers=False)
        start = cluster.as_owner(str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-w", "-t", "60",
                                 "-l", str(root / "log"), "start")
        assert start.returncode == 0, start.stderr + (root / "log").read_text()
        yield cluster
    finally:
        cluster.as_owner(str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def probe(docker_client: docker.DockerClient, image: str, cluster: Throwaway, user: str, password: str,
          dbs: list[str]) -> dict[str, str]:
    out = docker_client.containers.run(
        image, ["python3", "-c", PROBE, *dbs], remove=True, init=True, labels={"odooops.test": "pg-hba"},
        environment={"PGHOST": cluster.gateway, "PGPORT": str(cluster.port), "PGUSER": user, "PGPASSWORD": password})
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def _outcomes(seen: dict[str, str]) -> dict[str, str]:
    """"ok", "no entry" (no pg_hba line admits it), "rejected" (a reject line), else the error itself."""
    def word(outcome: str) -> str:
        if outcome == "ok":
            return "ok"
        if "no pg_hba.conf entry" in outcome:
            return "no entry"
        if "pg_hba.conf rejects" in outcome:
            return "rejected"
        return outcome
    return {db: word(o) for db, o in seen.items()}


def test_pg_hba_lets_a_login_from_a_container_reach_only_its_own_databases(
        throwaway: Throwaway, docker_client: docker.DockerClient, standin_image: str) -> None:
    pg = throwaway.admin()
    pw = {name: secrets.token_hex(12) for name in ("alpha", "alpha__r", "beta")}
    with pg.connect() as conn:
        for role, password in pw.items():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                           sql.Literal(password)))
        # As the Terraform module makes a rotation login: a member of the environment's role.
        conn.execute("GRANT alpha TO alpha__r")
    for db in ("alpha", "beta"):
        pg.create(db, db)
        with pg.connect() as conn:  # the ACL drifted open: pg_hba is the barrier this test is about
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO PUBLIC").format(sql.Identifier(db)))
    scratch = "oo_clone_0000000" + secrets.token_hex(3)
    pg.clone("beta", scratch, owner="beta")  # beta's Odoo neutralizes it before it is swapped in

    dbs = ["postgres", "alpha", "beta", scratch]
    expected = {
        "alpha": {"postgres": "ok", "alpha": "ok", "beta": "no entry", scratch: "no entry"},
        "alpha__r": {"postgres": "ok", "alpha": "ok", "beta": "no entry", scratch: "no entry"},
        "beta": {"postgres": "ok", "alpha": "no entry", "beta": "ok", scratch: "ok"},
    }
    for role, want in expected.items():
        assert _outcomes(probe(docker_client, standin_image, throwaway, role, pw[role], dbs)) == want, role
    # The cluster's superuser: refused from containers by default...
    superuser = _outcomes(probe(docker_client, standin_image, throwaway, ADMIN, throwaway.password, dbs))
    assert superuser == dict.fromkeys(dbs, "rejected"), superuser
    # ...but the same login works from the host (the platform itself, its tools).
    with psycopg.connect(host="127.0.0.1", port=throwaway.port, user="alpha", password=pw["alpha"],
                         dbname="beta") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("alpha",)

    # The test command's flag: the superuser may connect from containers (tests build databases with it).
    throwaway.write_pg_hba(superuser_from_containers=True)
    throwaway.restart()
    superuser = _outcomes(probe(docker_client, standin_image, throwaway, ADMIN, throwaway.password, dbs))
    assert superuser == dict.fromkeys(dbs, "ok"), superuser
    again = _outcomes(probe(docker_client, standin_image, throwaway, "alpha", pw["alpha"], dbs))
    assert again == expected["alpha"], again


def test_services_sh_prints_the_rules_it_writes(services_env: dict[str, Any]) -> None:
    """No database of a container's login is reachable but through samerole; the superuser line comes first."""
    env = {**os.environ, "ODOOOPS_PG_SUPERUSER_FROM_CONTAINERS": "0"}
    text = subprocess.run(["bash", str(REPO / "scripts" / "services.sh"), "pg-hba"], env=env, capture_output=True,
                          text=True, check=True).stdout
    rules = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    remote = [r for r in rules if r[0] == "host" and r[3] not in ("127.0.0.1/32", "::1/128")]
    assert remote and {tuple(r[1:3]) for r in remote} == {("all", ADMIN), ("postgres", "all"), ("samerole", "all")}
    for net in {r[3] for r in remote}:
        lines = [r for r in remote if r[3] == net]
        assert lines[0][1:3] == ["all", ADMIN] and lines[0][4] == "reject", lines
