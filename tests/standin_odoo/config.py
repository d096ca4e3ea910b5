"""Odoo 19's server options: same names, types, sources and precedence (CLI > env > file > default)."""

from __future__ import annotations

import configparser
import logging
import optparse
import os
from collections.abc import Sequence
from typing import Any

from . import RELEASE_DESCRIPTION, log_early


def _warn(msg: str, *args: object) -> None:
    log_early("odoo.tools.config", logging.WARNING, msg, *args)


# Options whose value is a comma-separated list, as Odoo's 'comma' type.
_COMMA = {"init", "update", "reinit", "db_name", "server_wide_modules", "dev_mode"}
_FILE_UNLOADABLE = {"config", "save", "init", "update", "reinit", "import_partial",
                    "test_file", "test_enable", "test_tags", "stop_after_init"}
# (environment variable, option) pairs Odoo 19 reads (env_name=...).
_ENV = {"ODOO_RC": "config", "PGDATABASE": "db_name", "PGUSER": "db_user",
        "PGPASSWORD": "db_password", "PGPATH": "pg_path", "PGHOST": "db_host",
        "PGPORT": "db_port", "PGSSLMODE": "db_sslmode", "PGAPPNAME": "db_app_name",
        "PGDATABASE_TEMPLATE": "db_template", "ODOO_DEV": "dev_mode"}
LOG_LEVELS = ["info", "debug_rpc", "warn", "test", "critical", "runbot", "debug_sql", "error",
              "debug", "debug_rpc_answer", "notset"]

# (flags, dest, kind, default): kind is str/int/float/comma/true/false/choice:<a|b>.
_OPTIONS: list[tuple[tuple[str, ...], str, str, Any]] = [
    (("-c", "--config"), "config", "str", None),
    (("-s", "--save"), "save", "true", False),
    (("-i", "--init"), "init", "comma", []),
    (("-u", "--update"), "update", "comma", []),
    (("--reinit",), "reinit", "comma", []),
    (("--with-demo",), "with_demo", "true", False),
    (("-P", "--import-partial"), "import_partial", "str", ""),
    (("--pidfile",), "pidfile", "str", ""),
    (("--addons-path",), "addons_path", "str", ""),
    (("--upgrade-path",), "upgrade_path", "str", ""),
    (("--pre-upgrade-scripts",), "pre_upgrade_scripts", "str", ""),
    (("--load",), "server_wide_modules", "comma", ["base", "rpc", "web"]),
    (("-D", "--data-dir"), "data_dir", "str", None),
    (("--http-interface",), "http_interface", "str", "0.0.0.0"),
    (("-p", "--http-port"), "http_port", "int", 8069),
    (("--gevent-port",), "gevent_port", "int", 8072),
    (("--no-http",), "http_enable", "false", True),
    (("--proxy-mode",), "proxy_mode", "true", False),
    (("--x-sendfile",), "x_sendfile", "true", False),
    (("--db-filter",), "dbfilter", "str", ""),
    (("--test-file",), "test_file", "str", ""),
    (("--test-enable",), "test_enable", "true", False),
    (("--test-tags",), "test_tags", "str", None),
    (("--screencasts",), "screencasts", "str", ""),
    (("--screenshots",), "screenshots", "str", "/tmp/odoo_tests"),
    (("--logfile",), "logfile", "str", ""),
    (("--syslog",), "syslog", "true", False),
    (("--log-handler",), "log_handler", "str", ":INFO"),
    (("--log-db",), "log_db", "str", ""),
    (("--log-db-level",), "log_db_level", "str", "warning"),
    (("--log-level",), "log_level", "choice:" + "|".join(LOG_LEVELS), "info"),
    (("--email-from",), "email_from", "str", ""),
    (("--from-filter",), "from_filter", "str", ""),
    (("--smtp",), "smtp_server", "str", "localhost"),
    (("--smtp-port",), "smtp_port", "int", 25),
    (("--smtp-ssl",), "smtp_ssl", "true", False),
    (("--smtp-user",), "smtp_user", "str", ""),
    (("--smtp-password",), "smtp_password", "str", ""),
    (("-d", "--database"), "db_name", "comma", []),
    (("-r", "--db_user"), "db_user", "str", ""),
    (("-w", "--db_password"), "db_password", "str", ""),
    (("--pg_path",), "pg_path", "str", ""),
    (("--db_host",), "db_host", "str", ""),
    (("--db_replica_host",), "db_replica_host", "str", None),
    (("--db_port",), "db_port", "int", None),
    (("--db_replica_port",), "db_replica_port", "int", None),
    (("--db_sslmode",), "db_sslmode",
     "choice:disable|allow|prefer|require|verify-ca|verify-full", "prefer"),
    (("--db_app_name",), "db_app_name", "str", "odoo-{pid}"),
    (("--db_maxconn",), "db_maxconn", "int", 64),
    (("--db_maxconn_gevent",), "db_maxconn_gevent", "int", None),
    (("--db-template",), "db_template", "str", "template0"),
    (("--load-language",), "load_language", "str", None),
    (("--i18n-overwrite",), "overwrite_existing_translations", "true", False),
    (("--no-database-list",), "list_db", "false", True),
    (("--dev",), "dev_mode", "comma", []),
    (("--stop-after-init",), "stop_after_init", "true", False),
    (("--osv-memory-count-limit",), "osv_memory_count_limit", "int", 0),
    (("--transient-age-limit",), "transient_age_limit", "float", 1.0),
    (("--max-cron-threads",), "max_cron_threads", "int", 2),
    (("--limit-time-worker-cron",), "limit_time_worker_cron", "int", 0),
    (("--unaccent",), "unaccent", "true", False),
    (("--geoip-city-db", "--geoip-db"), "geoip_city_db", "str", ""),
    (("--geoip-country-db",), "geoip_country_db", "str", ""),
    (("--workers",), "workers", "int", 0),
    (("--limit-memory-soft",), "limit_memory_soft", "int", 2048 * 1024 * 1024),
    (("--limit-memory-soft-gevent",), "limit_memory_soft_gevent", "int", None),
    (("--limit-memory-hard",), "limit_memory_hard", "int", 2560 * 1024 * 1024),
    (("--limit-memory-hard-gevent",), "limit_memory_hard_gevent", "int", None),
    (("--limit-time-cpu",), "limit_time_cpu", "int", 60),
    (("--limit-time-real",), "limit_time_real", "int", 120),
    (("--limit-time-real-cron",), "limit_time_real_cron", "int", -1),
    (("--limit-request",), "limit_request", "int", 2**16),
]
_KIND = {dest: kind for _, dest, kind, _ in _OPTIONS}
_DEFAULTS = {dest: default for _, dest, _, default in _OPTIONS}


def _check_bool(value: str) -> bool:
    low = value.lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"invalid boolean value: {value!r}")


def _cast(dest: str, value: str) -> Any:
    """Cast a string from the config file or environment as Odoo's TYPE_CHECKER does."""
    kind = _KIND.get(dest, "str")
    if value == "None":
        return None
    if kind in ("true", "false"):
        return _check_bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "comma":
        return [v for s in value.split(",") if (v := s.strip())]
    return value


def build_parser(prog: str = "odoo") -> optparse.OptionParser:
    """The server option parser (subcommands add their own groups to it)."""
    parser = optparse.OptionParser(prog=prog, version=RELEASE_DESCRIPTION)
    for flags, dest, kind, _ in _OPTIONS:
        if kind == "true":
            parser.add_option(*flags, dest=dest, action="store_true")
        elif kind == "false":
            parser.add_option(*flags, dest=dest, action="store_false")
        elif kind.startswith("choice:"):
            parser.add_option(*flags, dest=dest, type="choice", choices=kind[7:].split("|"))
        elif kind in ("int", "float"):
            parser.add_option(*flags, dest=dest, type=kind)
        elif dest == "log_handler":
            parser.add_option(*flags, dest=dest, action="append")
        else:
            parser.add_option(*flags, dest=dest, type="string")
    # --without-demo[=BOOL] stores the inverse into with_demo (nargs='?' handled in parse()).
    parser.add_option("--without-demo", dest="without_demo", type="string", metavar="BOOL")
    parser.add_option("--log-web", dest="log_handler", action="append_const",
                      const="odoo.http:DEBUG")
    parser.add_option("--log-sql", dest="log_handler", action="append_const",
                      const="odoo.sql_db:DEBUG")
    return parser


def _without_demo_to_with_demo(value: str) -> bool:
    try:
        return not _check_bool(value)
    except ValueError:
        # 19.0 accepts the old module lists ("all") and warns: any value but None means "no demo".
        _warn("option --without-demo: since 19.0, invalid boolean value: %r, assume %s",
                     value, value != "None")
        return value == "None"


class Config(dict[str, Any]):
    """The merged options; `opt` keeps the raw optparse values (subcommand options too)."""

    opt: optparse.Values

    def filestore(self, dbname: str) -> str:
        return os.path.join(self["data_dir"], "filestore", dbname)


def _default_data_dir() -> str:
    home = os.path.expanduser("~")
    if os.path.isdir(home):
        return os.path.join(home, ".local", "share", "Odoo")
    return "/var/lib/odoo"


def parse(args: Sequence[str], parser: optparse.OptionParser | None = None) -> Config:
    """Parse like odoo.tools.config.parse_config; exits 2 on bad options (optparse)."""
    parser = parser or build_parser()
    argv = list(args)
    for i, arg in enumerate(argv):  # nargs='?' emulation, as Odoo does it
        if arg == "--without-demo" and (i == len(argv) - 1 or argv[i + 1].startswith("-")):
            argv[i] = "--without-demo=True"
    opt, unknown = parser.parse_args(argv)
    if unknown:
        parser.error(f"unrecognized parameters: {' '.join(unknown)}")
    cli: dict[str, Any] = {}
    for _, dest, kind, _ in _OPTIONS:
        value = getattr(opt, dest, None)
        if value is None or dest == "log_handler":
            continue
        cli[dest] = _cast(dest, value) if kind == "comma" else value
    if opt.without_demo is not None:
        cli["with_demo"] = _without_demo_to_with_demo(opt.without_demo)

    env = {dest: _cast(dest, os.environ[name]) for name, dest in _ENV.items()
           if name in os.environ}
    rcfile = cli.get("config") or env.get("config") or os.path.expanduser("~/.odoorc")
    if cli.get("config") and not opt.save and not os.access(rcfile, os.R_OK):
        parser.error(f"the config file {rcfile!r} selected with -c/--config doesn't exist or "
                     "is not readable, use -s/--save if you want to generate it")
    file_opts = _read_file(rcfile)

    conf = Config({**_DEFAULTS, "data_dir": _default_data_dir(), "admin_passwd": "admin"})
    conf.update(file_opts)
    conf.update(env)
    conf.update(cli)
    conf["config"] = rcfile
    conf.opt = opt
    conf["log_handler"] = [":INFO", *(opt.log_handler or [])]
    conf["addons_path"] = _addons_path(conf.get("addons_path") or "")
    if conf["test_enable"] and not conf["test_tags"]:
        conf["test_tags"] = "+standard"
    conf["test_enable"] = bool(conf["test_tags"])
    if conf["test_enable"]:
        conf["stop_after_init"] = True
    if len(conf["db_name"]) > 1 and (conf["init"] or conf["update"]):
        parser.error("Cannot use -i/--init or -u/--update with multiple databases in the "
                     "-d/--database/db_name")
    conf["data_dir"] = os.path.abspath(os.path.expanduser(conf["data_dir"]))
    return conf


def _read_file(rcfile: str) -> dict[str, Any]:
    cp = configparser.RawConfigParser()
    try:
        cp.read([rcfile])
    except (OSError, configparser.Error):
        return {}
    if not cp.has_section("options"):
        return {}
    out: dict[str, Any] = {}
    for name, value in cp.items("options"):
        if name == "without_demo":
            out["with_demo"] = _without_demo_to_with_demo(value)
            continue
        if name in _FILE_UNLOADABLE:
            continue
        if name not in _KIND:
            out[name] = value  # stored as-is, as Odoo does with unknown keys
            continue
        if value in ("False", "false") and _KIND[name] not in ("true", "false"):
            continue  # "False" used to be the default of many non-bool options
        try:
            out[name] = _cast(name, value)
        except ValueError:
            _warn("option %s reads %r in the config file at %s, skip", name, value, rcfile)
    return out


def _addons_path(value: str | list[str]) -> list[str]:
    """Validated addons directories; invalid ones are skipped with a warning, as in Odoo."""
    items = value if isinstance(value, list) else [v.strip() for v in value.split(",")]
    paths: list[str] = []
    for item in filter(None, items):
        path = os.path.abspath(os.path.expanduser(item))
        if not os.path.isdir(path):
            _warn("option --addons-path, no such directory %r, skipped", path)
            continue
        if not any(os.path.isfile(os.path.join(path, d, "__manifest__.py"))
                   and os.path.isfile(os.path.join(path, d, "__init__.py"))
                   for d in os.listdir(path)):
            _warn("option --addons-path, invalid addons directory %r, skipped", path)
            continue
        paths.append(path)
    return paths
