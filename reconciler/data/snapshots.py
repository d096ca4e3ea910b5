"""Production snapshots: a neutralized, masked, verified copy of production kept as a template, so the
next dev or preview environment built from production is a FILE_COPY plus its own cuts, not a new
neutralize and mask of production.

A snapshot holds no environment's secret: the catcher row of the environment it was first made for
is removed before it is kept, and every environment cloned from it gets its own URL, catcher login
and database identity, checked before it is used.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.data_copy import SNAPSHOT_TIERS as _SNAPSHOT_TIERS
from reconciler.core.model import digest
from reconciler.data.clone import MAIL_CATCHER_NAME, add_mail_catcher, new_identity, platform_cuts, target_url
from reconciler.data.scratch import scratch_name
from reconciler.data.templates import Template, TemplateRegistry, keep_copy
from reconciler.data.verify import check_identity, check_neutralized, summarize
from reconciler.errors import OdooOpsError
from reconciler.platform.host import host_setting

if TYPE_CHECKING:
    from reconciler.data.context import DataContext

# Tiers with many short-lived environments: for them a snapshot pays for its extra copy at once.
SNAPSHOT_TIERS = _SNAPSHOT_TIERS  # the plan (pure core) says so too


@dataclass(frozen=True)
class SnapshotKey:
    """What a snapshot's content depends on: production's code, the image, and how it was sanitized.

    Production's data moves all the time: a snapshot also expires after ODOOOPS_SNAPSHOT_MAX_AGE_S."""

    project_id: str
    image_id: str
    production_commit: str
    odoo_version: str
    mask: bool
    rules_digest: str

    @classmethod
    def make(cls, project_id: str, image_id: str, production_commit: str, odoo_version: str, mask: bool,
             rules: Any) -> SnapshotKey:
        return cls(project_id, image_id, production_commit, odoo_version, bool(mask), digest(rules or [])[:16])

    @property
    def id(self) -> str:
        return "prod-" + digest(self.to_json())[:16]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "production-snapshot", "project_id": self.project_id, "image_id": self.image_id,
                "production_commit": self.production_commit, "odoo_version": self.odoo_version,
                "mask": self.mask, "rules_digest": self.rules_digest}


def max_age_s(env: Mapping[str, str] | None = None) -> float:
    """limits.snapshot_max_age_s of the host (default 24 h; 0 = never reuse a snapshot)."""
    return float(host_setting("limits.snapshot_max_age_s", env))


def usable(ctx: DataContext, registry: TemplateRegistry, key: SnapshotKey, now: float | None = None
           ) -> Template | None:
    """The snapshot for key when it is fresh enough and still there; stale or broken ones are dropped."""
    found = registry.lookup(key)
    if found is None:
        return None
    age = (time.time() if now is None else now) - found.created_at
    if age > max_age_s() or not ctx.pg.exists(found.db) or not Path(found.filestore).exists():
        registry.discard(ctx.pg, found)
        return None
    return found


def keep(ctx: DataContext, registry: TemplateRegistry, key: SnapshotKey, scratch_db: str, scratch_fs: Path,
         built_by: str, verification: Mapping[str, Any]) -> str:
    """Copy a verified scratch clone of production (not yet renamed into place) as the snapshot."""

    def forget_catcher_login(db: str) -> None:
        # The catcher login belongs to the environment the clone was made for, not to the snapshot.
        with ctx.pg.connect(db) as conn, conn.transaction():
            conn.execute("DELETE FROM ir_mail_server WHERE name = %s", (MAIL_CATCHER_NAME,))

    verified = {"ok": verification.get("ok"), "failed": verification.get("failed", [])}
    try:
        template, seconds, evicted = keep_copy(
            ctx.pg, registry, scratch_db, scratch_fs, admin=ctx.host.pg_admin_user, key=key.id,
            commit=key.production_commit, inputs={**key.to_json(), "verified": verified}, built_by=built_by,
            prepare=forget_catcher_login)
    except OdooOpsError as exc:
        # A snapshot is an optimisation: the environment is fine without one.
        return f"no production snapshot kept ({exc.code}: {exc.message})"
    tail = f", evicted {', '.join(t.db for t in evicted)}" if evicted else ""
    return f"kept as production snapshot {template.db} ({seconds:.1f}s{tail})"


def clone_from(ctx: DataContext, snapshot: Template, target_env: str,
               mail_server: Mapping[str, Any] | None) -> tuple[str, dict[str, Any], dict[str, float]]:
    """Snapshot -> `oo_clone_*` owned by target_env with this env's URL, catcher login and identity, checked.

    Returns (scratch db, verification, timings); on any failure the scratch copy is dropped."""
    marks = [("start", time.monotonic())]
    db = scratch_name("clone")
    ctx.pg.clone(snapshot.db, db, owner=ctx.key(target_env))
    marks.append(("copy", time.monotonic()))
    try:
        ctx.pg.reassign_objects(db, ctx.key(target_env))
        marks.append(("ownership", time.monotonic()))
        with ctx.pg.connect(db) as conn:
            with conn.transaction():
                conn.execute("DELETE FROM ir_mail_server WHERE name = %s", (MAIL_CATCHER_NAME,))
                platform_cuts(conn, target_url(ctx, target_env))
                if mail_server:
                    add_mail_catcher(conn, mail_server)
                new_identity(conn)
            with ctx.pg.connect(snapshot.db) as source:
                checks = {**check_neutralized(conn, mail_server), "new_identity": check_identity(conn, source)}
        marks.append(("cuts", time.monotonic()))
        result = summarize(checks)
        if not result["ok"]:
            raise OdooOpsError(
                "CLONE_VERIFICATION_FAILED", f"the copy {db} of production snapshot {snapshot.db} for "
                f"{target_env} failed verification: {', '.join(result['failed'])}",
                "the copy was not made reachable; drop the snapshot (it is rebuilt on the next env): "
                f"DROP DATABASE \"{snapshot.db}\"", {"verification": result, "database": db})
    except BaseException:
        ctx.pg.drop(db)
        raise
    timings = {name: round(t - marks[i][1], 3) for i, (name, t) in enumerate(marks[1:])}
    return db, result, timings


__all__ = ["SNAPSHOT_TIERS", "SnapshotKey", "clone_from", "keep", "max_age_s", "usable"]
