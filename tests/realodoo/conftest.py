"""Real Odoo 19 for the tests in this folder (all marked `realodoo`): the image, one-shot Odoo commands
against the checkout's PostgreSQL, and databases copied from template databases built once per module set.

- `odoo_image`: the `odoo:19.0` tag, built from the Odoo source archive when the engine lacks it (a
  cache hit when it is current); the tests skip only when there is neither an image nor a source, and
  fail instead when CI is set.
- `real_odoo`: a RealOdoo bound to the image and the PostgreSQL cluster, checked once per session to
  reach PostgreSQL from a container (a clear diagnosis instead of a 2-minute TCP timeout later).
- `odoo_db(modules)`: a fresh database with `modules` installed, copied (FILE_COPY, under a second) from
  the template `oo_rt_tpl_<digest>` built once per PostgreSQL cluster under a file lock in .work/, so
  xdist workers and parallel runs share it; dropped, with its filestore, after the test.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psycopg
import pytest
from psycopg import sql

from reconciler.errors import OdooOpsError
from reconciler.executors.images import build_odoo_image
from tests.realodoo.odoo_http import OdooRun, OdooServer, serve_odoo
from tests.services import REPO_ROOT, drop_database

HERE = Path(__file__).resolve().parent
WORK = REPO_ROOT / ".work" / "realodoo"
DEFAULT_IMAGE = "odoo:19.0"
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "odoo" / "odoo-19.0-ce.tar.xz"
TEMPLATE_PREFIX = "oo_rt_tpl_"
BUILDING_PREFIX = "oo_rt_bld_"
ODOO_UID = 101
LABEL = "odooops.test"  # every container the fixtures start carries odooops.test=realodoo
# libpq's connect timeout inside the containers: a blackholed route fails in seconds, not after the
# kernel's ~2 minutes of SYN retries.
PG_CONNECT_TIMEOUT_S = 20
_PROBE = r"""
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
print("container routes (/proc/net/route):")
for line in open("/proc/net/route").read().splitlines()[1:]:
    f = line.split()
    ip = lambda h: socket.inet_ntoa(struct.pack("<L", int(h, 16)))
    print(f"  {ip(f[1])}/{bin(int(f[7], 16)).count('1')} via {ip(f[2])} dev {f[0]}")
try:
    socket.create_connection((host, port), timeout=8).close()
    print(f"TCP {host}:{port}: connected")
except OSError as exc:
    print(f"TCP {host}:{port}: FAILED {exc!r}")
    sys.exit(3)
"""


# Runs the probe inside the container that is about to run Odoo, then hands over to the image's own
# entrypoint; quiet when PostgreSQL answers.
PREFLIGHT_EXIT = 97
_PREFLIGHT = (f'out=$(python3 -c "$ODOO_RT_PROBE" "$HOST" "$PORT" 2>&1) || {{ echo "$out"; exit {PREFLIGHT_EXIT}; }}; '
              'unset ODOO_RT_PROBE; exec /entrypoint.sh "$@"')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.realodoo)
            item.add_marker(pytest.mark.integration)


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def odoo_image(services_env: dict[str, str], docker_client: docker.DockerClient) -> str:
    """The real Odoo image tag (odoo:19.0), built from the source archive when the engine lacks it."""
    tag = services_env.get("ODOOOPS_ODOO_IMAGE") or DEFAULT_IMAGE
    source = Path(os.environ.get("ODOOOPS_ODOO_SOURCE") or DEFAULT_SOURCE)
    if not source.is_absolute():
        source = REPO_ROOT / source
    if source.exists():
        try:
            # A cache hit (about a second) when the image is current; a build otherwise.
            build_odoo_image(source, tag, client=docker_client)
        except OdooOpsError as exc:
            if exc.code != "IMAGE_NOT_OURS":  # an official odoo:19.0 is used as it is
                pytest.fail(f"cannot build {tag} from {source}: {exc}", pytrace=False)
        return tag
    try:
        docker_client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        reason = (f"real Odoo tests need the image {tag}: it is not on the engine and there is no Odoo "
                  f"source at {source} to build it from (set ODOOOPS_ODOO_SOURCE)")
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    raise AssertionError("unreachable")


class RealOdoo:
    """Runs the real Odoo image against the checkout's PostgreSQL, the way the product's runtime does:
    the database host is the address containers reach the host at (ODOOOPS_PG_HOST_FROM_CONTAINERS, the
    gateway of dockerd's bridge), passed through the image's entrypoint (HOST/PORT/USER/PASSWORD)."""

    def __init__(self, client: docker.DockerClient, image: str, pg: dict[str, Any], db_host: str) -> None:
        self.client = client
        self.image = image
        self.pg = pg  # psycopg params from the host (127.0.0.1)
        self.db_host = db_host
        self.image_id = client.images.get(image).id

    # ------------------------------------------------------------ containers

    def db_env(self) -> dict[str, str]:
        return {"HOST": self.db_host, "PORT": str(self.pg["port"]), "USER": self.pg["user"],
                "PASSWORD": self.pg["password"], "PGCONNECT_TIMEOUT": str(PG_CONNECT_TIMEOUT_S)}

    def data_dir(self, db: str) -> Path:
        """The host directory mounted as /var/lib/odoo for `db` (filestore under filestore/<db>)."""
        path = WORK / "data" / db
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, ODOO_UID, ODOO_UID)
        return path

    def container_kwargs(self, command: list[str], *, db: str | None, addons: Path | None,
                         env: dict[str, str] | None, entrypoint: list[str] | None = None) -> dict[str, Any]:
        volumes: dict[str, dict[str, str]] = {}
        if db is not None:
            volumes[str(self.data_dir(db))] = {"bind": "/var/lib/odoo", "mode": "rw"}
        if addons is not None:
            volumes[str(addons)] = {"bind": "/mnt/extra-addons", "mode": "ro"}
        kwargs: dict[str, Any] = {
            "image": self.image, "command": command, "environment": {**self.db_env(), **(env or {})},
            "volumes": volumes, "labels": {LABEL: "realodoo"},
            "name": f"oo-rt-{uuid.uuid4().hex[:12]}",
        }
        if entrypoint is not None:
            kwargs["entrypoint"] = entrypoint
        return kwargs

    def run(self, *args: str, db: str | None = None, addons: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 900, check: bool = True,
            entrypoint: list[str] | None = None) -> OdooRun:
        """`odoo ARGS` (through the image's entrypoint, which appends --db_*) in a one-shot container.

        With `db`, `-d db` is added and the database's data directory (filestore) is mounted. A non-zero
        exit fails the test (check=True) with the output and, when it looks like PostgreSQL was not
        reachable, a diagnosis of the container's route to it."""
        # With another entrypoint the arguments are its command; db then only mounts the data directory.
        command = ["odoo", *(["-d", db] if db else []), *args] if entrypoint is None else list(args)
        env = dict(env or {})
        if db and entrypoint is None:
            # Before a possibly long Odoo run, the container itself checks that PostgreSQL answers on TCP
            # (8 s): a blackholed path fails at once with the container's routes, not minutes later.
            entrypoint, env["ODOO_RT_PROBE"] = ["/bin/sh", "-c", _PREFLIGHT, "preflight"], _PROBE
        kwargs = self.container_kwargs(command, db=db, addons=addons, env=env, entrypoint=entrypoint)
        result = self._run_container(kwargs, timeout)
        if check and result.exit_code != 0:
            pytest.fail(self._failure(result, " ".join(command)), pytrace=False)
        return result

    def shell(self, db: str, code: str, *, addons: Path | None = None, timeout: float = 600) -> OdooRun:
        """Run Python `code` in `odoo shell -d db` (env is bound; commit with env.cr.commit())."""
        return self.run(
            "-c", 'printf "%s\\n" "$ODOO_SHELL_CODE" | exec /entrypoint.sh odoo shell --no-http -d "$ODOO_SHELL_DB"',
            db=db, addons=addons, timeout=timeout, entrypoint=["/bin/sh"],
            env={"ODOO_SHELL_CODE": code, "ODOO_SHELL_DB": db})

    def set_password(self, db: str, login: str, password: str) -> None:
        """Set a user's password the way Odoo does (hashed by the ORM)."""
        out = self.shell(db, (
            f"u = env['res.users'].search([('login', '=', {login!r})])\n"
            f"assert u, 'no user ' + {login!r}\n"
            f"u.password = {password!r}\n"
            "env.cr.commit()\n"
            "print('PASSWORD-SET', u.id)\n"))
        if "PASSWORD-SET" not in out.output:
            pytest.fail(f"setting the password of {login} in {db} printed no confirmation:\n{out.output[-3000:]}",
                        pytrace=False)

    @contextmanager
    def serve(self, db: str, *, addons: Path | None = None, extra_args: tuple[str, ...] = (),
              timeout: float = 180) -> Iterator[OdooServer]:
        """A real Odoo web server for `db` (127.0.0.1:<random port>), healthy before it is yielded."""
        kwargs = self.container_kwargs(
            ["odoo", "-d", db, "--db-filter", f"^{db}$", "--http-port", "8069", *extra_args],
            db=db, addons=addons, env=None)
        with serve_odoo(self.client, kwargs, timeout=timeout) as server:
            yield server

    def _run_container(self, kwargs: dict[str, Any], timeout: float) -> OdooRun:
        started = time.monotonic()
        container = self.client.containers.create(**kwargs)
        try:
            container.start()
            exit_code: int | None
            try:
                exit_code = int(container.wait(timeout=timeout)["StatusCode"])
            except OSError:  # requests' ReadTimeout at the deadline
                container.kill()
                exit_code = None
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        finally:
            with suppress(docker.errors.APIError):
                container.remove(v=True, force=True)
        return OdooRun(kwargs["name"], exit_code, output, time.monotonic() - started)

    def _failure(self, result: OdooRun, what: str) -> str:
        if result.exit_code == PREFLIGHT_EXIT:
            return (f"PostgreSQL at {self.db_host}:{self.pg['port']} is not reachable from the container that "
                    f"was to run `{what}` (checked before starting Odoo):\n{result.output.strip()}\n\n"
                    + self.diagnose())
        how = "timed out" if result.exit_code is None else f"exited {result.exit_code}"
        text = f"real Odoo `{what}` {how} after {result.seconds:.0f} s:\n{result.output[-6000:]}"
        lowered = result.output.lower()
        if any(s in lowered for s in ("could not connect", "timeout expired", "connection timed out",
                                      "database connection failure", "connection refused")):
            text += "\n\n" + self.diagnose()
        return text

    # ------------------------------------------------------------ the path to PostgreSQL

    def probe(self) -> tuple[bool, str]:
        """TCP-connect to PostgreSQL from a container; (ok, the container's routes and the result)."""
        kwargs = self.container_kwargs(["-c", _PROBE, self.db_host, str(self.pg["port"])], db=None,
                                       addons=None, env=None, entrypoint=["python3"])
        result = self._run_container(kwargs, 60)
        return result.exit_code == 0, result.output

    def diagnose(self) -> str:
        """Both ends of the container -> PostgreSQL path, for an error message."""
        ok, probe = self.probe()
        lines = [f"diagnosis of {self.db_host}:{self.pg['port']} from a container on the default bridge: "
                 f"{'reachable now' if ok else 'NOT reachable'}", probe.rstrip()]
        routes = ""
        for cmd in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            routes = proc.stdout
            lines.append(f"host `{' '.join(cmd)}`:\n{proc.stdout.rstrip() or proc.stderr.rstrip()}")
        lines += self._route_problems(routes)
        try:
            with psycopg.connect(dbname="postgres", connect_timeout=5, **self.pg) as conn:
                row = conn.execute("SHOW listen_addresses").fetchone()
            listen = str(row[0]) if row else ""
            lines.append(f"PostgreSQL answers on {self.pg['host']}; listen_addresses = '{listen}'"
                         + ("" if self.db_host in listen.split(",") else f" (NOT {self.db_host}: restart it "
                                                                         "with bash scripts/services.sh start)"))
        except psycopg.OperationalError as exc:
            lines.append(f"PostgreSQL does not answer on {self.pg['host']} either: {str(exc).strip()}")
        lines.append("a route in a container or on the host that shadows the bridge subnet, or a bridge "
                     "address missing on the host, points at the cause (bash scripts/services.sh start "
                     "restores the bridge address)")
        return "\n".join(lines)

    def _route_problems(self, routes: str) -> list[str]:
        """Subnets the host routes to more than one device, and bridges no network of this dockerd owns:
        replies to a container then leave through the wrong bridge and its SYNs go unanswered."""
        by_subnet: dict[str, list[str]] = {}
        for line in routes.splitlines():
            parts = line.split()
            if len(parts) > 2 and "dev" in parts and "/" in parts[0]:
                by_subnet.setdefault(parts[0], []).append(parts[parts.index("dev") + 1])
        owned = {"br-" + n.id[:12] for n in self.client.networks.list()}
        out = [f"SHADOWED: {subnet} is routed to {', '.join(devs)} (the first wins; containers behind the "
               f"others get no replies)" for subnet, devs in by_subnet.items() if len(devs) > 1]
        out += [f"STALE: bridge {dev} ({subnet}) belongs to no network of this dockerd"
                for subnet, devs in by_subnet.items() for dev in devs
                if dev.startswith("br-") and dev not in owned]
        return out or ["no subnet routed twice, no bridge without a network"]

    # ------------------------------------------------------------ databases

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(dbname=dbname, autocommit=True, **self.pg)

    def template_name(self, modules: tuple[str, ...], with_demo: bool) -> str:
        key = f"{self.image_id}\n{','.join(sorted(set(modules)))}\ndemo={with_demo}"
        return TEMPLATE_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]

    def ensure_template(self, modules: tuple[str, ...], *, with_demo: bool = False) -> str:
        """The template database with `modules` installed, built once per cluster (file lock in .work/).

        It is built under a temporary name and renamed when complete, so a template that exists is
        complete; an interrupted build leaves only a temporary database, dropped by the next build."""
        name = self.template_name(modules, with_demo)
        if self._template_ready(name):
            return name
        WORK.mkdir(parents=True, exist_ok=True)
        with _file_lock(WORK / f"{name}.lock"):
            if self._template_ready(name):
                return name
            self._drop_leftovers(name)
            building = BUILDING_PREFIX + name[len(TEMPLATE_PREFIX):] + "_" + uuid.uuid4().hex[:6]
            ok, _ = self.probe()
            if not ok:
                pytest.fail(f"PostgreSQL is not reachable from a container; not starting the install of "
                            f"{','.join(modules)}:\n{self.diagnose()}", pytrace=False)
            try:
                self.run("-i", ",".join(modules), "--stop-after-init", "--no-http",
                         *(["--with-demo"] if with_demo else []), db=building, timeout=1800)
                self._finish_template(building, name)
            except BaseException:
                drop_database(self.pg, building)
                shutil.rmtree(WORK / "data" / building, ignore_errors=True)
                raise
        return name

    def _template_ready(self, name: str) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return bool(row and row[0])

    def _drop_leftovers(self, name: str) -> None:
        like = BUILDING_PREFIX + name[len(TEMPLATE_PREFIX):] + "\\_%"
        with self.connect() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,)).fetchall()
            for (db,) in rows:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
                shutil.rmtree(WORK / "data" / db, ignore_errors=True)
            # a template renamed but not yet marked (crash in between) is rebuilt too
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        shutil.rmtree(WORK / "data" / name, ignore_errors=True)

    def _finish_template(self, building: str, name: str) -> None:
        filestore = self.data_dir(building) / "filestore"
        with self.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(building),
                                                                         sql.Identifier(name)))
            final = self.data_dir(name) / "filestore"
            final.mkdir(exist_ok=True)
            os.chown(final, ODOO_UID, ODOO_UID)
            if (filestore / building).is_dir():
                os.replace(filestore / building, final / name)
            shutil.rmtree(WORK / "data" / building, ignore_errors=True)
            # Complete: nobody may connect (a session would block every copy), and it is a template.
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true").format(
                sql.Identifier(name)))

    def copy_database(self, template: str, db: str) -> None:
        """`db` as a FILE_COPY of `template`, with a hard-linked copy of its filestore."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(db), sql.Identifier(template)))
        source = WORK / "data" / template / "filestore" / template
        target = self.data_dir(db) / "filestore"
        target.mkdir(exist_ok=True)
        os.chown(target, ODOO_UID, ODOO_UID)
        if source.is_dir():
            subprocess.run(["cp", "-al", str(source), str(target / db)], check=True)

    def drop(self, db: str) -> None:
        drop_database(self.pg, db)
        shutil.rmtree(WORK / "data" / db, ignore_errors=True)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def real_odoo(odoo_image: str, docker_client: docker.DockerClient, pg_conn_params: dict[str, Any],
              pg_host_from_containers: str) -> RealOdoo:
    """One-shot real Odoo commands, servers and template databases (PostgreSQL checked reachable)."""
    odoo = RealOdoo(docker_client, odoo_image, pg_conn_params, pg_host_from_containers)
    ok, _ = odoo.probe()
    if not ok:
        pytest.fail(f"PostgreSQL is not reachable from containers:\n{odoo.diagnose()}", pytrace=False)
    return odoo


@pytest.fixture
def odoo_db(real_odoo: RealOdoo, unique_name: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """A factory: odoo_db(("sale_management",)) -> name of a fresh database with those modules installed
    (a copy of the shared template), dropped with its filestore after the test. with_demo=True loads demo
    data (a template of its own)."""
    made: list[str] = []

    def make(modules: tuple[str, ...], *, with_demo: bool = False) -> str:
        template = real_odoo.ensure_template(tuple(modules), with_demo=with_demo)
        db = unique_name("oo_rt")
        made.append(db)
        real_odoo.copy_database(template, db)
        return db

    yield make
    for db in made:
        real_odoo.drop(db)
