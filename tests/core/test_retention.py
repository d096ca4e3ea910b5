"""Retention tiers as properties: the newest is never pruned, each tier keeps exactly its count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.retention import plan_retention
from reconciler.errors import OdooOpsError

NOW = datetime(2026, 2, 12, 12, 0, tzinfo=UTC)

# Backups spread over ~200 days before NOW, to the minute.
offsets = st.lists(st.integers(min_value=0, max_value=200 * 24 * 60), min_size=0, max_size=60, unique=True)
gfs = st.fixed_dictionaries({"daily": st.integers(0, 10), "weekly": st.integers(0, 6), "monthly": st.integers(0, 4)})


def _backups(minutes: list[int]) -> dict[str, datetime]:
    return {f"b{m:06d}": NOW - timedelta(minutes=m) for m in minutes}


@settings(max_examples=200, deadline=None)
@given(offsets, gfs)
def test_gfs_keeps_newest_and_exact_counts(minutes: list[int], policy: dict[str, int]) -> None:
    backups = _backups(minutes)
    plan = plan_retention(backups, NOW, policy)
    assert set(plan.keep) | set(plan.prune) == set(backups)
    assert not set(plan.keep) & set(plan.prune)
    if backups:
        newest = max(backups, key=backups.__getitem__)
        assert newest in plan.keep and "newest" in plan.keep[newest]
    for tier, bucket in (("daily", lambda t: t.date()), ("weekly", lambda t: t.isocalendar()[:2]),
                         ("monthly", lambda t: (t.year, t.month))):
        kept = [b for b, reasons in plan.keep.items() if any(r.startswith(tier + " ") for r in reasons)]
        distinct = {bucket(t) for t in backups.values()}
        assert len(kept) == min(policy[tier], len(distinct))
        # each kept one is the newest of its bucket, and the buckets are the most recent ones
        for b in kept:
            same = [x for x, t in backups.items() if bucket(t) == bucket(backups[b])]
            assert backups[b] == max(backups[x] for x in same)
        kept_buckets = {bucket(backups[b]) for b in kept}
        assert kept_buckets == set(sorted(distinct, reverse=True)[:policy[tier]])
    # nothing is kept without a reason
    assert all(plan.keep.values())


@settings(max_examples=200, deadline=None)
@given(offsets, st.integers(0, 60))
def test_days_keeps_exactly_the_young_ones_and_the_newest(minutes: list[int], days: int) -> None:
    backups = _backups(minutes)
    plan = plan_retention(backups, NOW, {"days": days})
    young = {b for b, t in backups.items() if t > NOW - timedelta(days=days)}
    newest = {max(backups, key=backups.__getitem__)} if backups else set()
    assert set(plan.keep) == young | newest
    # pruned oldest first
    assert [backups[b] for b in plan.prune] == sorted(backups[b] for b in plan.prune)


def test_default_production_policy_on_a_quarter_of_six_hourly_backups() -> None:
    backups = {f"b{i:04d}": NOW - timedelta(hours=6 * i) for i in range(4 * 90)}
    plan = plan_retention(backups, NOW, {"daily": 7, "weekly": 4, "monthly": 3})
    # 7 days + up to 4 weeks + up to 3 months, overlapping: at most 14, at least 7
    assert 7 <= len(plan.keep) <= 14
    assert plan.keep["b0000"][0] == "newest"
    assert "daily 2026-02-12" in plan.keep["b0000"]
    assert len(plan.prune) == len(backups) - len(plan.keep)


@pytest.mark.parametrize("policy", [{}, {"days": -1}, {"days": 3, "daily": 2}, {"hourly": 3}, {"days": "7"},
                                    {"daily": True}])
def test_invalid_policies_are_refused_with_the_allowed_shapes(policy: dict[str, object]) -> None:
    with pytest.raises(OdooOpsError) as err:
        plan_retention({}, NOW, policy)
    assert err.value.code == "RETENTION_INVALID" and "{days: 30}" in err.value.remediation
