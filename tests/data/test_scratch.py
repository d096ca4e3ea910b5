"""The scratch sweep on the real PostgreSQL: what a killed clone, restore or check left behind goes; what
is recent, in use, owned by a busy environment or the set-aside live data stays."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from reconciler.data.context import DataContext
from reconciler.data.scratch import old_name, parse, scratch_name, sweep
from reconciler.executors.postgres import Postgres
from reconciler.platform.env_lock import env_lock

pytestmark = pytest.mark.integration

HOUR = 3600.0


def test_names_carry_kind_and_time() -> None:
    now = 1_800_000_000.0
    name = scratch_name("restore", now=now)
    assert parse(name) == ("restore", now) and len(name) <= 63 and "-" not in name
    assert parse(old_name(name)) == ("old", now)
    assert parse(f".{name}.partial") == ("restore", now)
    for other in ("production", "oo_tpl_0123456789ab", "oo_clone_0123456789ab", "oo_x_aaaaaaa000000"):
        assert parse(other) is None
    with pytest.raises(ValueError):
        scratch_name("nope")


@contextmanager
def held_elsewhere(ctx: DataContext, env: str) -> Iterator[None]:
    """The env's lock held by another thread (an operation in progress)."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with env_lock(ctx.host.state_dir, env, "test: restore in progress"):
            taken.set()
            release.wait(60)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert taken.wait(30)
    try:
        yield
    finally:
        release.set()
        t.join(30)


def test_sweep_drops_only_stale_unused_scratch(ctx: DataContext, pg: Postgres, make_role: Callable[[str], str],
                                               scratch_dbs: list[str], pg_conn_params: dict) -> None:
    now = time.time()
    owner, busy_owner = make_role("sw"), make_role("sb")

    def make(kind: str, age_s: float, role: str) -> str:
        name = scratch_name(kind, now=now - age_s)
        with pg.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
        scratch_dbs.append(name)
        return name

    stale = make("clone", 2 * HOUR, owner)
    recent = make("restore", 60, owner)
    in_use = make("verify", 2 * HOUR, owner)
    of_busy_env = make("restore", 2 * HOUR, busy_owner)
    set_aside = make("old", 2 * HOUR, owner)
    of_another_project = make("clone", 2 * HOUR, make_role("sf"))  # stale too, but not ours to judge
    fs = ctx.host.filestore_root / owner / "filestore"
    (fs / stale).mkdir(parents=True)
    (fs / stale / "ab").mkdir()
    (fs / stale / "ab" / "abcdef").write_bytes(b"x" * 100)
    partial = fs / f".{scratch_name('restore', now=now - 2 * HOUR)}.partial"
    partial.mkdir()
    young_dir = fs / scratch_name("clone", now=now - 60)
    young_dir.mkdir()
    live_dir = fs / owner
    live_dir.mkdir()

    params = {k: v for k, v in pg_conn_params.items() if k != "dbname"}
    with psycopg.connect(dbname=in_use, **params), held_elsewhere(ctx, busy_owner):
        report = sweep(pg, ctx.host, now=now, max_age=HOUR, envs={owner, busy_owner})

    assert report.dropped == [stale]
    assert report.kept == {recent: "recent", in_use: "in use", of_busy_env: f"{busy_owner} is in an operation"}
    assert report.set_aside == [set_aside]
    assert sorted(report.removed) == sorted([str(fs / stale), str(partial)])
    assert not pg.exists(stale) and all(pg.exists(d) for d in (recent, in_use, of_busy_env, set_aside))
    assert pg.exists(of_another_project)
    assert sorted(p.name for p in fs.iterdir()) == sorted([young_dir.name, owner])

    # the next sweep, nothing busy any more: the rest of the stale scratch goes, the set-aside data stays
    again = sweep(pg, ctx.host, now=now, max_age=HOUR, envs={owner, busy_owner})
    assert sorted(again.dropped) == sorted([in_use, of_busy_env]) and again.set_aside == [set_aside]
    assert pg.exists(set_aside) and pg.exists(recent) and pg.exists(of_another_project)
