"""SQL for the layers above the executors, which never import the driver: the shape of a connection they
run statements on, statements naming tables composed here (identifiers quoted by psycopg.sql), PostgreSQL's
errors turned into the project's, and the reads of an Odoo database that apply makes before Odoo runs.

Connections come from Postgres.connect; the data layer writes SQL text and passes parameters separately."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

import psycopg
from psycopg import sql

from reconciler.errors import OdooOpsError

if TYPE_CHECKING:
    from reconciler.platform.host import HostSettings


class Rows(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """An open connection to one database, as Postgres.connect returns it: statements are text (or a
    `statement`) with %s / %(name)s placeholders, parameters go separately."""

    def execute(self, query: Any, params: Any = None) -> Rows: ...

    def transaction(self) -> AbstractContextManager[Any]: ...


def statement(template: str, *tables: str) -> sql.Composed:
    """The template with each {} replaced by a table (or column) name, quoted as an identifier; parameter
    placeholders (%s, %(name)s) are left for execute."""
    return sql.SQL(template).format(*(sql.Identifier(t) for t in tables))


def copy_rows(conn: Connection, copy: str, rows: Iterable[Sequence[Any]]) -> None:
    """Write rows through `COPY table (columns) FROM STDIN` (the fastest way in for many rows)."""
    with cast(psycopg.Connection[Any], conn).cursor().copy(copy) as cp:
        for row in rows:
            cp.write_row(row)


@contextmanager
def database_errors() -> Iterator[None]:
    """PostgreSQL's errors raised inside (a statement refused, a connection lost) come out as OdooOpsError
    DB_STATEMENT_FAILED with the server's message: for callers that report a failure and go on."""
    try:
        yield
    except psycopg.Error as exc:
        raise OdooOpsError("DB_STATEMENT_FAILED", str(exc).strip(),
                           "see the PostgreSQL server's log for the statement; the next run tries again") from exc


def database_initialised(host: HostSettings, database: str) -> bool:
    """True when the database holds an Odoo registry (base installed); False when it does not exist."""
    try:
        with psycopg.connect(host=host.pg_host, port=host.pg_port, user=host.pg_admin_user,
                             password=host.pg_admin_password, dbname=database, connect_timeout=10) as conn:
            row = conn.execute("SELECT to_regclass('public.ir_module_module') IS NOT NULL").fetchone()
            if not row or not row[0]:
                return False
            row = conn.execute("SELECT state FROM ir_module_module WHERE name = 'base'").fetchone()
            return bool(row and row[0] == "installed")
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            return False
        raise OdooOpsError("POSTGRES_UNREACHABLE", f"cannot reach PostgreSQL at {host.pg_host}:{host.pg_port}: "
                           f"{str(exc).strip().splitlines()[0]}",
                           "start PostgreSQL (bash scripts/services.sh start) and re-run odooops apply") from exc
