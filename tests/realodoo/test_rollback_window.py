"""A rollback's data-loss window and its code-only check, on a real Odoo 19 database (sale_management): a
record created through the ORM after the pre-deploy backup is counted (Odoo's create_date/write_date are
UTC), and a real `-u` of a module makes the previous code unfit for today's database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.data.backup import create_backup
from reconciler.executors.postgres import Postgres
from reconciler.service.rollback import backup_time, code_only_refusal, data_loss_window, describe_window
from tests.data.conftest import data_context
from tests.realodoo.conftest import RealOdoo

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

MODULES = ("sale_management",)  # the template tests/realodoo/test_production_copy.py uses too


def test_window_and_code_only_check_on_real_odoo(real_odoo: RealOdoo, odoo_db: Any, tmp_path: Path,
                                                 services_env: dict[str, str],
                                                 pg_conn_params: dict[str, Any]) -> None:
    prod = odoo_db(MODULES)
    pg = Postgres(pg_conn_params["host"], int(pg_conn_params["port"]), pg_conn_params["user"],
                  pg_conn_params["password"])
    ctx = data_context(tmp_path / "state", services_env, pg)
    ctx.store._write({"schema": "odooops/state/v1", "environments": {prod: {
        "env": prod, "branch": "main", "tier": "production", "commit": "0" * 40, "state": "running",
        "settings": {}, "updated_at": time.time()}}})
    ctx.host.filestore_dir(prod).mkdir(parents=True)
    backup = create_backup(ctx, prod, reason="pre-deploy")
    restore = {"id": backup.id}
    since = backup_time(ctx, prod, restore)

    made = real_odoo.shell(prod, (
        "p = env['res.partner'].create({'name': 'Ordered After The Deploy'})\n"
        "env.cr.commit()\n"
        "print('MADE', p.id)\n"))
    assert any(x.startswith("MADE ") for x in made.output.splitlines()), made.output[-3000:]
    window = data_loss_window(ctx, prod, since)
    assert window["tables"].get("res_partner") == {"created": 1, "changed": 0}, window
    assert window["created"] >= 1
    assert "res_partner 1 created/0 changed" in describe_window(window, backup.id)
    assert code_only_refusal(ctx, prod, restore, since) is None  # records only: the old code fits

    started = time.monotonic()
    real_odoo.run("-u", "sale_management", "--stop-after-init", "--no-http", db=prod, timeout=1800)
    print(f"-u sale_management: {time.monotonic() - started:.1f}s")
    refusal = code_only_refusal(ctx, prod, restore, since)
    assert refusal is not None and "updated in place" in refusal and "sale_management" in refusal, refusal
    window = data_loss_window(ctx, prod, since)
    assert "ir_module_module" in window["technical_tables"], window["technical_tables"]
    assert window["tables"].get("res_partner", {}).get("created") == 1
