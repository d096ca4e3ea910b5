"""The data operations the API offers (backup, verify, restore, clone, promote, rollback, mail), composed
from the data layer under each environment's lock; every result is plain JSON without secrets."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reconciler.core.naming import PRODUCTION_NAME
from reconciler.data import backup as backups
from reconciler.data.backup_check import verify_backup
from reconciler.data.clone import clone_to_scratch
from reconciler.data.context import DataContext
from reconciler.data.mail import catcher_login, list_messages
from reconciler.data.restore import restore
from reconciler.data.swap import swap_in
from reconciler.errors import OdooOpsError
from reconciler.platform.env_lock import env_lock
from reconciler.progress import phase
from reconciler.service.promote import promote
from reconciler.service.rollback import clear_pin, rollback

if TYPE_CHECKING:
    from reconciler.controller.planning import Project
    from reconciler.platform.host import HostSettings

# A backup waits this long for an apply/restore of the same environment; the data ones wait longer
# because the user asked for exactly this operation and would rather wait than retry.
BACKUP_LOCK_WAIT_S = 900.0
DATA_LOCK_WAIT_S = 1800.0


def backup_summary(m: backups.Manifest) -> dict[str, Any]:
    """What a listing shows of a manifest: no per-file table (it can hold millions of entries)."""
    return {"id": m.id, "env": m.env, "tier": m.tier, "created_at": m.created_at, "reason": m.reason,
            "commit": m.commit, "odoo_version": m.odoo_version, "size_bytes": m.sizes.get("total"),
            "sizes": m.sizes, "modules": len(m.modules), "seconds": m.seconds,
            "verified_at": m.extra.get("verified_at"), "verification": m.extra.get("verification")}


class DataService:
    """One request's data operations on one project and host (cheap: nothing connects until used)."""

    def __init__(self, project: Project, host: HostSettings,
                 enqueue: Callable[[str, str], None] | None = None) -> None:
        self.project = project
        self.host = host
        self.ctx = DataContext.for_project(project, host)
        # The daemon's work queue: Git changes made here are deployed by it, like any push.
        self.enqueue = enqueue

    # ------------------------------------------------------------------ backups

    def backups(self, env: str) -> dict[str, Any]:
        self.ctx.entry(env)
        return {"env": env, "backups": [backup_summary(m) for m in backups.list_backups(self.ctx, env)]}

    def backup(self, env: str, verify: bool = False) -> dict[str, Any]:
        """Back up now; with verify, restore it into a scratch database and record the result in the manifest."""
        self.ctx.entry(env)
        with env_lock(self.host.state_dir, self.ctx.key(env), "backup", wait_s=BACKUP_LOCK_WAIT_S):
            manifest = backups.create_backup(self.ctx, env, reason="manual")
        if verify:
            phase(f"verifying backup {manifest.id} in a scratch database")
        out = backup_summary(manifest)
        out["new_bytes"] = manifest.sizes.get("new_bytes")
        if verify:
            out.update(self._record_verification(env, manifest.id))
        return out

    def verify_backup(self, env: str, backup_id: str) -> dict[str, Any]:
        return self._record_verification(env, backup_id)

    def _record_verification(self, env: str, backup_id: str) -> dict[str, Any]:
        result = verify_backup(self.ctx, env, backup_id)
        recorded = backups.record_verification(self.ctx, env, result["backup"], result)
        return {**result, "id": result["backup"], **recorded}

    def prune(self, env: str) -> dict[str, Any]:
        """Apply the environment's retention now (the daemon also does it after scheduled backups)."""
        entry = self.ctx.entry(env)
        policy = backups.retention_for(entry)
        pruned = backups.prune(self.ctx, env, datetime.now(UTC), policy)
        return {"env": env, "retention": policy, "pruned": pruned,
                "kept": [m.id for m in backups.list_backups(self.ctx, env)]}

    def restore(self, env: str, backup_id: str, to_env: str | None = None, confirm: bool = False) -> dict[str, Any]:
        return restore(self.ctx, env, backup_id, to_env, confirm=confirm)

    # ------------------------------------------------------------------ clone

    def clone(self, source: str, target: str, neutralize: bool = True, mask: bool = True) -> dict[str, Any]:
        """SOURCE's data into the deployed TARGET: a verified, neutralized (and masked) copy swapped in."""
        src_entry, dst_entry = self.ctx.entry(source), self.ctx.entry(target)
        if source == target:
            raise OdooOpsError("CLONE_INVALID", f"{source} cannot be cloned into itself",
                               f"odooops db clone {source} <another environment>")
        if target == PRODUCTION_NAME or str(dst_entry.get("tier")) == "production":
            raise OdooOpsError("CLONE_INTO_PRODUCTION_REFUSED", f"{target} is the production environment: "
                               "a clone never replaces production's data",
                               f"odooops db restore {target} --backup ID --confirm  # restore one of its own backups",
                               {"env": target})
        from_production = source == PRODUCTION_NAME or str(src_entry.get("tier")) == "production"
        if not neutralize and from_production:
            raise OdooOpsError("CLONE_NEUTRALIZE_REQUIRED", f"a copy of {source} (production) must be neutralized: "
                               "otherwise it sends real mail and runs real crons and payments",
                               f"odooops db clone {source} {target}  # without --no-neutralize", {"env": target})
        settings = dst_entry.get("settings") or {}
        mail_server = None
        if settings.get("mail_catcher"):
            mail_server = catcher_login(self.host, self.ctx.secrets, self.ctx.key(target),
                                        dst_entry.get("container_spec"))
        with env_lock(self.host.state_dir, self.ctx.key(target), f"clone of {source}", wait_s=DATA_LOCK_WAIT_S):
            result = clone_to_scratch(self.ctx, source, target, neutralize=neutralize, mask=mask,
                                      rules=settings.get("masking_rules") or None, mail_server=mail_server)
            try:
                swapped = swap_in(self.ctx, target, result.db, result.filestore)
            except BaseException:
                self.ctx.pg.drop(result.db)
                shutil.rmtree(result.filestore, ignore_errors=True)
                raise
            # Same shape as apply's database step records (the promotion gate reads "source").
            data = {"source": "production" if from_production else "clone", "cloned_from": source,
                    "cloned_at": time.time(), "neutralized": neutralize, "masked": mask,
                    "verification": result.verification,
                    ("production_commit" if from_production else "source_commit"): src_entry.get("commit")}
            if result.source_backup is not None:
                data["production_backup"] = result.source_backup  # where the copy came from, and its age
            self.ctx.store.set_state(target, str(dst_entry.get("state", "running")), data=data)
        return {"source": source, "target": target, "status": "cloned", "verification": result.verification,
                "seconds": round(result.seconds + sum(swapped.get("phases", {}).values()), 3),
                "steps": result.as_dict()["steps"], "filestore_stats": result.filestore_stats,
                "swapped": swapped.get("swapped"), "swap": swapped.get("phases"),
                "source_backup": result.source_backup}

    # ------------------------------------------------------------------ promotion and rollback

    def promote(self, source: str, target: str, confirm: bool, actor: str) -> dict[str, Any]:
        """Gates, a fast-forward of TARGET's branch, then its deploy (with the pre-deploy backup when
        production's modules change), recorded in the note. The daemon, which sees the same push,
        waits on the environment's lock and then finds nothing left to do."""
        return promote(self.project, self.host, source, target, confirm=confirm, actor=actor)

    def rollback(self, env: str, to_commit: str | None = None, actor: str = "api", confirm: bool = False,
                 code_only: bool = False) -> dict[str, Any]:
        """Refused (ROLLBACK_NEEDS_CONFIRMATION) when it would discard data written since the pre-deploy
        backup and `confirm` is not set; `code_only` keeps the data when the modules allow it."""
        return rollback(self.project, self.host, env, to_commit=to_commit, actor=actor, confirm=confirm,
                        code_only=code_only)

    def clear_pin(self, env: str, actor: str) -> dict[str, Any]:
        result = clear_pin(self.project, env, actor)
        if result.get("cleared") and self.enqueue is not None:
            branch = str((self.ctx.store.entries().get(env) or {}).get("branch") or env)
            self.enqueue(branch, f"rollback pin cleared by {actor}")
        return result

    # ------------------------------------------------------------------ mail

    def mail(self, env: str, limit: int = 100) -> dict[str, Any]:
        self.ctx.entry(env)
        return {"env": env, "messages": list_messages(self.host, self.ctx.key(env), limit=limit)}


__all__ = ["DataService", "backup_summary"]
