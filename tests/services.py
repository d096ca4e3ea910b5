"""Session fixtures for the real services started by `scripts/services.sh start`."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
import pytest
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = REPO_ROOT / ".work" / "services.env"
START_HINT = "run `bash scripts/services.sh start` (as root) first"

__all__ = [
    "caddy_admin_url",
    "docker_client",
    "docker_host",
    "drop_database",
    "fresh_db_name",
    "pg_admin_dsn",
    "pg_conn_params",
    "pg_host_from_containers",
    "router_http_url",
    "services_env",
    "standin_image",
    "unique_name",
    "worker_id_tag",
]


def load_services_env(path: Path = ENV_FILE) -> dict[str, str]:
    """Read services.env, then let real environment variables override single keys."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    for key in {*values, *(k for k in os.environ if k.startswith("ODOOOPS_"))}:
        if key in os.environ:
            values[key] = os.environ[key]
    return values


def _require(env: dict[str, str], key: str) -> str:
    value = env.get(key)
    if not value:
        pytest.fail(f"{key} is not set ({ENV_FILE} missing or incomplete): {START_HINT}",
                    pytrace=False)
    return value


@pytest.fixture(scope="session")
def services_env() -> dict[str, str]:
    """All KEY=VALUE pairs of .work/services.env (environment variables win)."""
    env = load_services_env()
    if not env:
        pytest.fail(f"{ENV_FILE} not found: {START_HINT}", pytrace=False)
    return env


@pytest.fixture(scope="session")
def worker_id_tag() -> str:
    """The pytest-xdist worker id (gw0, gw1, ...) or "main", safe inside resource names."""
    wid = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return re.sub(r"[^a-z0-9]", "", wid.lower()) or "main"


@pytest.fixture(scope="session")
def unique_name(worker_id_tag: str) -> Any:
    """A factory: unique_name("env") -> "env_gw0_3f9a1c2b" (lowercase, ≤ 40 chars)."""

    def make(prefix: str = "t") -> str:
        clean = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:24]
        return f"{clean}_{worker_id_tag}_{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture(scope="session")
def pg_conn_params(services_env: dict[str, str]) -> dict[str, Any]:
    """host/port/user/password of the PostgreSQL superuser role, checked with a connection."""
    params: dict[str, Any] = {
        "host": _require(services_env, "ODOOOPS_PG_HOST"),
        "port": int(_require(services_env, "ODOOOPS_PG_PORT")),
        "user": _require(services_env, "ODOOOPS_PG_USER"),
        "password": _require(services_env, "ODOOOPS_PG_PASSWORD"),
    }
    try:
        psycopg.connect(dbname="postgres", connect_timeout=5, **params).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {params['host']}:{params['port']} is not reachable "
                    f"({exc}): {START_HINT}", pytrace=False)
    return params


@pytest.fixture(scope="session")
def pg_admin_dsn(services_env: dict[str, str], pg_conn_params: dict[str, Any]) -> str:
    """postgresql://odooops:...@127.0.0.1:55432/postgres (superuser, maintenance database)."""
    return _require(services_env, "ODOOOPS_PG_DSN")


@pytest.fixture(scope="session")
def pg_host_from_containers(services_env: dict[str, str]) -> str:
    """The address containers on Docker bridge networks use to reach PostgreSQL."""
    return _require(services_env, "ODOOOPS_PG_HOST_FROM_CONTAINERS")


@pytest.fixture(scope="session")
def docker_host(services_env: dict[str, str]) -> str:
    """unix:///.../.work/docker/docker.sock of the private dockerd."""
    return _require(services_env, "DOCKER_HOST")


@pytest.fixture(scope="session")
def docker_client(docker_host: str) -> Iterator[docker.DockerClient]:
    """A Docker SDK client for the private dockerd, checked with a ping."""
    client = docker.DockerClient(base_url=docker_host, timeout=120)
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"dockerd at {docker_host} does not answer ({exc}): {START_HINT}",
                    pytrace=False)
    yield client
    client.close()


def _check_http(url: str, what: str) -> None:
    try:
        httpx.get(url, timeout=5)
    except httpx.HTTPError as exc:
        pytest.fail(f"{what} at {url} does not answer ({exc}): {START_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def caddy_admin_url(services_env: dict[str, str]) -> str:
    """http://127.0.0.1:PORT of Caddy's admin API (server "odooops", catch-all @id
    "odooops--catch-all" last: insert environment routes before it, e.g. PUT .../routes/0)."""
    url = _require(services_env, "ODOOOPS_CADDY_ADMIN")
    _check_http(url + "/config/", "Caddy admin API")
    return url


@pytest.fixture(scope="session")
def router_http_url(services_env: dict[str, str], caddy_admin_url: str) -> str:
    """http://127.0.0.1:PORT where Caddy serves the routed environments (404 when unrouted)."""
    return _require(services_env, "ODOOOPS_ROUTER_HTTP")


@pytest.fixture(scope="session")
def standin_image(services_env: dict[str, str], docker_client: docker.DockerClient,
                  docker_host: str) -> str:
    """Tag of the Odoo stand-in image (odooops/odoo-standin:19.0), checked to exist."""
    tag = _require(services_env, "ODOOOPS_STANDIN_IMAGE")
    try:
        image = docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {tag} is missing: {START_HINT}", pytrace=False)
    # A stale image would test old stand-in code: compare its label with the sources' digest.
    proc = subprocess.run(["bash", str(REPO_ROOT / "infra/images/build.sh"), "digest"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "DOCKER_HOST": docker_host})
    if image.labels.get("odooops.source-digest") != proc.stdout.strip():
        pytest.fail(f"image {tag} is older than tests/standin_odoo or infra/images/standin: "
                    f"{START_HINT} (it rebuilds the image)", pytrace=False)
    return tag


def drop_database(params: dict[str, Any], name: str) -> None:
    """Drop a database, disconnecting its sessions first (PostgreSQL 13+ FORCE)."""
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def fresh_db_name(pg_conn_params: dict[str, Any], unique_name: Any) -> Iterator[str]:
    """A unique database name (not created); whatever the test creates under it is dropped."""
    name = unique_name("db")
    yield name
    drop_database(pg_conn_params, name)
