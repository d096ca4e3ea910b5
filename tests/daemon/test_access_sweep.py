"""The daemon's periodic sweep repairs a platform database that every role could connect to again."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.data.scratch import scratch_name
from reconciler.executors.postgres import Postgres
from reconciler.platform.host import HostSettings
from tests.daemon.conftest import DaemonFactory
from tests.daemon.gitserve import wait_for

pytestmark = pytest.mark.integration


def test_the_daemons_sweep_repairs_database_access(remote: dict[str, Any], host: HostSettings,
                                                    make_daemon: DaemonFactory, tmp_path: Path) -> None:
    pg = Postgres.from_host(host)
    env, intruder = f"swept-{secrets.token_hex(5)}", f"intruder-{secrets.token_hex(5)}"
    password = secrets.token_hex(12)
    db = scratch_name("clone")  # a copy made for `env` by a data operation
    daemon = make_daemon(remote["url"], host, state_dir=tmp_path / "state", poll_interval=3600,
                         sweep_interval=3600, start=False)
    try:
        with pg.connect() as conn:
            for role in (env, intruder):
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                               sql.Literal(password)))
        pg.create(db, env)
        with pg.connect() as conn:  # drift: granted back to every role by hand
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO PUBLIC").format(sql.Identifier(db)))
        params = {**pg.params, "user": intruder, "password": password, "dbname": db}
        psycopg.connect(**params).close()

        daemon.start()  # the first sweep runs right after the first poll
        report = wait_for(lambda: daemon.status().get("access"), 120, "the first access sweep")
        assert report["checked"] >= 1 and not report["failed"].get(db), report
        # Another process's sweep on this shared server may have repaired it first; repaired it is.
        assert report["repaired"].get(db, ["PUBLIC (every role) may CONNECT"]) == ["PUBLIC (every role) may CONNECT"]
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(**params).close()
    finally:
        daemon.stop(60)
        pg.drop(db)
        with pg.connect() as conn:
            for role in (env, intruder):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
