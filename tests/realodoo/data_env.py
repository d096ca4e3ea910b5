"""What data-workflow tests on real Odoo need around a database: state entries that give databases a
tier, and a target environment's role as Terraform makes it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from reconciler.data.context import DataContext


def write_state(ctx: DataContext, entries: dict[str, dict[str, Any]]) -> None:
    """Record each named database as a running environment (the entry says its tier and more)."""
    now = time.time()
    doc = {"schema": "odooops/state/v1", "environments": {
        name: {"env": name, "branch": name, "commit": "0" * 40, "spec_digest": "", "settings": {},
               "state": "running", "deployed_at": now, "updated_at": now, **entry}
        for name, entry in entries.items()}}
    ctx.store._write(doc)


@contextmanager
def env_role(pg_conn_params: dict[str, Any], prefix: str) -> Iterator[str]:
    """A new environment's database role; it and every database it owns are dropped afterwards."""
    role = f"{prefix}-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **pg_conn_params) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(role)))
    try:
        yield role
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **pg_conn_params) as conn:
            owned = conn.execute("SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = %s",
                                 (role,)).fetchall()
            for (db,) in owned:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
