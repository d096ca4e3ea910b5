"""The `odoo` command of the stand-in: server (default), `db` and `neutralize`, as in Odoo 19."""

from __future__ import annotations

import argparse
import optparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import psycopg2

from . import RELEASE_DESCRIPTION, init_logging, logger, set_log_db
from . import config as configmod
from .db import (
    DatabaseExists,
    create_empty,
    cursor,
    drop,
    duplicate,
    exists,
    installed_modules,
    neutralization_queries,
    neutralize,
    rename,
)
from .dump import dump, restore
from .modules import InitOptions, discover, load
from .server import serve

_log = logger("odoo")
COMMANDS = {"server": "Start the odoo server (default command)",
            "db": "Create, drop, dump, load databases",
            "neutralize": "Neutralize a production database for testing: no emails sent, etc.",
            "help": "Display the list of available commands"}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = "server"
    if args and not args[0].startswith("-"):
        command, args = args[0], args[1:]
    if command == "help":
        print(RELEASE_DESCRIPTION + "\nAvailable commands:\n")
        for name, text in COMMANDS.items():
            print(f"    {name:<14} {text}")
        return 0
    if command == "server":
        return server(args)
    if command == "db":
        return db_command(args)
    if command == "neutralize":
        return neutralize_command(args)
    print(f"Unknown command {command!r}.\nUse 'odoo --help' to see the list of available "
          "commands.", file=sys.stderr)
    return 1


def report_configuration(conf: dict[str, Any]) -> None:
    _log.info("Odoo version %s", RELEASE_DESCRIPTION.split()[-1])
    if os.path.isfile(conf["config"]):
        _log.info("Using configuration file at %s", conf["config"])
    _log.info("addons paths: %s", [*conf["addons_path"], "<stand-in core addons>"])
    host = conf.get("db_host") or os.environ.get("PGHOST") or "default"
    port = conf.get("db_port") or os.environ.get("PGPORT") or "default"
    _log.info("database: %s@%s:%s", conf.get("db_user") or "default", host, port)


def server(args: list[str]) -> int:
    conf = configmod.parse(args)
    init_logging(conf["log_level"], conf["logfile"])
    report_configuration(conf)
    if conf["pidfile"]:
        with open(conf["pidfile"], "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
    rc = 0
    for dbname in conf["db_name"]:
        set_log_db(dbname)
        try:
            # As odoo/cli/server.py: a named database that does not exist is created.
            create_empty(conf, dbname)
        except DatabaseExists:
            pass
        except psycopg2.Error as exc:
            _log.critical("Could not create or check database %s: %s", dbname, exc)
            return 1
        try:
            with cursor(conf, dbname) as cr:
                result = load(conf, cr, dbname)
        except Exception:
            # odoo.service.server.preload_registries returns -1: exit status 255.
            _log.critical("Failed to initialize database `%s`.", dbname, exc_info=True)
            return 255
        if result.tests_failed:
            rc += 1
    set_log_db(None)
    if conf["stop_after_init"]:
        return rc
    return run_until_signal(conf)


def run_until_signal(conf: dict[str, Any]) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    # Installed explicitly: as PID 1 without --init, Python would otherwise ignore SIGTERM.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        return serve(conf, stop)
    except OSError as exc:
        _log.critical("HTTP service could not start: %s", exc)
        return 1


def neutralize_command(args: list[str]) -> int:
    parser = configmod.build_parser("odoo neutralize")
    group = optparse.OptionGroup(parser, "Neutralize",
                                 "Neutralize the database specified by the `-d` argument.")
    group.add_option("--stdout", action="store_true", dest="to_stdout",
                     help="Output the neutralization SQL instead of applying it")
    parser.add_option_group(group)
    conf = configmod.parse(args, parser)
    init_logging(conf["log_level"], conf["logfile"])
    if not conf["db_name"]:
        _log.error('Neutralize command needs a database name. Use "-d" argument')
        return 1
    dbname = conf["db_name"][0]
    set_log_db(dbname)
    to_stdout = bool(conf.opt.to_stdout)
    if not to_stdout:
        _log.info("Starting %s database neutralization", dbname)
    try:
        with cursor(conf, dbname) as cr:
            if to_stdout:
                paths = {name: mod.path for name, mod in discover(conf).items()}
                print("BEGIN;")
                for query in neutralization_queries(installed_modules(cr), paths):
                    print(query.rstrip().rstrip(";") + ";")
                print("COMMIT;")
            else:
                neutralize(cr, conf)
    except Exception:
        _log.critical("An error occurred during the neutralization. THE DATABASE IS NOT "
                      "NEUTRALIZED!", exc_info=True)
        return 1
    return 0


def _db_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="odoo db", description="Command-line version of the "
                                     "database manager. Commands are all filestore-aware.")
    for flags in (("-c", "--config"), ("-D", "--data-dir"), ("--addons-path",),
                  ("-r", "--db_user"), ("-w", "--db_password"), ("--pg_path",), ("--db_host",),
                  ("--db_port",), ("--db_sslmode",)):
        parser.add_argument(*flags)
    parser.set_defaults(func=None)
    subs = parser.add_subparsers()
    init = subs.add_parser("init", help="Create and initialize a database")
    init.set_defaults(func="init")
    init.add_argument("database")
    init.add_argument("--with-demo", action="store_true")
    init.add_argument("--force", action="store_true")
    init.add_argument("--language", default="en_US")
    init.add_argument("--username", default="admin")
    init.add_argument("--password", default="admin")
    init.add_argument("--country")
    load_p = subs.add_parser("load", help="Load a dump file.")
    load_p.set_defaults(func="load")
    load_p.add_argument("-f", "--force", action="store_true")
    load_p.add_argument("-n", "--neutralize", action="store_true")
    load_p.add_argument("database", nargs="?")
    load_p.add_argument("dump_file")
    dump_p = subs.add_parser("dump", help="Create a dump with filestore.")
    dump_p.set_defaults(func="dump")
    dump_p.add_argument("database")
    dump_p.add_argument("dump_path", nargs="?", default="-")
    dump_p.add_argument("--format", dest="dump_format", choices=("zip", "dump"), default="zip")
    dump_p.add_argument("--no-filestore", action="store_false", dest="filestore", default=True)
    for name, helptext in (("duplicate", "Duplicate a database including filestore."),
                           ("rename", "Rename a database including filestore.")):
        sub = subs.add_parser(name, help=helptext)
        sub.set_defaults(func=name)
        sub.add_argument("-f", "--force", action="store_true")
        if name == "duplicate":
            sub.add_argument("-n", "--neutralize", action="store_true")
        sub.add_argument("source")
        sub.add_argument("target")
    drop_p = subs.add_parser("drop", help="Delete a database including filestore")
    drop_p.set_defaults(func="drop")
    drop_p.add_argument("database")
    return parser


def _check_target(conf: Any, target: str, force: bool) -> None:
    if exists(conf, target):
        if not force:
            sys.exit(f"Target database {target} exists, aborting.\n\n"
                     "\tuse `--force` to delete the existing database anyway.")
        drop(conf, target)


def db_command(args: list[str]) -> int:
    parser = _db_parser()
    ns = parser.parse_args(args)
    if ns.func is None:
        sys.exit(parser.format_help())
    server_args: list[str] = []
    for key in ("config", "data_dir", "addons_path", "db_user", "db_password", "pg_path",
                "db_host", "db_port", "db_sslmode"):
        value = getattr(ns, key)
        if value is not None:
            flag = {"data_dir": "--data-dir", "addons_path": "--addons-path"}.get(key, f"--{key}")
            server_args += [flag, value]
    conf = configmod.parse(server_args)
    init_logging(conf["log_level"], conf["logfile"])
    report_configuration(conf)
    if ns.func == "init":
        _check_target(conf, ns.database, ns.force)
        create_empty(conf, ns.database)
        conf["with_demo"] = ns.with_demo
        conf["init"] = []
        options = InitOptions(ns.username, ns.password, ns.language, ns.country)
        with cursor(conf, ns.database) as cr:
            load(conf, cr, ns.database, options)
    elif ns.func == "load":
        name = ns.database or os.path.splitext(os.path.basename(ns.dump_file))[0]
        _check_target(conf, name, ns.force)
        import zipfile  # only the load path needs it

        if not zipfile.is_zipfile(ns.dump_file):
            sys.exit("Not a zipped dump file, use `pg_restore` to restore raw dumps, and `psql` "
                     "to execute sql dumps or scripts.")
        restore(conf, name, ns.dump_file, copy=True, neutralize_db=ns.neutralize)
    elif ns.func == "dump":
        if ns.dump_path == "-":
            dump(conf, ns.database, sys.stdout.buffer)
        else:
            with open(ns.dump_path, "wb") as fh:
                dump(conf, ns.database, fh, ns.dump_format, ns.filestore)
    elif ns.func == "duplicate":
        _check_target(conf, ns.target, ns.force)
        duplicate(conf, ns.source, ns.target, ns.neutralize)
    elif ns.func == "rename":
        _check_target(conf, ns.target, ns.force)
        rename(conf, ns.source, ns.target)
    elif ns.func == "drop" and not drop(conf, ns.database):
        sys.exit(f"Database {ns.database} does not exist.")
    return 0
