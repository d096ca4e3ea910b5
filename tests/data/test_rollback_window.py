"""What a rollback's restore would discard, and whether the previous code may keep today's database
(real PostgreSQL, a database made by the stand-in `odoo -i`, a real backup)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from reconciler.data.backup import create_backup
from reconciler.service.rollback import backup_time, code_only_refusal, data_loss_window, describe_window
from tests.data.test_production_copy import mark_production

pytestmark = pytest.mark.integration


def test_the_window_counts_records_written_since_the_backup_and_module_changes_refuse_code_only(
        production: dict[str, Any], pg_conn_params: dict[str, Any]) -> None:
    ctx, prod = production["ctx"], production["env"]
    mark_production(ctx, prod)
    backup = create_backup(ctx, prod, reason="pre-deploy")
    restore = {"id": backup.id}
    since = backup_time(ctx, prod, restore)
    assert abs(since - backup.created.timestamp()) < 1e-3

    window = data_loss_window(ctx, prod, since)
    assert window["created"] == 0 and window["changed"] == 0 and window["tables"] == {}
    assert "no record was created or changed since then" in describe_window(window, backup.id)
    assert code_only_refusal(ctx, prod, restore, since) is None  # nothing changed: the old code fits

    with psycopg.connect(dbname=prod, autocommit=True, **pg_conn_params) as c:
        c.execute("INSERT INTO res_partner (name) VALUES ('Order placed after the deploy')")
        c.execute("UPDATE res_partner SET city = 'Boston', write_date = now() at time zone 'UTC' "
                  "WHERE id = (SELECT min(id) FROM res_partner WHERE name = 'Ada Lovelace')")
    window = data_loss_window(ctx, prod, since)
    assert window["tables"] == {"res_partner": {"created": 1, "changed": 1}}
    text = describe_window(window, backup.id)
    assert f"backup {backup.id} was taken at {window['since_utc']}" in text
    assert "1 records created and 1 changed since then are discarded (res_partner 1 created/1 changed)" in text
    assert code_only_refusal(ctx, prod, restore, since) is None  # records are data, not a schema change

    with psycopg.connect(dbname=prod, autocommit=True, **pg_conn_params) as c:
        # What `-u mail` leaves: the module row rewritten (same version), then a version bump of contacts.
        c.execute("UPDATE ir_module_module SET write_date = now() at time zone 'UTC' WHERE name = 'mail'")
        c.execute("UPDATE ir_module_module SET latest_version = latest_version || '.1', "
                  "write_date = now() at time zone 'UTC' WHERE name = 'contacts'")
    refusal = code_only_refusal(ctx, prod, restore, since)
    assert refusal is not None and "updated contacts " in refusal and "updated in place" in refusal
    assert "mail" in refusal.split("updated in place")[1]
    window = data_loss_window(ctx, prod, since)
    assert "ir_module_module" in window["technical_tables"] and "ir_module_module" not in window["tables"]
