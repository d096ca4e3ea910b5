"""The PostgreSQL executor against the real server: clone with quiesce, faults, ownership, lifecycle."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from reconciler.data.context import DataContext
from reconciler.errors import OdooOpsError
from reconciler.executors.postgres import Postgres
from tests.data.conftest import env_name

pytestmark = pytest.mark.integration

SCHEMA_OBJECTS = """
CREATE SCHEMA extra;
CREATE TABLE public.partner (id serial PRIMARY KEY, name text);
CREATE TABLE extra.t (id bigint GENERATED ALWAYS AS IDENTITY, v text);
CREATE SEQUENCE public.free_seq;
CREATE VIEW public.v_partner AS SELECT id, name FROM public.partner;
CREATE MATERIALIZED VIEW public.mv_partner AS SELECT count(*) AS n FROM public.partner;
CREATE FUNCTION public.f(a integer, b text) RETURNS text LANGUAGE sql AS 'SELECT b || a';
CREATE PROCEDURE extra.p() LANGUAGE sql AS 'SELECT 1';
CREATE TYPE public.mood AS ENUM ('ok', 'sad');
CREATE DOMAIN public.posint AS integer CHECK (VALUE > 0);
CREATE TYPE extra.pair AS (a integer, b integer);
INSERT INTO public.partner (name) SELECT 'p' || g FROM generate_series(1, 100) g;
"""

OWNERS = """
SELECT 'schema:' || nspname, nspowner::regrole::text FROM pg_namespace WHERE nspname IN ('public', 'extra')
UNION ALL SELECT 'rel:' || relname, relowner::regrole::text FROM pg_class
  WHERE relnamespace IN ('public'::regnamespace, 'extra'::regnamespace) AND relkind IN ('r','S','v','m')
UNION ALL SELECT 'proc:' || proname, proowner::regrole::text FROM pg_proc
  WHERE pronamespace IN ('public'::regnamespace, 'extra'::regnamespace)
UNION ALL SELECT 'type:' || typname, typowner::regrole::text FROM pg_type
  WHERE typnamespace IN ('public'::regnamespace, 'extra'::regnamespace) AND typtype IN ('d','e','c')
"""


def _owners(pg: Postgres, db: str) -> dict[str, str]:
    with pg.connect(db) as conn:
        owners = {k: v.strip('"') for k, v in conn.execute(OWNERS).fetchall()}
    # `public` belongs to pg_database_owner (PG 14+), i.e. whoever owns the database: left as is.
    assert owners.pop("schema:public") == "pg_database_owner"
    return owners


def _source(pg: Postgres, make_db: Callable[..., str], owner: str) -> str:
    db = make_db("src", owner)
    with psycopg.connect(dbname=db, autocommit=True, **{**pg.params, "user": owner, "password": owner}) as conn:
        conn.execute(SCHEMA_OBJECTS)
    return db


def _allowed(pg: Postgres, db: str) -> bool:
    with pg.connect() as conn:
        return bool(conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (db,)).fetchone()[0])


def test_clone_reassign_and_lifecycle(pg: Postgres, make_role: Callable[[str], str], make_db: Callable[..., str],
                                      scratch_dbs: list[str]) -> None:
    prod, stage = make_role("prod"), make_role("stage")
    src = _source(pg, make_db, prod)
    dst = "oo_clone_" + env_name("x")[-10:].replace("-", "")
    scratch_dbs.append(dst)
    seconds = pg.clone(src, dst, owner=stage)
    assert seconds > 0
    assert pg.exists(dst) and dst in pg.list_databases("oo_clone_")
    assert pg.size_bytes(dst) > 0
    with pg.connect(dst) as conn:
        assert conn.execute("SELECT count(*) FROM public.partner").fetchone() == (100,)
    before = _owners(pg, dst)
    assert set(before.values()) == {prod}, before  # a TEMPLATE copy keeps the source's owners
    changed = pg.reassign_objects(dst, stage)
    after = _owners(pg, dst)
    assert set(after.values()) == {stage}, after
    assert changed >= 11
    assert "rel:partner_id_seq" in after and "proc:p" in after and "type:pair" in after
    # Only inside that database: the source and the source database itself keep their owner.
    assert set(_owners(pg, src).values()) == {prod}
    with pg.connect() as conn:
        assert conn.execute("SELECT datdba::regrole::text FROM pg_database WHERE datname = %s",
                            (src,)).fetchone()[0].strip('"') == prod
    assert pg.reassign_objects(dst, stage) == 0  # idempotent
    renamed = dst + "r"
    scratch_dbs.append(renamed)
    held = psycopg.connect(dbname=dst, autocommit=True, **pg.params)  # rename terminates sessions
    pg.rename(dst, renamed)
    assert held.closed or held.broken or _dead(held)
    assert not pg.exists(dst) and pg.exists(renamed)
    pg.drop(renamed)
    assert not pg.exists(renamed)


def _dead(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_clone_errors_name_the_database(pg: Postgres, make_db: Callable[..., str], make_role: Callable[[str], str],
                                        scratch_dbs: list[str]) -> None:
    src = make_db("src")
    with pytest.raises(OdooOpsError) as missing:
        pg.clone(src + "-nope", src + "-x")
    assert missing.value.code == "CLONE_SOURCE_MISSING" and src + "-nope" in missing.value.message
    with pytest.raises(OdooOpsError) as exists:
        pg.clone(src, src)
    assert exists.value.code == "CLONE_TARGET_EXISTS"
    with pytest.raises(OdooOpsError) as no_role:
        scratch_dbs.append(src + "-y")
        pg.clone(src, src + "-y", owner="no-such-role-" + src)
    assert no_role.value.code == "CLONE_FAILED" and "no-such-role" in no_role.value.message
    assert not pg.exists(src + "-y") and _allowed(pg, src)
    with pytest.raises(OdooOpsError) as role:
        pg.reassign_objects(src, "no-such-role-" + src)
    assert role.value.code == "ROLE_MISSING"


def test_clone_terminates_open_sessions_and_restores_connections(pg: Postgres, make_db: Callable[..., str],
                                                                 scratch_dbs: list[str]) -> None:
    src = make_db("src")
    held = psycopg.connect(dbname=src, autocommit=True, application_name="held-by-test", **{
        k: v for k, v in pg.params.items()})
    dst = src + "-c"
    scratch_dbs.append(dst)
    pg.clone(src, dst)
    assert pg.exists(dst)
    assert _dead(held)
    assert _allowed(pg, src)
    held.close()
    # An environment's database left closed by a clone that died reopens; a closed oo_* template stays closed.
    pg.allow_connections(src, False)
    scratch_dbs.append(src + "-d")
    pg.clone(src, src + "-d")
    assert _allowed(pg, src)
    template = "oo_tpl_" + src.replace("-", "")[-12:]
    scratch_dbs.append(template)
    pg.clone(src, template)
    pg.allow_connections(template, False)
    scratch_dbs.append(template + "_c")
    pg.clone(template, template + "_c")
    assert not _allowed(pg, template) and _allowed(pg, template + "_c")


def test_clone_source_busy_names_the_session(pg: Postgres, make_db: Callable[..., str],
                                             scratch_dbs: list[str]) -> None:
    """A session that cannot be terminated (its backend is stopped: a stuck client) -> CLONE_SOURCE_BUSY."""
    src = make_db("src")
    held = psycopg.connect(dbname=src, autocommit=True, application_name="stuck-report-job", **pg.params)
    pid = held.info.backend_pid
    try:
        os.kill(pid, signal.SIGSTOP)  # PostgreSQL runs on this host; the signal to terminate stays pending
    except PermissionError:
        pytest.fail("the test must run as root or as the PostgreSQL user to stop a backend")
    dst = src + "-c"
    scratch_dbs.append(dst)
    try:
        with pytest.raises(OdooOpsError) as busy:
            pg.clone(src, dst, wait_s=1)
    finally:
        os.kill(pid, signal.SIGCONT)
        held.close()
    assert busy.value.code == "CLONE_SOURCE_BUSY"
    assert "stuck-report-job" in busy.value.message and str(pid) in busy.value.message
    assert busy.value.details["sessions"][0]["pid"] == pid
    assert not pg.exists(dst)
    assert _allowed(pg, src)


def test_clone_killed_mid_copy(pg: Postgres, make_db: Callable[..., str], scratch_dbs: list[str]) -> None:
    """PostgreSQL ends the CREATE DATABASE session mid-clone: clear error, nothing left, source reopened."""
    src = make_db("src")
    dst = src + "-c"
    scratch_dbs.append(dst)
    # Another session holds a lock on the source database object, so CREATE DATABASE waits visibly.
    blocker = psycopg.connect(dbname="postgres", **pg.params)
    blocker.execute(f'COMMENT ON DATABASE "{src}" IS \'held\'')
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["seconds"] = pg.clone(src, dst, wait_s=5)
        except OdooOpsError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        with pg.connect() as conn:
            deadline = time.monotonic() + 30
            row = None
            while row is None and time.monotonic() < deadline:
                row = conn.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE%%' "
                                   "AND wait_event_type = 'Lock' AND query LIKE %s",
                                   (f'%"{dst}"%',)).fetchone()
                if row is None:
                    time.sleep(0.05)  # polling the catalog until the copy is visibly waiting
            assert row is not None, "the CREATE DATABASE never showed up waiting"
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
    finally:
        blocker.rollback()
        blocker.close()
        worker.join(60)
    err = outcome.get("error")
    assert isinstance(err, OdooOpsError), outcome
    assert err.code == "CLONE_FAILED" and src in err.message and dst in err.message
    assert "terminating connection" in err.message
    assert not pg.exists(dst)
    assert _allowed(pg, src)


def test_context_entry_and_odoo_errors(ctx: DataContext) -> None:
    with pytest.raises(OdooOpsError) as nf:
        ctx.entry("nowhere")
    assert nf.value.code == "ENV_NOT_FOUND" and "odooops status" in nf.value.remediation
    data = ctx.store._read()
    data["environments"]["staging"] = {"env": "staging", "state": "expired", "branch": "staging"}
    ctx.store._write(data)
    assert ctx.entry("staging")["branch"] == "staging"
    with pytest.raises(OdooOpsError) as nd:
        ctx.odoo("staging", ["odoo", "--version"])
    assert nd.value.code == "ENV_NOT_DEPLOYED" and "--branch staging" in nd.value.remediation
