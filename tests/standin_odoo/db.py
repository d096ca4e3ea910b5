"""Database service of the stand-in: connect, create, drop, duplicate, rename, neutralize (odoo.service.db)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2
from psycopg2 import sql

from . import logger

_log = logger("odoo.service.db")


class DatabaseExists(Exception):
    """Raised when creating a database that already exists."""


def conn_params(conf: dict[str, Any], dbname: str) -> dict[str, Any]:
    """libpq keywords from the Odoo options (empty values fall back to libpq defaults)."""
    params: dict[str, Any] = {"dbname": dbname,
                              "application_name": conf["db_app_name"].format(pid=os.getpid())}
    for key, opt in (("host", "db_host"), ("port", "db_port"), ("user", "db_user"),
                     ("password", "db_password")):
        if conf.get(opt):
            params[key] = conf[opt]
    if conf.get("db_sslmode"):
        params["sslmode"] = conf["db_sslmode"]
    return params


def connect(conf: dict[str, Any], dbname: str, autocommit: bool = False,
            timeout: int | None = None) -> Any:
    extra = {"connect_timeout": timeout} if timeout else {}
    conn = psycopg2.connect(**conn_params(conf, dbname), **extra)
    conn.autocommit = autocommit
    return conn


@contextmanager
def cursor(conf: dict[str, Any], dbname: str, autocommit: bool = False) -> Iterator[Any]:
    """A cursor whose transaction commits on success and whose connection always closes."""
    conn = connect(conf, dbname, autocommit)
    try:
        with conn.cursor() as cr:
            yield cr
        if not autocommit:
            conn.commit()
    except BaseException:
        if not autocommit:
            conn.rollback()
        raise
    finally:
        conn.close()


def pg_environ(conf: dict[str, Any]) -> dict[str, str]:
    """Environment for pg_dump/psql, as odoo.tools.exec_pg_environ builds it."""
    env = dict(os.environ)
    for var, opt in (("PGHOST", "db_host"), ("PGPORT", "db_port"), ("PGUSER", "db_user"),
                     ("PGPASSWORD", "db_password"), ("PGSSLMODE", "db_sslmode")):
        if conf.get(opt):
            env[var] = str(conf[opt])
    return env


def exists(conf: dict[str, Any], name: str) -> bool:
    with cursor(conf, "postgres", autocommit=True) as cr:
        cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cr.fetchone() is not None


def list_dbs(conf: dict[str, Any]) -> list[str]:
    """Databases the role can see, minus the maintenance ones (Odoo's db list)."""
    with cursor(conf, "postgres", autocommit=True) as cr:
        cr.execute("SELECT datname FROM pg_database WHERE datistemplate = false "
                   "AND datname NOT IN ('postgres') ORDER BY datname")
        return [r[0] for r in cr.fetchall()]


def _terminate(cr: Any, name: str) -> None:
    cr.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE datname = %s AND pid != pg_backend_pid()", (name,))


def create_empty(conf: dict[str, Any], name: str) -> None:
    """CREATE DATABASE like odoo.service.db._create_empty_database (UTF8, C collation)."""
    with cursor(conf, "postgres", autocommit=True) as cr:
        cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cr.fetchone():
            raise DatabaseExists(f"database {name!r} already exists!")
        template = conf.get("db_template") or "template0"
        collate = sql.SQL("LC_COLLATE 'C'" if template == "template0" else "")
        cr.execute(sql.SQL("CREATE DATABASE {} ENCODING 'unicode' {} TEMPLATE {}").format(
            sql.Identifier(name), collate, sql.Identifier(template)))
    _log.info("Create database `%s`.", name)


def drop(conf: dict[str, Any], name: str) -> bool:
    """Drop a database and its filestore; False when it does not exist (exp_drop)."""
    if not exists(conf, name):
        return False
    with cursor(conf, "postgres", autocommit=True) as cr:
        _terminate(cr, name)
        cr.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    _log.info("DROP DB: %s", name)
    shutil.rmtree(conf.filestore(name), ignore_errors=True)  # type: ignore[attr-defined]
    return True


def duplicate(conf: dict[str, Any], source: str, target: str, neutralize_db: bool = False) -> None:
    """CREATE DATABASE ... TEMPLATE, copy the filestore, new uuid and secret (exp_duplicate_database)."""
    _log.info("Duplicate database `%s` to `%s`.", source, target)
    with cursor(conf, "postgres", autocommit=True) as cr:
        # A template database must have no other session while it is copied.
        _terminate(cr, source)
        cr.execute(sql.SQL("CREATE DATABASE {} ENCODING 'unicode' TEMPLATE {}").format(
            sql.Identifier(target), sql.Identifier(source)))
    with cursor(conf, target) as cr:
        reset_identity(cr)
        if neutralize_db:
            neutralize(cr, conf)
    src, dst = conf.filestore(source), conf.filestore(target)  # type: ignore[attr-defined]
    if os.path.exists(src) and not os.path.exists(dst):
        shutil.copytree(src, dst)


def rename(conf: dict[str, Any], old: str, new: str) -> None:
    """ALTER DATABASE ... RENAME and move the filestore (exp_rename); the uuid stays."""
    with cursor(conf, "postgres", autocommit=True) as cr:
        _terminate(cr, old)
        cr.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(old), sql.Identifier(new)))
    _log.info("RENAME DB: %s -> %s", old, new)
    src, dst = conf.filestore(old), conf.filestore(new)  # type: ignore[attr-defined]
    if os.path.exists(src) and not os.path.exists(dst):
        shutil.move(src, dst)


def set_param(cr: Any, key: str, value: str) -> None:
    cr.execute("INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s) "
               "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
               "write_date = now() at time zone 'UTC'", (key, value))


def get_param(cr: Any, key: str) -> str | None:
    cr.execute("SELECT value FROM ir_config_parameter WHERE key = %s", (key,))
    row = cr.fetchone()
    return row[0] if row else None


def reset_identity(cr: Any) -> None:
    """A copied database is a new database: new uuid, secret and create date."""
    set_param(cr, "database.uuid", str(uuid.uuid1()))
    set_param(cr, "database.secret", str(uuid.uuid4()))
    set_param(cr, "database.create_date",
              datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"))


def installed_modules(cr: Any) -> list[str]:
    cr.execute("SELECT name FROM ir_module_module WHERE state IN "
               "('installed', 'to upgrade', 'to remove') ORDER BY name")
    return [r[0] for r in cr.fetchall()]


def neutralization_queries(modules: Iterable[str], module_paths: dict[str, str]) -> list[str]:
    """Each installed module's data/neutralize.sql, in module-name order."""
    queries = []
    for name in modules:
        path = module_paths.get(name)
        if not path:
            continue
        file = os.path.join(path, "data", "neutralize.sql")
        if os.path.isfile(file):
            with open(file, encoding="utf-8") as fh:
                queries.append(fh.read())
    return queries


def neutralize(cr: Any, conf: dict[str, Any]) -> None:
    """Run the neutralization queries of the installed modules (neutralize_database)."""
    from .modules import discover  # modules imports this module

    paths = {name: mod.path for name, mod in discover(conf).items()}
    queries = neutralization_queries(installed_modules(cr), paths)
    _log.info("Neutralizing database with %d queries", len(queries))
    for query in queries:
        cr.execute(query)
    _log.info("Neutralization finished")
