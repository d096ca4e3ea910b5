"""Odoo 19 stand-in: the CLI, tables, filestore and HTTP health of Odoo that OdooOps relies on.

Test and offline-demo use only (see docs/adr/0002-test-services-and-standin.md): it is never
part of the product package, and the product never special-cases it.
"""

from __future__ import annotations

import logging
import os
import sys

SERIES = "19.0"
VERSION_INFO = (19, 0, 0, "final", 0, "")
RELEASE_DESCRIPTION = "Odoo Server 19.0"
ADDONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "addons")

_LEVELS = {"debug": logging.DEBUG, "debug_rpc": logging.DEBUG, "debug_sql": logging.DEBUG,
           "debug_rpc_answer": logging.DEBUG, "notset": logging.NOTSET, "info": logging.INFO,
           "test": logging.INFO, "runbot": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


class _DbFilter(logging.Filter):
    """Adds Odoo's pid and dbname fields to every record."""

    dbname = "?"

    def filter(self, record: logging.LogRecord) -> bool:
        record.pid = os.getpid()
        record.dbname = getattr(record, "dbname", None) or _DbFilter.dbname
        return True


_pending: list[tuple[str, int, str, tuple[object, ...]]] = []


def logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def log_early(name: str, level: int, msg: str, *args: object) -> None:
    """Keep a message until logging is set up (options are parsed before that), as Odoo does."""
    _pending.append((name, level, msg, args))


def set_log_db(dbname: str | None) -> None:
    _DbFilter.dbname = dbname or "?"


def init_logging(level: str = "info", logfile: str = "") -> None:
    """Odoo's log line format: date pid LEVEL db logger: message."""
    handler: logging.Handler = (logging.FileHandler(logfile) if logfile
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(pid)s %(levelname)s %(dbname)s %(name)s: %(message)s"))
    handler.addFilter(_DbFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    for name, lvl, msg, args in _pending:
        logging.getLogger(name).log(lvl, msg, *args)
    _pending.clear()
