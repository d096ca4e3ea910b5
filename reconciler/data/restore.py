"""Restore a backup into a new scratch database and filestore (checksums first), and verify backups."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.copy_guard import masking_reason, target_untrusted
from reconciler.core.naming import PRODUCTION_NAME
from reconciler.data.admin_password import ensure_admin_password
from reconciler.data.backup import (
    Manifest,
    database_facts,
    load_manifest,
    resolve,
)
from reconciler.data.backup_check import (
    _chown_tree,
    _drop_scratch,
    _owner_of,
    _scratch_dir,
    check_and_fetch,
    pg_restore,
)
from reconciler.data.clone import sanitize
from reconciler.data.scratch import scratch_name
from reconciler.data.swap import require_confirmation, swap_in
from reconciler.errors import OdooOpsError
from reconciler.executors.storage import store_for
from reconciler.platform.env_lock import env_lock
from reconciler.progress import phase

if TYPE_CHECKING:
    from reconciler.data.context import DataContext


def _target_version(ctx: DataContext, target_env: str, entry: dict[str, Any]) -> str:
    version = (entry.get("settings") or {}).get("odoo_version")
    return str(version) if version else database_facts(ctx, ctx.key(target_env))["odoo_version"]


def needs_sanitize(m: Manifest, target_env: str, target_entry: dict[str, Any]) -> bool:
    """A copy that is not production restoring its own backup must not send mail or run crons."""
    return target_env != m.env or str(target_entry.get("tier")) != "production"


def restore_to_scratch(ctx: DataContext, env: str, backup_id: str, target_env: str) -> tuple[str, Path]:
    """Backup of `env` -> (`oo_restore_*` owned by target_env's role, its filestore dir); nothing live is touched."""
    store = store_for(ctx.host, ctx.secrets)
    m = load_manifest(store, ctx.key(env), resolve(ctx, env, backup_id, store))
    entry = ctx.entry(target_env)
    version = _target_version(ctx, target_env, entry)
    if m.odoo_version != version:
        raise OdooOpsError(
            "BACKUP_VERSION_MISMATCH", f"backup {m.id} of {env} was taken on Odoo {m.odoo_version}; "
            f"{target_env} runs Odoo {version}",
            f"restore it into an environment on Odoo {m.odoo_version} (odooops db restore {env} --backup {m.id} "
            f"--to ENV), or set odoo_version: \"{m.odoo_version}\" in .odooops.yaml of {target_env}'s branch "
            "first; upgrading a database between Odoo versions is a migration, not a restore",
            {"backup": m.id, "backup_version": m.odoo_version, "target_version": version})
    db = scratch_name("restore")
    target_key = ctx.key(target_env)
    final = ctx.host.filestore_dir(target_key, db)
    stage = final.with_name(f".{db}.partial")
    env_root = ctx.host.filestore_root / target_key
    try:
        with _scratch_dir("odooops-restore-") as tmp:
            stage.mkdir(parents=True)
            # Hardlinks only within one file system; _fetch falls back to a copy otherwise.
            phase(f"checking backup {m.id} (SHA-256 of every part)")
            dump = check_and_fetch(store, m, tmp, filestore=stage, link=True)
            phase(f"restoring the database into {db}")
            pg_restore(ctx, dump, db, target_key)
        if env_root.exists():
            _chown_tree(stage, _owner_of(env_root))
        os.rename(stage, final)
        if needs_sanitize(m, target_env, entry):
            phase("neutralizing and masking the copy")
            _sanitize(ctx, db, target_env, entry, from_production=m.env == PRODUCTION_NAME or str(
                (ctx.store.entries().get(m.env) or {}).get("tier")) == "production")
        # The target's own admin password: a backup carries its source's (or a clone's emptied one).
        ensure_admin_password(ctx.pg, ctx.secrets, target_key, db)
    except BaseException:
        _drop_scratch(ctx, db, stage, final)
        raise
    return db, final


def _sanitize(ctx: DataContext, db: str, target_env: str, entry: dict[str, Any], from_production: bool = False) -> None:
    settings = entry.get("settings") or {}
    # Production's data outside production, or any data where untrusted code runs: masked, whatever the settings.
    mask = bool(settings.get("mask", False)) or masking_reason(
        from_production=from_production, target_tier=entry.get("tier"),
        target_untrusted=target_untrusted(settings)) is not None
    sanitize(ctx, db, target_env, neutralize=True, mask=mask)


def restore(ctx: DataContext, env: str, backup_id: str, target_env: str | None = None, *,
            confirm: bool = False, keep_old: bool = False) -> dict[str, Any]:
    """The whole workflow under the target's lock: confirmation, scratch restore (verified), swap."""
    target = target_env or env
    store = store_for(ctx.host, ctx.secrets)
    full_id = resolve(ctx, env, backup_id, store)
    require_confirmation(ctx, target, confirm, f"odooops db restore {env} --backup {full_id}"
                         + (f" --to {target}" if target != env else "") + " --confirm")
    with env_lock(ctx.host.state_dir, ctx.key(target), f"restore of {env} backup {full_id}"):
        t = time.monotonic()
        db, filestore = restore_to_scratch(ctx, env, full_id, target)
        scratch_s = round(time.monotonic() - t, 3)
        try:
            result = swap_in(ctx, target, db, filestore, confirm_production=confirm, keep_old=keep_old)
        except BaseException:
            _drop_scratch(ctx, db, filestore)
            raise
    result["backup"] = full_id
    result["source_env"] = env
    result["phases"] = {"restore_to_scratch": scratch_s, **result.get("phases", {})}
    return result
