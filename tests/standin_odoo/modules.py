"""Module loading of the stand-in: manifests, install (-i), update (-u), demo data and tests."""

from __future__ import annotations

import ast
import base64
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import ADDONS_DIR, SERIES, logger
from .db import get_param, reset_identity, set_param

_log = logger("odoo.modules.loading")
_mlog = logger("odoo.modules.module")
_tlog = logger("odoo.tests.result")
_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+(?:\.[0-9]+)?$")
TEST_FAIL_MARKER = os.path.join("tests", "FAIL_TESTS")


@dataclass
class Module:
    name: str
    path: str
    manifest: dict[str, Any]
    version: str | None  # adapted version ("19.0.x.y"), None when the manifest's is invalid

    @property
    def depends(self) -> list[str]:
        return list(self.manifest.get("depends", []))

    @property
    def installable(self) -> bool:
        return bool(self.manifest.get("installable", True)) and self.version is not None


@dataclass
class InitOptions:
    """What `odoo db init` may set on a new database (defaults of a plain -i base)."""

    login: str = "admin"
    password: str = "admin"
    lang: str = "en_US"
    country: str | None = None


@dataclass
class LoadResult:
    installed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    tests_run: int = 0
    tests_failed: int = 0


def adapt_version(version: str) -> str | None:
    """'1.2' -> '19.0.1.2' as Odoo does; None for a version Odoo refuses."""
    base = version[len(SERIES) + 1:] if version.startswith(SERIES + ".") else version
    if version == SERIES or not _VERSION_RE.match(base):
        return None
    return f"{SERIES}.{base}"


def discover(conf: dict[str, Any]) -> dict[str, Module]:
    """Every module of the addons path (first directory wins), then the stand-in's core ones."""
    found: dict[str, Module] = {}
    for directory in [*conf.get("addons_path", []), ADDONS_DIR]:
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            manifest_file = os.path.join(path, "__manifest__.py")
            if name in found or not os.path.isfile(manifest_file):
                continue
            try:
                with open(manifest_file, encoding="utf-8") as fh:
                    manifest = ast.literal_eval(fh.read())
            except (SyntaxError, ValueError) as exc:
                _mlog.warning("module %s: invalid manifest %s: %s", name, manifest_file, exc)
                continue
            version = adapt_version(str(manifest.get("version", "1.0")))
            if version is None:
                _mlog.warning("module %s: invalid version %r, the module is not installable",
                              name, manifest.get("version"))
            found[name] = Module(name, path, manifest, version)
    return found


def _table_exists(cr: Any, name: str) -> bool:
    cr.execute("SELECT 1 FROM pg_class WHERE relname = %s AND relkind = 'r'", (name,))
    return cr.fetchone() is not None


def _run_sql_file(cr: Any, module: Module, filename: str) -> None:
    file = os.path.join(module.path, "data", filename)
    if os.path.isfile(file):
        with open(file, encoding="utf-8") as fh:
            cr.execute(fh.read())


def _update_list(cr: Any, modules: dict[str, Module]) -> None:
    """Register every module found on disk (ir.module.module.update_list)."""
    cr.execute("SELECT name FROM ir_module_module")
    known = {r[0] for r in cr.fetchall()}
    for mod in modules.values():
        if mod.name in known:
            continue
        cr.execute(
            "INSERT INTO ir_module_module (name, state, shortdesc, summary, author, license, "
            "application, auto_install) VALUES (%s, %s, jsonb_build_object('en_US', %s), "
            "jsonb_build_object('en_US', %s), %s, %s, %s, %s) RETURNING id",
            (mod.name, "uninstalled" if mod.installable else "uninstallable",
             mod.manifest.get("name", mod.name), mod.manifest.get("summary", ""),
             mod.manifest.get("author", ""), mod.manifest.get("license", "LGPL-3"),
             bool(mod.manifest.get("application")), bool(mod.manifest.get("auto_install"))))
        module_id = cr.fetchone()[0]
        for dep in mod.depends:
            cr.execute("INSERT INTO ir_module_module_dependency (module_id, name) VALUES (%s, %s)",
                       (module_id, dep))


def _states(cr: Any) -> dict[str, str]:
    cr.execute("SELECT name, state FROM ir_module_module")
    return dict(cr.fetchall())


def _closure(names: list[str], modules: dict[str, Module], done: set[str]) -> tuple[list[str], set[str]]:
    """Dependency-ordered modules to install, and the requested ones that cannot be."""
    order: list[str] = []
    broken: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> bool:
        if name in done or name in order:
            return True
        mod = modules.get(name)
        if mod is None or not mod.installable or name in stack:
            return False
        if not all(visit(dep, (*stack, name)) for dep in mod.depends):
            return False
        order.append(name)
        return True

    for name in names:
        if not visit(name, ()):
            broken.add(name)
    return order, broken


def _with_auto_install(order: list[str], modules: dict[str, Module], done: set[str]) -> list[str]:
    """Add auto_install modules whose dependencies are all (being) installed."""
    changed = True
    while changed:
        changed = False
        present = done | set(order)
        for mod in modules.values():
            auto = mod.manifest.get("auto_install", False)
            if mod.name in present or not auto or not mod.installable:
                continue
            triggers = set(auto) if isinstance(auto, list) else set(mod.depends)
            if set(mod.depends) <= present and triggers <= present:
                order.append(mod.name)
                changed = True
    return order


def hash_password(password: str, rounds: int = 6000) -> str:
    """passlib's pbkdf2_sha512 format, as res.users stores passwords."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)

    def ab64(raw: bytes) -> str:
        return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")

    return f"$pbkdf2-sha512${rounds}${ab64(salt)}${ab64(digest)}"


def store_attachment(cr: Any, filestore: str, name: str, data: bytes, mimetype: str,
                     res_model: str | None = None, res_id: int | None = None) -> int:
    """An ir.attachment stored in the filestore under <sha1[:2]>/<sha1>."""
    checksum = hashlib.sha1(data).hexdigest()
    fname = f"{checksum[:2]}/{checksum}"
    full = os.path.join(filestore, fname)
    if not os.path.exists(full):
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(data)
    cr.execute("INSERT INTO ir_attachment (name, res_model, res_id, store_fname, file_size, "
               "checksum, mimetype) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
               (name, res_model, res_id, fname, len(data), checksum, mimetype))
    return int(cr.fetchone()[0])


def _install_base_records(cr: Any, filestore: str, init: InitOptions) -> None:
    reset_identity(cr)
    set_param(cr, "web.base.url", "http://localhost:8069")
    set_param(cr, "base.default_lang", init.lang)
    if init.country:
        set_param(cr, "base.default_country", init.country.upper())
    cr.execute("UPDATE res_users SET login = %s, password = %s WHERE id = 2",
               (init.login, hash_password(init.password)))
    logo = b"<svg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/>\n"
    store_attachment(cr, filestore, "logo", logo, "image/svg+xml", "res.partner", 1)


def _install(cr: Any, mod: Module, demo: bool, filestore: str, init: InitOptions,
             schema_done: bool = False) -> None:
    _log.info("Loading module %s", mod.name)
    if not schema_done:
        _run_sql_file(cr, mod, "schema.sql")
    _run_sql_file(cr, mod, "data.sql")
    if mod.name == "base":
        _install_base_records(cr, filestore, init)
    has_demo = demo and bool(mod.manifest.get("demo"))
    if has_demo:
        _run_sql_file(cr, mod, "demo.sql")
        if mod.name == "base":
            cr.execute("UPDATE res_users SET password = %s WHERE login = 'demo'",
                       (hash_password("demo"),))
            store_attachment(cr, filestore, "demo_partner_image.txt",
                             b"demo partner picture\n", "text/plain", "res.partner", 5)
    cr.execute("UPDATE ir_module_module SET state = 'installed', latest_version = %s, demo = %s, "
               "write_date = now() at time zone 'UTC' WHERE name = %s",
               (mod.version, demo, mod.name))


def _modules_to_test(specs: str, touched: list[str], installed: list[str]) -> list[str]:
    """Modules whose tests run: installed/updated now, or named by an include spec."""
    include: set[str] = set()
    exclude: set[str] = set()
    exclude_all = False
    spec_re = re.compile(r"^([+-]?)([\w*]*)(?:/([\w.*]*))?(?::(\w*))?(?:\.(\w*))?")
    for raw in filter(None, (s.strip() for s in specs.split(","))):
        match = spec_re.match(raw)
        if not match:
            continue
        sign, tag, module = match.group(1), match.group(2), match.group(3) or ""
        if sign == "-":
            if module:
                exclude.add(module)
            elif tag in ("", "*", "standard") and not match.group(4):
                exclude_all = True
        elif module:
            include.add(module)
    if exclude_all:
        return []
    candidates = [m for m in touched if not include or m in include]
    candidates += [m for m in installed if m in include and m not in candidates]
    return [m for m in candidates if m not in exclude]


@contextmanager
def _test_http_port(conf: Any, res: LoadResult) -> Iterator[None]:
    """Odoo's tests serve HTTP on --http-port: a port in use (the web server of the same
    container) breaks them, so the stand-in fails the run the same way."""
    if not conf["http_enable"]:
        yield
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((conf["http_interface"] or "0.0.0.0", conf["http_port"]))
    except OSError as exc:
        res.tests_failed += 1
        _tlog.error("ERROR: HTTP server for tests on port %s: %s (pass another --http-port "
                    "while a server runs)", conf["http_port"], exc)
    try:
        yield
    finally:
        sock.close()


def _run_tests(modules: dict[str, Module], names: list[str], dbname: str, res: LoadResult) -> None:
    for name in names:
        mod = modules.get(name)
        tests_dir = os.path.join(mod.path, "tests") if mod else ""
        if not mod or not os.path.isdir(tests_dir):
            continue
        files = [f for f in os.listdir(tests_dir) if f.startswith("test_") and f.endswith(".py")]
        count = max(1, len(files))
        res.tests_run += count
        marker = os.path.join(mod.path, TEST_FAIL_MARKER)
        _mlog.info("odoo.addons.%s.tests running %d tests", name, count)
        if os.path.exists(marker):
            with open(marker, encoding="utf-8") as fh:
                reason = fh.read().strip() or "tests/FAIL_TESTS marker present"
            res.tests_failed += 1
            _tlog.error("FAIL: odoo.addons.%s.tests: %s", name, reason)
    if res.tests_failed:
        _tlog.error("%d failed, 0 error(s) of %d tests when loading database %r",
                    res.tests_failed, res.tests_run, dbname)
    elif res.tests_run:
        _tlog.info("0 failed, 0 error(s) of %d tests when loading database %r",
                   res.tests_run, dbname)


def load(conf: Any, cr: Any, dbname: str, init: InitOptions | None = None) -> LoadResult:
    """Load a database as odoo.modules.loading.load_modules does for -i/-u (caller commits)."""
    init = init or InitOptions()
    res = LoadResult()
    modules = discover(conf)
    filestore = conf.filestore(dbname)
    new_db = not _table_exists(cr, "ir_module_module")
    to_install = list(conf["init"])
    if new_db:
        _log.info("init db")
        _run_sql_file(cr, modules["base"], "schema.sql")
        to_install = ["base", *to_install]
    _update_list(cr, modules)
    states = _states(cr)
    done = {n for n, s in states.items() if s == "installed"}
    if "all" in to_install:
        to_install = [n for n, m in modules.items() if m.installable]
    unknown = sorted(n for n in to_install if n not in modules)
    if unknown:
        _log.warning("invalid module names, ignored: %s", ", ".join(unknown))
    order, broken = _closure([n for n in to_install if n in modules], modules, done)
    order = _with_auto_install(order, modules, done)
    if broken:
        _log.error("Some modules are not loaded, some dependencies or manifest may be missing: %s",
                   sorted(broken))
    cr.execute("SELECT demo FROM ir_module_module WHERE name = 'base'")
    row = cr.fetchone()
    # Demo data loads only into a new database, and then for every later install too.
    demo = bool(conf["with_demo"]) if new_db else bool(row and row[0])
    for name in order:
        # On a new database base's tables exist already (ir_module_module was needed first).
        _install(cr, modules[name], demo, filestore, init, schema_done=new_db and name == "base")
        res.installed.append(name)
    installed = sorted(done | set(res.installed))
    to_update = installed if "all" in conf["update"] else list(conf["update"])
    for name in to_update:
        mod = modules.get(name)
        if name not in installed or mod is None or name in res.installed:
            if name not in installed:
                _log.warning("module %s: not installed, ignored for update", name)
            continue
        _log.info("Updating module %s to %s", name, mod.version)
        cr.execute("UPDATE ir_module_module SET latest_version = %s, "
                   "write_date = now() at time zone 'UTC' WHERE name = %s", (mod.version, name))
        res.updated.append(name)
    if get_param(cr, "database.uuid") is None:
        reset_identity(cr)
    if conf["test_enable"]:
        tested = _modules_to_test(conf["test_tags"], res.installed + res.updated, installed)
        with _test_http_port(conf, res):
            _run_tests(modules, tested, dbname, res)
    _log.info("%d modules installed, %d updated", len(res.installed), len(res.updated))
    return res
