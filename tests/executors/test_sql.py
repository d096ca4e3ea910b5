"""SQL for the layers above the executors (executors/sql.py), on the real PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler.errors import OdooOpsError
from reconciler.executors.sql import database_errors, database_initialised, statement
from reconciler.platform.host import HostSettings

pytestmark = pytest.mark.usefixtures("services_env")


@pytest.fixture
def host(tmp_path: Path, services_env: dict[str, str]) -> HostSettings:
    return HostSettings.from_env(tmp_path / "state", services_env)


@pytest.fixture
def db(pg_conn_params: dict[str, Any], fresh_db_name: str) -> str:
    with psycopg.connect(dbname="postgres", autocommit=True, **pg_conn_params) as conn:
        conn.execute(f'CREATE DATABASE "{fresh_db_name}"')
    return fresh_db_name


def test_statement_quotes_the_names_it_is_given(pg_conn_params: dict[str, Any], db: str) -> None:
    hostile = 'odd "name"; DROP TABLE keep; --'
    with psycopg.connect(dbname=db, autocommit=True, **pg_conn_params) as conn:
        conn.execute("CREATE TABLE keep (id int)")
        conn.execute(statement("CREATE TABLE {} (id int, {} text)", hostile, "Mixed Case"))
        conn.execute(statement("INSERT INTO {} VALUES (%s, %s)", hostile), (1, "x"))
        row = conn.execute(statement("SELECT count(*), max({}) FROM {} WHERE id = %(i)s", "Mixed Case", hostile),
                           {"i": 1}).fetchone()
        assert row == (1, "x")
        assert conn.execute("SELECT to_regclass('keep') IS NOT NULL").fetchone() == (True,)


def test_database_errors_become_the_projects_error(pg_conn_params: dict[str, Any], db: str) -> None:
    with psycopg.connect(dbname=db, autocommit=True, **pg_conn_params) as conn, \
            pytest.raises(OdooOpsError) as err, database_errors():
        conn.execute("SELECT * FROM no_such_table")
    assert err.value.code == "DB_STATEMENT_FAILED"
    assert 'relation "no_such_table" does not exist' in err.value.message
    assert isinstance(err.value.__cause__, psycopg.errors.UndefinedTable)
    with pytest.raises(ValueError), database_errors():  # anything but PostgreSQL's own errors passes unchanged
        raise ValueError("not a database error")


def test_database_initialised_reads_odoos_registry(host: HostSettings, pg_conn_params: dict[str, Any],
                                                  db: str, unique_name: Any) -> None:
    assert not database_initialised(host, unique_name("missing"))  # no such database
    assert not database_initialised(host, db)  # no registry
    with psycopg.connect(dbname=db, autocommit=True, **pg_conn_params) as conn:
        conn.execute("CREATE TABLE ir_module_module (name text, state text)")
        conn.execute("INSERT INTO ir_module_module VALUES ('base', 'to install')")
        assert not database_initialised(host, db)
        conn.execute("UPDATE ir_module_module SET state = 'installed'")
    assert database_initialised(host, db)


def test_database_initialised_names_an_unreachable_server(host: HostSettings) -> None:
    closed = dataclasses.replace(host, pg_host="127.0.0.1", pg_port=1)
    with pytest.raises(OdooOpsError) as err:
        database_initialised(closed, "postgres")
    assert err.value.code == "POSTGRES_UNREACHABLE" and "127.0.0.1:1" in err.value.message
