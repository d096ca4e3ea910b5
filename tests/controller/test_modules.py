"""What a deploy installs and updates is read from the database's own module states and digests; the
schema gate refuses a database that does not match the code; default test tags are the repository's addons."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from reconciler.controller.modules import (
    DIGESTS_KEY,
    DatabaseModules,
    ModuleChanges,
    effective_test_tags,
    module_plan,
    read_database,
    schema_gate,
    schema_problems,
    store_digests,
)
from reconciler.errors import OdooOpsError

CODE = {"acme_base": ("tree-base-2", "1.1"), "acme_sale": ("tree-sale-1", "1.0"), "acme_new": ("tree-new-1", "1.0")}
T0 = datetime(2026, 1, 1, 12, 0, 0)


def db(states: dict[str, str], digests: dict[str, str], written: dict[str, datetime] | None = None) -> DatabaseModules:
    return DatabaseModules(states, digests, written or {})


def test_a_changed_installed_module_is_updated_never_reinstalled() -> None:
    # The database was last updated to acme_base's tree 1; the code has tree 2: -u, not -i.
    plan = module_plan(CODE, db({"base": "installed", "acme_base": "installed", "acme_sale": "installed",
                                 "acme_new": "uninstalled"},
                                {"acme_base": "tree-base-1", "acme_sale": "tree-sale-1"}),
                       wanted=["acme_sale", "acme_new"])
    assert plan.install == ("acme_new",) and plan.update == ("acme_base",)
    assert plan.why["acme_base"] == "its files changed" and plan.why["acme_new"] == "not installed"


def test_after_a_failed_deploy_the_next_one_updates_what_differs() -> None:
    # A refused or crashed deploy left acme_sale 'to upgrade' and an uninstalled wanted module: the
    # platform's memory of the last commit plays no part, the database says what is pending.
    plan = module_plan(CODE, db({"acme_base": "installed", "acme_sale": "to upgrade", "sale": "to upgrade",
                                 "acme_new": "to install"},
                                {"acme_base": "tree-base-2", "acme_sale": "tree-sale-1"}), wanted=["acme_sale"])
    assert plan.install == ("acme_new",)
    assert plan.update == ("acme_sale", "sale")
    assert "interrupted" in plan.why["acme_new"] and "to upgrade" in plan.why["sale"]


def test_a_database_without_digests_updates_every_repository_addon_once() -> None:
    plan = module_plan(CODE, db({"acme_base": "installed", "acme_sale": "installed"}, {}), wanted=["acme_sale"])
    assert plan.update == ("acme_base", "acme_sale") and plan.install == ()
    assert plan.why["acme_sale"] == "no digest recorded: updated once"


def test_nothing_to_do_when_digests_match_and_removed_addons_are_reported() -> None:
    states = {"acme_base": "installed", "acme_sale": "installed", "acme_old": "installed"}
    digests = {"acme_base": "tree-base-2", "acme_sale": "tree-sale-1", "acme_old": "tree-old"}
    plan = module_plan(CODE, db(states, digests), wanted=["acme_sale"])
    assert (plan.install, plan.update, plan.removed) == ((), (), ("acme_old",))


def test_schema_gate_names_what_does_not_match() -> None:
    ran = ModuleChanges(install=(), update=("acme_base",), removed=())
    fresh = {"acme_base": T0 + timedelta(seconds=5), "acme_sale": T0 + timedelta(seconds=5)}
    good = db({"acme_base": "installed", "acme_sale": "installed"}, {"acme_sale": "tree-sale-0"}, fresh)
    # acme_sale's digest is old, but the run wrote it (a dependent of acme_base): current
    assert schema_problems(CODE, good, ["acme_sale"], ran, T0) == {}
    stale = db({"acme_base": "installed", "acme_sale": "installed", "mail": "to upgrade"},
               {"acme_sale": "tree-sale-0"}, {"acme_base": T0 - timedelta(seconds=1)})
    problems = schema_problems(CODE, stale, ["acme_sale", "crm"], ran, T0)
    assert problems == {"pending": ["mail (to upgrade)"], "not_installed": ["acme_sale", "crm"][1:],
                        "not_updated": ["acme_base"], "stale": ["acme_sale"]}
    with pytest.raises(OdooOpsError) as err:
        schema_gate(CODE, stale, ["acme_sale", "crm"], "dev-x", "oo_clone_x", "feature/x", ran, T0)
    assert err.value.code == "SCHEMA_NOT_CURRENT" and "acme_base" in err.value.message
    assert "push" in err.value.remediation and err.value.details["problems"] == problems
    # only a missing wanted module: the install error of old, with its remediation
    with pytest.raises(OdooOpsError) as err2:
        schema_gate(CODE, good, ["acme_sale", "crm"], "dev-x", "dev-x", "feature/x", ran, T0)
    assert err2.value.code == "ODOO_MODULES_NOT_INSTALLED" and "crm" in err2.value.message


def test_default_test_tags_are_the_repository_addons() -> None:
    assert effective_test_tags(None, CODE) == "/acme_base,/acme_new,/acme_sale"
    assert effective_test_tags("", CODE) == "/acme_base,/acme_new,/acme_sale"
    assert effective_test_tags("/acme_sale:TestX", CODE) == "/acme_sale:TestX"
    assert effective_test_tags("all", CODE) is None  # the project asks for Odoo's whole suite
    assert effective_test_tags(None, {}) == ""  # nothing of its own to test


def test_read_and_store_digests_on_postgres(pg_conn_params: dict[str, Any], fresh_db_name: str) -> None:
    with psycopg.connect(**pg_conn_params, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{fresh_db_name}"')
    with psycopg.connect(**pg_conn_params, dbname=fresh_db_name, autocommit=True) as conn:
        # the two tables as Odoo has them (the columns used here)
        conn.execute("CREATE TABLE ir_module_module (id serial PRIMARY KEY, name varchar UNIQUE, state varchar, "
                     "latest_version varchar, write_date timestamp)")
        conn.execute("CREATE TABLE ir_config_parameter (id serial PRIMARY KEY, key varchar NOT NULL UNIQUE, "
                     "value text NOT NULL, create_uid int, create_date timestamp, write_uid int, write_date timestamp)")
        conn.execute("INSERT INTO ir_module_module (name, state, write_date) VALUES ('acme_base', 'installed', now()), "
                     "('acme_sale', 'to upgrade', now()), ('acme_new', 'uninstalled', NULL)")
        assert read_database(conn) == DatabaseModules(
            {"acme_base": "installed", "acme_sale": "to upgrade", "acme_new": "uninstalled"}, {},
            read_database(conn).written)
        # only what is installed gets a digest: acme_sale is pending, so the next deploy still updates it
        assert store_digests(conn, CODE) == {"acme_base": "tree-base-2"}
        conn.execute("UPDATE ir_module_module SET state = 'installed' WHERE name = 'acme_sale'")
        store_digests(conn, CODE)  # a second write replaces the value
        assert read_database(conn).digests == {"acme_base": "tree-base-2", "acme_sale": "tree-sale-1"}
        rows = conn.execute("SELECT count(*) FROM ir_config_parameter WHERE key = %s", (DIGESTS_KEY,)).fetchone()
        assert rows == (1,)
        conn.execute("UPDATE ir_config_parameter SET value = 'not json' WHERE key = %s", (DIGESTS_KEY,))
        assert read_database(conn).digests == {}  # garbled: every addon is updated once, then it is rewritten
