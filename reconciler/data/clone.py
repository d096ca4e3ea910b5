"""Clone an environment's database and filestore into a scratch copy, then neutralize, mask and verify it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.copy_guard import check_copy_masking, target_untrusted
from reconciler.data.admin_password import ensure_admin_password
from reconciler.data.catalogue import Catalogue, load_catalogue, odoo_version
from reconciler.data.context import DataContext
from reconciler.data.filestore import LinkStats, link_tree
from reconciler.data.leakscan import explain as explain_leaks
from reconciler.data.leakscan import scan_clone
from reconciler.data.masking import (
    MaskRule,
    apply_masking,
    cut_secrets,
    masking_key,
    replace_attachments,
    rules_from_config,
)
from reconciler.data.production_copy import RestoredBackup, is_production, restore_newest
from reconciler.data.scratch import scratch_name
from reconciler.data.verify import check_identity, check_neutralized, summarize
from reconciler.errors import OdooOpsError
from reconciler.executors.runtime import RunResult
from reconciler.executors.sql import Connection
from reconciler.progress import phase

RunOdoo = Callable[[list[str]], RunResult]
MAIL_CATCHER_NAME = "OdooOps mail catcher"


@dataclass
class CloneResult:
    db: str
    filestore: Path
    verification: dict[str, Any]
    seconds: float
    source_env: str = ""
    target_env: str = ""
    steps: dict[str, float] = field(default_factory=dict)
    filestore_stats: dict[str, int] = field(default_factory=dict)
    source_backup: dict[str, Any] | None = None  # the backup of production the copy was restored from

    def as_dict(self) -> dict[str, Any]:
        return {"db": self.db, "filestore": str(self.filestore), "verification": self.verification,
                "seconds": round(self.seconds, 3), "source": self.source_env, "target": self.target_env,
                "steps": {k: round(v, 3) for k, v in self.steps.items()}, "filestore_stats": self.filestore_stats,
                "source_backup": self.source_backup}


def clone_to_scratch(ctx: DataContext, source_env: str, target_env: str, *, neutralize: bool, mask: bool,
                     rules: Iterable[Mapping[str, Any]] | None = None, run_odoo: RunOdoo | None = None,
                     mail_server: Mapping[str, Any] | None = None, attachments: bool = False) -> CloneResult:
    """Quiesced FILE_COPY clone of `source_env` into `oo_clone_*` owned by `target_env`'s role, its filestore
    linked into `host.filestore_dir(target_env, db)`, then neutralized, masked and verified. Production is
    never the source itself: its newest verified backup is (production_copy.py). On any failure the
    scratch database and filestore are removed and the error is raised (CLONE_VERIFICATION_FAILED names
    the failed checks). The copy is not reachable by anyone until the caller swaps it in."""
    started = time.monotonic()
    target = ctx.store.entries().get(target_env) or {}
    check_copy_masking(source_env, target_env, from_production=is_production(ctx, source_env),
                       target_tier=target.get("tier"), target_untrusted=target_untrusted(target.get("settings")),
                       mask=mask)
    target_key, source_key = ctx.key(target_env), ctx.key(source_env)
    if not ctx.pg.role_exists(target_key):
        raise OdooOpsError("CLONE_TARGET_MISSING", f"environment {target_env} has no database role yet",
                           f"deploy {target_env} first (odooops apply --branch <its branch>), then clone into it",
                           {"env": target_env})
    db = scratch_name("clone")
    filestore = ctx.host.filestore_dir(target_key, db)
    steps: dict[str, float] = {}
    restored: RestoredBackup | None = None
    try:
        reference = source_key  # what the copy is checked against: the data it was made from
        if is_production(ctx, source_env):
            # Never production itself (a FILE_COPY would terminate its sessions): its newest verified backup.
            # A masked copy shares no file with production: its files are copies, not the store's inodes.
            restored = restore_newest(ctx, source_env, filestore, share_files=not mask)
            steps.update(restored.steps)
            reference = restored.db
            phase(f"copying backup {restored.backup['id']} of {source_env} (FILE_COPY of the restored backup)")
            steps["copy_db"] = ctx.pg.clone(restored.db, db, owner=target_key)
            stats = LinkStats(files=restored.files, bytes=restored.bytes)
        else:
            phase(f"copying {source_env}'s database (FILE_COPY)")
            steps["copy_db"] = ctx.pg.clone(source_key, db, owner=target_key)
        t = time.monotonic()
        ctx.pg.reassign_objects(db, target_key)
        steps["reassign"] = time.monotonic() - t
        if restored is None:
            t = time.monotonic()
            phase("linking the filestore")
            # A masked copy shares no file with its source: its text attachments get new contents, and
            # even its binaries must not be the source's inodes (a copy's rewrite would reach production).
            stats = link_tree(ctx.host.filestore_dir(source_key), filestore, hardlink=not mask)
            steps["filestore"] = time.monotonic() - t
        phase("neutralizing, masking and verifying the copy" if mask else "neutralizing and verifying the copy")
        result = sanitize(ctx, db, target_env, neutralize=neutralize, mask=mask, source_db=reference,
                          run_odoo=run_odoo, mail_server=mail_server, rules=rules,
                          filestore=filestore if attachments or mask else None,
                          attachment_scope="all" if attachments else "text",
                          source_filestore=ctx.host.filestore_dir(source_key))
        # A clone empties every password: the copy gets the target's own admin password, never the source's.
        ensure_admin_password(ctx.pg, ctx.secrets, target_key, db)
    except BaseException:
        # Nothing half-made stays behind: not the database, not the filestore directory.
        with suppress(Exception):
            ctx.pg.drop(db)
        shutil.rmtree(filestore, ignore_errors=True)
        raise
    finally:
        if restored is not None:
            with suppress(Exception):
                ctx.pg.drop(restored.db)
    steps.update(result.pop("steps", {}))
    return CloneResult(db=db, filestore=filestore, verification=result, seconds=time.monotonic() - started,
                       source_env=source_env, target_env=target_env, steps=steps, filestore_stats=stats.as_dict(),
                       source_backup=restored.backup if restored is not None else None)


def target_url(ctx: DataContext, env: str) -> str:
    """The URL the copy will be served at: the environment's recorded URL, else http://<first domain>."""
    entry = ctx.store.entries().get(env) or {}
    if entry.get("url"):
        return str(entry["url"]).rstrip("/")
    domains = (entry.get("settings") or {}).get("domains") or [ctx.names(env).host_name(ctx.host.base_domain)]
    return f"http://{domains[0]}"


def _project_rules(ctx: DataContext, target_env: str, rules: Iterable[Mapping[str, Any]] | None) -> list[MaskRule]:
    if rules is None:
        entry = ctx.store.entries().get(target_env) or {}
        rules = (entry.get("settings") or {}).get("masking_rules") or []
    return rules_from_config(rules)


def masking_catalogue(conn: Connection, project_rules: list[MaskRule]) -> Catalogue:
    """The reviewed catalogue of the database's Odoo version plus the project's `.odooops.yaml` rules."""
    return load_catalogue(odoo_version(conn)).with_rules(project_rules)


def sanitize(ctx: DataContext, db: str, target_env: str, *, neutralize: bool, mask: bool,
             source_db: str | None = None, run_odoo: RunOdoo | None = None,
             mail_server: Mapping[str, Any] | None = None, rules: Iterable[Mapping[str, Any]] | None = None,
             filestore: Path | None = None, attachment_scope: str = "all",
             source_filestore: Path | None = None) -> dict[str, Any]:
    """Neutralize and mask an existing scratch database `db` of `target_env`, give it a new identity, and
    verify it; returns the verification (with "steps" timings) or raises CLONE_VERIFICATION_FAILED.
    `source_db`, when given, is scanned for personal values left in the copy. `filestore`, when given,
    gets its personal attachments replaced (`attachment_scope` "text": text-like ones only) and is scanned with
    the database (no file shared with `source_filestore`, no personal value in a text file). The caller
    drops `db` on failure."""
    steps: dict[str, float] = {}
    mask_rules = _project_rules(ctx, target_env, rules) if mask else []
    if neutralize:
        t = time.monotonic()
        runner = run_odoo or (lambda cmd: ctx.odoo(target_env, cmd))
        run = runner(["odoo", "neutralize", "-d", db])
        if not run.ok:
            raise OdooOpsError(
                "NEUTRALIZE_FAILED", f"odoo neutralize -d {db} for {target_env} exited with "
                f"{'a timeout' if run.timed_out else run.exit_code}",
                "read the log below, fix the module whose data/neutralize.sql fails, then retry the clone",
                {"log": run.logs[-4000:], "database": db})
        steps["odoo_neutralize"] = time.monotonic() - t
    with ctx.pg.connect(db) as conn:
        t = time.monotonic()
        if neutralize:
            with conn.transaction():
                platform_cuts(conn, target_url(ctx, target_env))
            steps["platform_cuts"] = time.monotonic() - t
        masked: dict[str, Any] = {}
        if mask:
            t = time.monotonic()
            with conn.transaction():
                catalogue = masking_catalogue(conn, mask_rules)
                masked = apply_masking(conn, masking_key(ctx.secrets, ctx.project), catalogue.rules, catalogue)
                masked["secrets"] = cut_secrets(conn)
                if filestore is not None:
                    masked["attachments"] = replace_attachments(conn, filestore, attachment_scope)
            steps["mask"] = time.monotonic() - t
        with conn.transaction():
            if neutralize and mail_server:
                add_mail_catcher(conn, mail_server)
            new_identity(conn)
        t = time.monotonic()
        checks: dict[str, dict[str, Any]] = {}
        if neutralize:
            checks.update(check_neutralized(conn, mail_server))
        source = ctx.pg.connect(source_db) if source_db else None
        try:
            checks["new_identity"] = check_identity(conn, source)
            if mask and source is not None:
                checks["personal_data"] = scan_clone(conn, source, masking_catalogue(conn, mask_rules),
                                                     filestore=filestore, source_filestore=source_filestore)
        finally:
            if source is not None:
                source.close()
        steps["verify"] = time.monotonic() - t
    result = summarize(checks)
    result["masked_columns"] = masked.get("columns", [])
    result["secrets_cut"] = masked.get("secrets", {})
    if "attachments" in masked:
        result["attachments"] = masked["attachments"]
    if "personal_data" in checks:
        scan = checks["personal_data"]
        result["leak_scan"] = {k: scan[k] for k in ("leaks", "chance", "personal_values", "tables_scanned",
                                                    "columns_scanned", "files_scanned", "hardlinked_files",
                                                    "seconds")}
        result["deleted"] = masked.get("deleted", {})
    if not result["ok"]:
        raise OdooOpsError(
            "CLONE_VERIFICATION_FAILED", f"the copy {db} for {target_env} failed verification: "
            + "; ".join(_explain(name, checks[name]) for name in result["failed"]),
            "the copy was not made reachable; fix the cause (a module's data/neutralize.sql, a masking rule "
            "in .odooops.yaml masking.rules) and run the clone again", {"verification": result, "database": db})
    result["steps"] = steps
    return result


def _explain(name: str, check: Mapping[str, Any]) -> str:
    detail = {k: v for k, v in check.items() if k != "ok" and v not in (None, [], {}, 0)}
    if name == "personal_data":
        return f"{name}: production values found in the copy ({explain_leaks(check)})"
    return f"{name} {detail}"


def platform_cuts(conn: Connection, url: str) -> None:
    """What `odoo neutralize` leaves that a safe copy must also cut (docs: ARCHITECTURE, Odoo facts)."""
    tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema = 'public'").fetchall()}
    if "queue_job" in tables:
        conn.execute("UPDATE queue_job SET state = 'cancelled' WHERE state IN ('pending', 'enqueued', 'started', "
                     "'wait_dependencies')")
    if "base_automation" in tables:
        conn.execute("UPDATE base_automation SET active = false WHERE active")
    if "ir_mail_server" in tables:
        # Including neutralize's dummy server: the platform's catcher is the only way out.
        conn.execute("UPDATE ir_mail_server SET active = false WHERE active")
    for key, value in (("web.base.url", url), ("web.base.url.freeze", "True")):
        conn.execute("INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s) "
                     "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, value))


def add_mail_catcher(conn: Connection, mail_server: Mapping[str, Any]) -> None:
    """One active outgoing server: the platform's mail catcher (every message captured, none delivered)."""
    conn.execute(
        "INSERT INTO ir_mail_server (name, smtp_host, smtp_port, smtp_user, smtp_pass, smtp_encryption, "
        "smtp_authentication, sequence, active) VALUES (%s, %s, %s, %s, %s, 'none', 'login', 1, true)",
        (MAIL_CATCHER_NAME, str(mail_server["host"]), int(mail_server["port"]), mail_server.get("user"),
         mail_server.get("password")))


def new_identity(conn: Connection) -> None:
    """A copy gets its own database.uuid and database.secret (a TEMPLATE copy carries the source's)."""
    for key in ("database.uuid", "database.secret"):
        conn.execute("INSERT INTO ir_config_parameter (key, value) VALUES (%s, gen_random_uuid()::text) "
                     "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key,))
