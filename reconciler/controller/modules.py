"""Which Odoo modules a deploy installs or updates: the database's own `ir_module_module` against the code.

The code side comes from Git trees (no checkout): every addon under the env's addons paths with its
tree id (a digest of all its files) and manifest version. The database side is what Odoo recorded:
each module's state and, after every successful update, the tree ids of the repository's addons it
was updated to (`ir_config_parameter` `odooops.module_digests`). So what differs is decided from the
database being deployed to, never from the commit the platform last deployed: a failed or interrupted
deploy leaves modules in `to upgrade`/`to install` or with old digests, and the next deploy updates them.
`-i` of an installed module does nothing in Odoo, so a changed installed module always gets `-u`.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.errors import OdooOpsError
from reconciler.sources.objects import addon_manifests

if TYPE_CHECKING:
    from reconciler.sources.git import GitSource

DIGESTS_KEY = "odooops.module_digests"
PENDING = ("to upgrade", "to install", "to remove")
INSTALLED = ("installed", "to upgrade", "to remove")  # present in the schema (Odoo loads them)
ALL_TESTS = "all"  # tests.tags: all -> Odoo's whole suite of the installed modules


@dataclass(frozen=True)
class ModuleChanges:
    install: tuple[str, ...]
    update: tuple[str, ...]
    removed: tuple[str, ...]  # installed from the repository before, gone from its code: reported, never uninstalled
    why: dict[str, str] = field(default_factory=dict, compare=False)  # module -> reason it is installed/updated

    def to_json(self) -> dict[str, list[str]]:
        return {"install": list(self.install), "update": list(self.update), "removed": list(self.removed)}


@dataclass(frozen=True)
class DatabaseModules:
    """What a database says about its modules: name -> state, and the digests of its last update."""

    states: dict[str, str]
    digests: dict[str, str]
    written: dict[str, datetime] = field(default_factory=dict)  # write_date of each module's row (UTC)

    def installed(self) -> set[str]:
        return {n for n, s in self.states.items() if s in INSTALLED}


def repo_modules(source: GitSource, commit: str, addons_paths: list[str]) -> dict[str, tuple[str, str]]:
    """module name -> (tree id, manifest version) for every addon under the addons paths at commit."""
    out: dict[str, tuple[str, str]] = {}
    for name, (tree, manifest) in addon_manifests(source.repo, commit, addons_paths).items():
        version = ""
        try:
            data = ast.literal_eval(manifest.decode("utf-8", "replace"))
            version = str(data.get("version", "")) if isinstance(data, dict) else ""
        except (ValueError, SyntaxError):
            version = ""
        out[name] = (tree, version)
    return out


def code_digests(code: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: tree for name, (tree, _version) in code.items()}


def read_database(conn: Any) -> DatabaseModules:
    """Module states and stored digests of the database `conn` is connected to (psycopg connection)."""
    rows = conn.execute("SELECT name, state, write_date FROM ir_module_module").fetchall()
    states = {r[0]: r[1] for r in rows}
    written = {r[0]: r[2] for r in rows if r[2] is not None}
    row = conn.execute("SELECT value FROM ir_config_parameter WHERE key = %s", (DIGESTS_KEY,)).fetchone()
    digests: dict[str, str] = {}
    if row and row[0]:
        try:
            parsed = json.loads(row[0])
            digests = {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
        except ValueError:
            digests = {}  # garbled by hand: every repository module is updated once, then it is rewritten
    return DatabaseModules(states, digests, written)


def db_now(conn: Any) -> datetime:
    """The database server's clock in UTC without zone, as Odoo writes write_date."""
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::timestamp").fetchone()
    return row[0]


def store_digests(conn: Any, code: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Record the tree ids of the repository's installed addons, once the schema gate passed."""
    states = read_database(conn).states
    digests = {n: d for n, d in sorted(code_digests(code).items()) if states.get(n) == "installed"}
    conn.execute(
        "INSERT INTO ir_config_parameter (key, value, create_date, write_date) "
        "VALUES (%s, %s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, write_date = EXCLUDED.write_date",
        (DIGESTS_KEY, json.dumps(digests, sort_keys=True)))
    return digests


def module_plan(code: dict[str, tuple[str, str]], db: DatabaseModules, wanted: list[str]) -> ModuleChanges:
    """Install what is wanted and not in the database (or left `to install`); update every installed
    repository addon whose files differ from the digest the database was last updated to (or that has
    none), and whatever an interrupted update left `to upgrade`."""
    installed = db.installed()
    why: dict[str, str] = {}
    for name in wanted:
        if name not in installed:
            why[name] = "not installed"
    for name, state in db.states.items():
        if state == "to install":
            why[name] = "left 'to install' by an interrupted deploy"
    install = sorted(why)
    update: list[str] = []
    for name, (tree, _version) in sorted(code.items()):
        if name not in installed or name in why:
            continue
        stored = db.digests.get(name)
        if db.states.get(name) == "to upgrade":
            why[name] = "left 'to upgrade' by a failed or interrupted deploy"
        elif stored is None:
            why[name] = "no digest recorded: updated once"
        elif stored != tree:
            why[name] = "its files changed"
        else:
            continue
        update.append(name)
    for name, state in sorted(db.states.items()):
        if state == "to upgrade" and name not in code and name not in why:
            why[name] = "left 'to upgrade' by a failed or interrupted deploy"
            update.append(name)
    removed = sorted(n for n in db.digests if n not in code and n in installed)
    return ModuleChanges(install=tuple(install), update=tuple(sorted(update)), removed=tuple(removed), why=why)


def schema_problems(code: dict[str, tuple[str, str]], db: DatabaseModules, wanted: list[str],
                    ran: ModuleChanges | None = None, since: datetime | None = None) -> dict[str, list[str]]:
    """Why the database does not match the code, by kind (empty: it does). `ran`: what the run just
    installed or updated, each of which must have been written by Odoo since `since`; every other
    installed repository addon must already carry this commit's digest."""
    problems: dict[str, list[str]] = {}
    pending = sorted(f"{n} ({s})" for n, s in db.states.items() if s in PENDING)
    if pending:
        problems["pending"] = pending
    missing = sorted(set(wanted) - {n for n, s in db.states.items() if s == "installed"})
    if missing:
        problems["not_installed"] = missing
    touched = set(ran.install) | set(ran.update) if ran is not None else set()
    if ran is not None and since is not None:
        untouched = sorted(n for n in touched if db.states.get(n) == "installed"
                           and (db.written.get(n) is None or db.written[n] < since))
        if untouched:
            problems["not_updated"] = untouched
    # A repository addon the run installed or updated as a dependency (or dependent) was written by it too.
    written = {n for n, at in db.written.items() if since is not None and at >= since}
    stale = sorted(n for n, (tree, _v) in code.items() if n not in touched and n not in written
                   and db.states.get(n) == "installed" and db.digests.get(n) != tree)
    if stale:
        problems["stale"] = stale
    return problems


_WHAT = {"pending": "modules left pending", "not_installed": "wanted modules not installed",
         "not_updated": "modules the update did not write", "stale": "installed at other code than this commit's"}


def schema_gate(code: dict[str, tuple[str, str]], db: DatabaseModules, wanted: list[str], env: str,
                database: str, branch: str, ran: ModuleChanges | None = None,
                since: datetime | None = None) -> None:
    """After the update: nothing pending, everything wanted installed, every changed module written by
    the run, every other repository addon at this commit's digest."""
    problems = schema_problems(code, db, wanted, ran, since)
    if not problems:
        return
    if set(problems) == {"not_installed"}:
        missing = problems["not_installed"]
        raise OdooOpsError(
            "ODOO_MODULES_NOT_INSTALLED", f"odoo exited 0 but did not install {', '.join(missing)}",
            f"check that these modules and their dependencies are in the addons paths of {branch} "
            "(Odoo only logs a warning for unknown or broken modules)", {"env": env, "modules": missing})
    said = "; ".join(f"{_WHAT[k]}: {', '.join(v)}" for k, v in problems.items())
    raise OdooOpsError(
        "SCHEMA_NOT_CURRENT", f"the database of {env} ({database}) does not match the code of this deploy: {said}",
        f"the previous version keeps serving; read the update's log (odooops status {env} --json), fix the "
        f"module on {branch} and push (the next deploy updates every module that differs from the code), or "
        f"odooops apply --retry-failed once the cause outside the repository is fixed",
        {"env": env, "database": database, "problems": problems})


def effective_test_tags(configured: str | None, code: dict[str, tuple[str, str]]) -> str | None:
    """The --test-tags a deploy passes: the project's own tags, `None` for Odoo's whole suite
    (`tests.tags: all`), or by default `/<module>` of every addon of the repository ("" when it has none)."""
    if configured is not None and configured.strip():
        return None if configured.strip() == ALL_TESTS else configured.strip()
    return ",".join(f"/{name}" for name in sorted(code))
