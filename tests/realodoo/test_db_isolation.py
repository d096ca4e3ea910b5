"""Real Odoo 19 behind the product's pg_hba (samerole, no superuser from containers), on a throwaway cluster:
an environment's Odoo initialises and serves its own database with its own login (the image's wait on
`postgres`, Odoo's database list there, then its database), and the same login cannot open another one."""

from __future__ import annotations

import secrets
from typing import Any

import docker
import httpx
from psycopg import sql

from tests.data.test_pg_hba import Throwaway, throwaway  # noqa: F401  (the cluster fixture)
from tests.realodoo.odoo_http import serve_odoo

ODOO_TIMEOUT_S = 900


def _odoo(docker_client: docker.DockerClient, image: str, cluster: Throwaway, login: str, password: str,
          command: list[str]) -> tuple[int, str]:
    container = docker_client.containers.create(
        image, command, init=True, labels={"odooops.test": "realodoo"},
        environment={"HOST": cluster.gateway, "PORT": str(cluster.port), "USER": login, "PASSWORD": password})
    try:
        container.start()
        code = int(container.wait(timeout=ODOO_TIMEOUT_S)["StatusCode"])
        return code, container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)


def test_real_odoo_serves_its_own_database_and_reaches_no_other(
        throwaway: Throwaway, docker_client: docker.DockerClient, odoo_image: str) -> None:  # noqa: F811
    pg = throwaway.admin()
    env, other = f"prod-{secrets.token_hex(4)}", f"pr-{secrets.token_hex(4)}"
    pw = {env: secrets.token_hex(12), other: secrets.token_hex(12)}
    with pg.connect() as conn:
        for role, password in pw.items():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                           sql.Literal(password)))
    for db in (env, other):
        pg.create(db, db)
    flags = [f"--db-filter=^{env}$", "--max-cron-threads=0", "--without-demo=all"]
    code, logs = _odoo(docker_client, odoo_image, throwaway, env, pw[env],
                       ["odoo", "-d", env, "-i", "base", "--stop-after-init", *flags])
    assert code == 0, logs[-4000:]

    # The preview's login, pointed at production's database: refused at the door.
    code, logs = _odoo(docker_client, odoo_image, throwaway, other, pw[other],
                       ["odoo", "-d", env, "-u", "base", "--stop-after-init", *flags])
    assert code != 0 and 'no pg_hba.conf entry for host' in logs and f'database "{env}"' in logs, logs[-4000:]

    kwargs: dict[str, Any] = {
        "image": odoo_image, "command": ["odoo", "-d", env, *flags], "init": True, "name": f"odooops-test-{env}",
        "labels": {"odooops.test": "realodoo"},
        "environment": {"HOST": throwaway.gateway, "PORT": str(throwaway.port), "USER": env, "PASSWORD": pw[env]}}
    with serve_odoo(docker_client, kwargs, timeout=ODOO_TIMEOUT_S) as server:
        # /web/login needs Odoo's database list (read in `postgres`) to pick the database for the host.
        login = httpx.get(f"{server.url}/web/login", timeout=60)
        assert login.status_code == 200 and 'name="login"' in login.text, (login.status_code, server.logs())
        health = httpx.get(f"{server.url}/web/health", params={"db_server_status": 1}, timeout=60)
        assert health.status_code == 200 and health.json().get("db_server_status") is True, health.text
