"""Where a new environment's copy of production will come from, as the plan states it (pure).

A copy of production is never taken from the live database: it is restored from production's newest
verified backup when that backup is recent enough, otherwise a new backup of production is taken
(pg_dump blocks no writer) and verified first. The observed state carries production's newest
verified backup (`ObservedEnv.backup`); the age limit comes from the host (ODOOOPS_PRODUCTION_COPY_MAX_AGE_S).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.model import ObservedEnv

# The variable of the host's limit on the age of the backup a copy of production is restored from
# (limits.production_copy_max_age_s; platform/host.py reads it).
COPY_MAX_AGE_ENV = "ODOOOPS_PRODUCTION_COPY_MAX_AGE_S"
# Tiers with many short-lived environments: they copy production's masked snapshot (itself made from a
# backup) while it is fresh (ODOOOPS_SNAPSHOT_MAX_AGE_S), and make it from a backup otherwise.
SNAPSHOT_TIERS = frozenset({"dev", "ephemeral", "preview"})


def production_copy_source(data_source: str, production: ObservedEnv | None, now: float,
                           max_age_s: float, tier: str | None = None) -> dict[str, Any] | None:
    """{"source": "backup", "backup", "created_at"} or {"source": "new-backup", "reason"}; None when
    the environment is not built from production, or no production runs (it is then built fresh).
    For snapshot tiers, "snapshot": true: a fresh masked snapshot of production is copied first."""
    if data_source != "production" or production is None or production.state != "running":
        return None
    copy = _source(production, now, max_age_s)
    if tier in SNAPSHOT_TIERS:
        copy["snapshot"] = True
    return copy


def _source(production: ObservedEnv, now: float, max_age_s: float) -> dict[str, Any]:
    backup = production.backup or {}
    created = backup.get("created_at")
    if backup.get("id") and isinstance(created, int | float):
        age = now - float(created)
        if max_age_s > 0 and age <= max_age_s:  # 0 = always a new backup
            return {"source": "backup", "backup": str(backup["id"]), "created_at": float(created),
                    "expires_at": float(created) + max_age_s}
        reason = f"production's newest verified backup {backup['id']} is {describe_age(age)} old"
    else:
        reason = "production has no verified backup"
    return {"source": "new-backup", "reason": f"{reason} (limit {describe_age(max_age_s)})"}


def describe_age(seconds: float) -> str:
    """`45 s`, `12 min`, `2 h`, `3 d`: the age of a backup as a person reads it."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.0f} h"
    return f"{s / 86400:.0f} d"


def describe(copy: Mapping[str, Any], now: float) -> str:
    """The plan's line for a copy: `copy from production backup ID (2 h old)` or why a new backup is taken."""
    prefix = "production's masked snapshot if a fresh one exists, else: " if copy.get("snapshot") else ""
    if copy.get("source") == "backup":
        return (f"{prefix}copy from production backup {copy['backup']} "
                f"({describe_age(now - float(copy['created_at']))} old)")
    return f"{prefix}a new backup of production will be taken and verified, then copied ({copy.get('reason')})"


__all__ = ["COPY_MAX_AGE_ENV", "SNAPSHOT_TIERS", "describe", "describe_age",
           "production_copy_source"]
