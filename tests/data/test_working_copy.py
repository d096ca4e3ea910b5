"""A deploy's working copy on the real PostgreSQL: made from the live database and filestore, the live
data untouched by what is written to the copy; swapped in, put back (undo) or finished (set-aside dropped)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from psycopg import sql

from reconciler.data.context import DataContext
from reconciler.data.working_copy import WorkingCopy
from reconciler.executors.postgres import Postgres

pytestmark = pytest.mark.integration


def rows(pg: Postgres, db: str) -> list[str]:
    with pg.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM note ORDER BY name").fetchall()]


def live_env(pg: Postgres, ctx: DataContext, make_role: Callable[[str], str]) -> str:
    """An env's live database (named and owned like one) with a row and a filestore file."""
    env = make_role("wc")
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(env), sql.Identifier(env)))
    with pg.connect(env) as conn:
        conn.execute("CREATE TABLE note (name text)")
        conn.execute("INSERT INTO note VALUES ('live')")
    fs = ctx.host.filestore_dir(env)
    (fs / "ab").mkdir(parents=True)
    (fs / "ab" / "abcdef").write_bytes(b"attachment")
    return env


def test_copy_swap_undo_and_finish(pg: Postgres, ctx: DataContext, make_role: Callable[[str], str]) -> None:
    env = live_env(pg, ctx, make_role)
    live_fs = ctx.host.filestore_dir(env)

    # A copy written to (the update, the tests) leaves the live database and filestore as they were.
    copy = WorkingCopy.make(pg, ctx.host, env)
    assert copy.db.startswith("oo_clone_") and copy.timings["copy_database"] >= 0 and copy.bytes > 0
    with pg.connect(copy.db) as conn:
        conn.execute("INSERT INTO note VALUES ('copy')")
    assert (copy.filestore / "ab" / "abcdef").read_bytes() == b"attachment"
    assert (copy.filestore / "ab" / "abcdef").stat().st_ino == (live_fs / "ab" / "abcdef").stat().st_ino
    (copy.filestore / "cd").mkdir()
    (copy.filestore / "cd" / "new").write_bytes(b"written by the update")
    assert rows(pg, env) == ["live"] and not (live_fs / "cd").exists()
    # Only the env's role may connect to the copy, as to the env's own database.
    with pg.connect() as conn:
        grantees = {r[0] for r in conn.execute(
            "SELECT coalesce(pg_get_userbyid(NULLIF(a.grantee, 0)), 'PUBLIC') FROM pg_database d, "
            "aclexplode(d.datacl) a WHERE d.datname = %s AND a.privilege_type = 'CONNECT'", (copy.db,)).fetchall()}
    assert grantees == {env}, grantees

    # Swapped in: the env's name serves the copy; the live data is set aside. Undo puts it back.
    copy.swap(pg)
    assert rows(pg, env) == ["copy", "live"] and (live_fs / "cd" / "new").exists()
    assert pg.exists(copy.old) and copy.old_filestore.exists()
    done = copy.undo(pg)
    assert rows(pg, env) == ["live"] and not (live_fs / "cd").exists(), done
    assert not pg.exists(copy.db) and not pg.exists(copy.old) and not copy.filestore.exists()

    # A refused copy is discarded; the live data stays.
    refused = WorkingCopy.make(pg, ctx.host, env)
    refused.discard(pg)
    assert not pg.exists(refused.db) and not refused.filestore.exists() and rows(pg, env) == ["live"]

    # A passing copy: swapped in, then the set-aside goes once the new version is healthy.
    passing = WorkingCopy.make(pg, ctx.host, env)
    with pg.connect(passing.db) as conn:
        conn.execute("INSERT INTO note VALUES ('updated')")
    passing.swap(pg)
    passing.finish(pg)
    assert rows(pg, env) == ["live", "updated"]
    assert not pg.exists(passing.old) and not passing.old_filestore.exists() and not pg.exists(passing.db)
    assert (live_fs / "ab" / "abcdef").read_bytes() == b"attachment"


def test_copy_of_a_missing_database_fails_cleanly(pg: Postgres, ctx: DataContext,
                                                   make_role: Callable[[str], str]) -> None:
    env = make_role("wc")
    from reconciler.errors import OdooOpsError

    with pytest.raises(OdooOpsError) as err:
        WorkingCopy.make(pg, ctx.host, env)
    assert err.value.code == "CLONE_SOURCE_MISSING"
    assert not list(ctx.host.filestore_root.glob(f"{env}/filestore/oo_clone_*"))
