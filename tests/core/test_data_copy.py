"""Where the plan says a new copy of production comes from (pure: observed backup, now, age limit)."""

from __future__ import annotations

from typing import Any

from reconciler.core.data_copy import describe, describe_age, production_copy_source
from reconciler.core.model import ObservedEnv

NOW = 1_800_000_000.0


def production(state: str = "running", backup: dict[str, Any] | None = None) -> ObservedEnv:
    return ObservedEnv(name="production", branch="main", tier="production", commit="c" * 40, spec_digest="d",
                       settings={}, state=state, deployed_at=NOW - 86400, backup=backup)


def test_a_recent_verified_backup_is_the_source_and_its_age_is_stated() -> None:
    prod = production(backup={"id": "2027-01-15-06-00-00-ab12", "created_at": NOW - 7200, "verified_at": "x"})
    copy = production_copy_source("production", prod, NOW, 24 * 3600)
    assert copy == {"source": "backup", "backup": "2027-01-15-06-00-00-ab12", "created_at": NOW - 7200,
                    "expires_at": NOW - 7200 + 24 * 3600}
    assert describe(copy, NOW) == "copy from production backup 2027-01-15-06-00-00-ab12 (2 h old)"


def test_a_too_old_or_missing_backup_means_a_new_backup_first() -> None:
    old = production(backup={"id": "b-old", "created_at": NOW - 30 * 3600})
    copy = production_copy_source("production", old, NOW, 24 * 3600)
    assert copy is not None and copy["source"] == "new-backup"
    assert "b-old is 30 h old (limit 24 h)" in copy["reason"]
    assert describe(copy, NOW).startswith("a new backup of production will be taken")
    none = production_copy_source("production", production(), NOW, 24 * 3600)
    assert none is not None and none["source"] == "new-backup" and "no verified backup" in none["reason"]
    # 0 = a new backup for every copy, however fresh the last one is.
    fresh = production(backup={"id": "b", "created_at": NOW - 1})
    assert production_copy_source("production", fresh, NOW, 0)["source"] == "new-backup"  # type: ignore[index]


def test_no_statement_when_not_copied_from_a_running_production() -> None:
    prod = production(backup={"id": "b", "created_at": NOW - 60})
    assert production_copy_source("fresh", prod, NOW, 3600) is None
    assert production_copy_source("production", None, NOW, 3600) is None
    assert production_copy_source("production", production(state="failed"), NOW, 3600) is None


def test_ages_read_like_a_person_says_them() -> None:
    assert [describe_age(s) for s in (5, 600, 7200, 5 * 86400, -3)] == ["5 s", "10 min", "2 h", "5 d", "0 s"]


def test_dev_and_preview_copies_say_a_fresh_masked_snapshot_comes_first() -> None:
    prod = production(backup={"id": "b1", "created_at": NOW - 600})
    preview = production_copy_source("production", prod, NOW, 3600, tier="preview")
    assert preview is not None and preview["snapshot"] is True
    assert describe(preview, NOW) == ("production's masked snapshot if a fresh one exists, else: "
                                      "copy from production backup b1 (10 min old)")
    staging = production_copy_source("production", prod, NOW, 3600, tier="staging")
    assert staging is not None and "snapshot" not in staging
