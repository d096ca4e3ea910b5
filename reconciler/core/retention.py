"""Which backups a retention policy keeps: newest per day/ISO week/month, or everything younger than N days."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reconciler.errors import OdooOpsError

_BUCKETS: dict[str, Callable[[datetime], Hashable]] = {
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
}


@dataclass(frozen=True)
class RetentionPlan:
    """keep: backup id -> reasons (e.g. ["newest", "daily 2026-02-12"]); prune: ids to delete, oldest first."""

    keep: dict[str, list[str]] = field(default_factory=dict)
    prune: list[str] = field(default_factory=list)


def check_policy(policy: Mapping[str, Any]) -> dict[str, int]:
    """{daily, weekly, monthly} counts or {days}; anything else is refused with the allowed shapes."""
    allowed = ({"daily", "weekly", "monthly"}, {"days"})
    keys = set(policy)
    ok = bool(keys) and any(keys <= a for a in allowed)
    values = dict(policy)
    if ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()):
        return {k: int(v) for k, v in values.items()}
    raise OdooOpsError("RETENTION_INVALID", f"invalid backup retention {values!r}",
                       "set backup_retention in .odooops.yaml to {daily: 7, weekly: 4, monthly: 3} "
                       "or {days: 30} (non-negative whole numbers)", {"retention": values})


def plan_retention(backups: Mapping[str, datetime], now: datetime, policy: Mapping[str, Any]) -> RetentionPlan:
    """Decide per backup id (times must share one timezone as `now`). The newest backup is always kept."""
    rules = check_policy(policy)
    order = sorted(backups, key=lambda b: (backups[b], b), reverse=True)  # newest first
    keep: dict[str, list[str]] = {}
    if order:
        keep[order[0]] = ["newest"]
    if "days" in rules:
        horizon = now - timedelta(days=rules["days"])
        for b in order:
            if backups[b] > horizon:
                keep.setdefault(b, []).append(f"younger than {rules['days']} days")
    else:
        for name in ("daily", "weekly", "monthly"):
            count = rules.get(name, 0)
            seen: list[Hashable] = []
            # Walking newest first, the first backup met in a bucket is that bucket's newest.
            for b in order:
                bucket = _BUCKETS[name](backups[b])
                if bucket in seen:
                    continue
                if len(seen) >= count:
                    break
                seen.append(bucket)
                keep.setdefault(b, []).append(f"{name} {_label(name, backups[b])}")
    prune = [b for b in reversed(order) if b not in keep]
    return RetentionPlan({b: keep[b] for b in order if b in keep}, prune)


def _label(name: str, t: datetime) -> str:
    if name == "daily":
        return t.strftime("%Y-%m-%d")
    if name == "weekly":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    return t.strftime("%Y-%m")
