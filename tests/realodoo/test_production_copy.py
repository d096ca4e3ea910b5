"""A copy of a real Odoo 19 production (sale_management) comes from its newest verified backup, never from
the live database: production keeps an open session and transaction through the copy, the copy holds the
backup's data (not a write made after it), and it is a working Odoo database (served, logged into as the
copy's own admin, its records read through the ORM)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
import pytest
from psycopg.pq import TransactionStatus

from reconciler.data.backup import create_backup, record_verification
from reconciler.data.backup_check import verify_backup
from reconciler.data.clone import clone_to_scratch
from reconciler.data.production_copy import MAX_AGE_ENV
from reconciler.executors.postgres import Postgres
from tests.data.conftest import data_context, standin_runner
from tests.realodoo.conftest import WORK, RealOdoo
from tests.realodoo.data_env import env_role, write_state
from tests.realodoo.odoo_http import odoo_login

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

MODULES = ("sale_management",)
ODOO_UID = 101


@pytest.fixture
def stage_role(pg_conn_params: dict[str, Any]) -> Iterator[str]:
    """A staging environment's database role (as Terraform makes it); it and its databases go afterwards."""
    with env_role(pg_conn_params, "stage") as role:
        yield role


def test_a_staging_copy_of_a_real_production_comes_from_its_backup_and_works(
        real_odoo: RealOdoo, odoo_db: Any, odoo_image: str, stage_role: str, tmp_path: Path,
        services_env: dict[str, str], pg_conn_params: dict[str, Any], pg_host_from_containers: str,
        docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_AGE_ENV, raising=False)
    prod = odoo_db(MODULES)
    pg = Postgres(pg_conn_params["host"], int(pg_conn_params["port"]), pg_conn_params["user"],
                  pg_conn_params["password"])
    ctx = data_context(tmp_path / "state", services_env, pg)
    write_state(ctx, {prod: {"tier": "production"}, stage_role: {"tier": "staging"}})
    # Production's filestore where the platform keeps it (linked from the test database's).
    ctx.host.filestore_dir(prod).parent.mkdir(parents=True)
    source_files = WORK / "data" / prod / "filestore" / prod
    if source_files.is_dir():
        subprocess.run(["cp", "-al", str(source_files), str(ctx.host.filestore_dir(prod))], check=True)
    else:
        ctx.host.filestore_dir(prod).mkdir()
    os.chown(ctx.host.filestore_dir(prod), ODOO_UID, ODOO_UID)

    made = real_odoo.shell(prod, (
        "p = env['res.partner'].create({'name': 'Backup Era Customer', 'email': 'era@customer.example'})\n"
        "o = env['sale.order'].create({'partner_id': p.id, 'origin': 'Backup Era Order'})\n"
        "env.cr.commit()\n"
        "print('MADE', p.id, o.id)\n"))
    line = next((x for x in made.output.splitlines() if x.startswith("MADE ")), None)
    assert line is not None, made.output[-3000:]
    partner_id, order_id = (int(x) for x in line.split()[1:3])

    backup = create_backup(ctx, prod, reason="scheduled")
    record_verification(ctx, prod, backup.id, verify_backup(ctx, prod, backup.id))
    with psycopg.connect(dbname=prod, autocommit=True, **pg_conn_params) as conn:
        conn.execute("UPDATE sale_order SET origin = 'Changed After The Backup' WHERE id = %s", (order_id,))

    # One of production's web workers, in the middle of a transaction, for the whole copy.
    held = psycopg.connect(dbname=prod, application_name="odoo-web-worker", **pg_conn_params)
    held.execute("SELECT count(*) FROM sale_order").fetchone()
    pid = held.info.backend_pid
    result = None
    served = None
    try:
        started = time.monotonic()
        # Masked, as every copy of production outside production must be (personal data gets fake values;
        # the order's source document is not personal, so it tells which data the copy holds).
        result = clone_to_scratch(ctx, prod, stage_role, neutralize=True, mask=True,
                                  run_odoo=standin_runner(docker_client, odoo_image, pg_conn_params,
                                                          pg_host_from_containers, stage_role))
        seconds = time.monotonic() - started
        assert held.info.transaction_status == TransactionStatus.INTRANS
        assert held.execute("SELECT 'not terminated'").fetchone() == ("not terminated",)
        with pg.connect() as conn:
            assert conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == \
                ("idle in transaction",)
        assert result.source_backup is not None and result.source_backup["id"] == backup.id
        assert result.source_backup["taken_now"] is False
        assert result.verification["ok"], result.verification
        with pg.connect(result.db) as conn:
            names = [r[0] for r in conn.execute("SELECT origin FROM sale_order WHERE id = %s", (order_id,))]
            neutralized = conn.execute("SELECT value FROM ir_config_parameter "
                                       "WHERE key = 'database.is_neutralized'").fetchone()
        assert names == ["Backup Era Order"], names  # the backup's data, not the later write
        assert neutralized == ("true",)
        print(f"copy of {backup.id} ({backup.sizes['total']} bytes) in {seconds:.1f}s: {result.steps}")

        # A working Odoo database: served by real Odoo, the copy's own admin logs in, the ORM reads it.
        served = result.db
        real_odoo.data_dir(served)
        target = WORK / "data" / served / "filestore"
        target.mkdir(exist_ok=True)
        os.chown(target, ODOO_UID, ODOO_UID)
        shutil.move(str(result.filestore), str(target / served))
        password = ctx.secrets.get(stage_role, "admin_password")
        assert password and password != "admin"
        with real_odoo.serve(served) as server:
            assert odoo_login(server.url, served, "admin", password)
            assert not odoo_login(server.url, served, "admin", "admin")
            with httpx.Client(base_url=server.url, timeout=120) as client:
                auth = client.post("/web/session/authenticate", json={
                    "jsonrpc": "2.0", "method": "call", "id": 1,
                    "params": {"db": served, "login": "admin", "password": password}})
                assert auth.json()["result"]["uid"]
                read = client.post("/web/dataset/call_kw/sale.order/read", json={
                    "jsonrpc": "2.0", "method": "call", "id": 2, "params": {
                        "model": "sale.order", "method": "read", "args": [[order_id], ["partner_id", "origin"]],
                        "kwargs": {}}}).json()
                assert "error" not in read, read
                assert read["result"][0]["origin"] == "Backup Era Order"
                assert read["result"][0]["partner_id"][0] == partner_id  # masked name, same partner
    finally:
        held.rollback()
        held.close()
        if result is not None:
            pg.drop(result.db)
            shutil.rmtree(result.filestore, ignore_errors=True)
        if served is not None:
            shutil.rmtree(WORK / "data" / served, ignore_errors=True)
        shutil.rmtree(ctx.host.filestore_root, ignore_errors=True)
