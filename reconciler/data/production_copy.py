"""Copies of production come from its newest verified backup, never from the live database.

A FILE_COPY of production needs production idle: its sessions terminated and new ones refused while
it is copied, which its web workers feel. So a copy (a clone to staging, the masked snapshot for dev
and previews, `odooops db clone production ...`) restores production's newest verified backup that is
at most ODOOOPS_PRODUCTION_COPY_MAX_AGE_S old (default 24 h) into a scratch database instead. When
there is none, a new backup is taken first (pg_dump reads a snapshot and blocks no writer) and this
very restore verifies it (the checks of `odooops db verify`), recorded in its manifest for the next copy.

The restored database is kept as it is (the reference the masking scan compares against) and the copy
that is neutralized and masked is a FILE_COPY of it, which nobody else uses.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.data_copy import COPY_MAX_AGE_ENV
from reconciler.core.naming import PRODUCTION_NAME
from reconciler.data.backup import Manifest, create_backup, database_facts, newest_verified, record_verification
from reconciler.data.backup_check import (
    _chown_tree,
    _owner_of,
    _scratch_dir,
    check_and_fetch,
    facts_problems,
    pg_restore,
)
from reconciler.data.scratch import scratch_name
from reconciler.errors import OdooOpsError
from reconciler.executors.storage import ObjectStore, store_for
from reconciler.platform.env_lock import env_lock
from reconciler.platform.host import host_setting
from reconciler.progress import phase

if TYPE_CHECKING:
    from reconciler.data.context import DataContext

MAX_AGE_ENV = COPY_MAX_AGE_ENV
# Parallel pg_restore: index builds dominate a large restore and use one core each.
RESTORE_JOBS = max(1, min(4, os.cpu_count() or 1))
# A backup for a copy waits this long for a deploy of production to finish (never copies it mid-update).
BACKUP_LOCK_WAIT_S = 900.0


def max_age_s(env: Mapping[str, str] | None = None) -> float:
    """limits.production_copy_max_age_s of the host (default 24 h; 0 = a new backup for every copy)."""
    return float(host_setting("limits.production_copy_max_age_s", env))


def is_production(ctx: DataContext, env: str) -> bool:
    return env == PRODUCTION_NAME or str((ctx.store.entries().get(env) or {}).get("tier")) == "production"


@dataclass
class RestoredBackup:
    """A backup of production restored as it is into `db` (owned by the admin), its files in a filestore."""

    db: str
    backup: dict[str, Any]  # id, created_at, age_s, taken_now, verified_at
    steps: dict[str, float] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0


@contextmanager
def _copy_lock(ctx: DataContext, env: str) -> Iterator[None]:
    """Concurrent copies of one production agree on one backup: the second waits for the first's new one."""
    path = ctx.host.state_dir / "locks" / f"production-copy-{ctx.key(env)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def restore_newest(ctx: DataContext, env: str, filestore: Path, share_files: bool = True) -> RestoredBackup:
    """env's newest verified backup within the age limit (or a new, then verified, one) restored into a
    new `oo_restore_*` database, its files placed in `filestore`. Production's database is only read by
    pg_dump, and only when a new backup is needed. On failure nothing is left behind. The files are always
    copies, decrypted out of the store (`share_files` no longer links: see restore.check_and_fetch)."""
    store = store_for(ctx.host, ctx.secrets)
    limit = max_age_s()
    with _copy_lock(ctx, env):
        m = newest_verified(ctx, env, limit, store=store)
        if m is None:
            steps: dict[str, float] = {}
            t = time.monotonic()
            phase(f"no verified backup of {env} from the last {limit:.0f} s: backing it up (pg_dump blocks no writer)")
            with env_lock(ctx.host.state_dir, ctx.key(env), "backup for a copy of production",
                          wait_s=BACKUP_LOCK_WAIT_S):
                m = create_backup(ctx, env, reason="production-copy")
            steps["backup"] = time.monotonic() - t
            # Restored and checked under the lock: a concurrent copy then uses this backup, verified.
            restored = _restore(ctx, store, env, m, filestore, taken_now=True, share_files=share_files)
            restored.steps = {**steps, **restored.steps}
            return restored
    return _restore(ctx, store, env, m, filestore, taken_now=False, share_files=share_files)


def _restore(ctx: DataContext, store: ObjectStore, env: str, m: Manifest, filestore: Path,
             taken_now: bool, share_files: bool) -> RestoredBackup:
    db = scratch_name("restore")
    stage = filestore.with_name(f".{filestore.name}.partial")
    steps: dict[str, float] = {}
    try:
        t = time.monotonic()
        with _scratch_dir("odooops-copy-") as tmp:
            stage.mkdir(parents=True)
            phase(f"restoring {env}'s backup {m.id} (SHA-256 of every part checked)")
            dump = check_and_fetch(store, m, tmp, filestore=stage, link=share_files)
            pg_restore(ctx, dump, db, None, jobs=RESTORE_JOBS)
        source_files = ctx.host.filestore_dir(ctx.key(env))
        if source_files.exists():
            _chown_tree(stage, _owner_of(source_files))  # Odoo's user, as in production's filestore
        os.rename(stage, filestore)
        steps["restore_backup"] = time.monotonic() - t
        verified_at = m.extra.get("verified_at")
        if taken_now:
            t = time.monotonic()
            facts = database_facts(ctx, db)
            problems = facts_problems(m, facts)
            if problems:
                raise OdooOpsError(
                    "BACKUP_VERIFY_FAILED", f"the new backup {m.id} of {env} restores, but: {'; '.join(problems)}",
                    f"nothing was copied and {env} is untouched; take another backup (odooops db backup {env} "
                    "--verify) and retry the copy", {"backup": m.id, "problems": problems})
            recorded = record_verification(ctx, env, m.id, {
                "ok": True, "modules": len(facts["modules"]), "base_version": facts["base_version"],
                "bytes": m.sizes.get("total"), "seconds": {"restore": round(steps["restore_backup"], 3)}})
            verified_at = recorded["verified_at"]
            steps["verify_backup"] = time.monotonic() - t
    except BaseException:
        with suppress(OdooOpsError):
            ctx.pg.drop(db)
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(filestore, ignore_errors=True)
        raise
    created = m.created.timestamp()
    info = {"id": m.id, "created_at": created, "age_s": round(datetime.now(UTC).timestamp() - created, 3),
            "taken_now": taken_now, "verified_at": verified_at, "reason": m.reason}
    return RestoredBackup(db=db, backup=info, steps=steps, files=len(m.files),
                          bytes=int(m.sizes.get("filestore") or 0))


__all__ = ["MAX_AGE_ENV", "RestoredBackup", "is_production", "max_age_s", "restore_newest"]
