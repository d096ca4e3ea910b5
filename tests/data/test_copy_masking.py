"""The data path refuses unmasked copies where masking is required (real PostgreSQL and state store)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from reconciler.data.clone import clone_to_scratch
from reconciler.data.context import DataContext
from reconciler.errors import OdooOpsError

pytestmark = pytest.mark.integration


def record(ctx: DataContext, env: str, tier: str, **settings: Any) -> None:
    """The state entry a deployed environment has (tier and settings are what the guard reads)."""
    data = ctx.store._read()
    data["environments"][env] = {"env": env, "branch": env, "tier": tier, "commit": "0" * 40, "spec_digest": "",
                                 "settings": settings, "state": "running", "deployed_at": time.time(),
                                 "updated_at": time.time()}
    ctx.store._write(data)


def clones_of(ctx: DataContext, owner: str) -> list[str]:
    with ctx.pg.connect() as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = %s "
                                           "AND starts_with(datname, 'oo_')", (owner,)).fetchall()]


@pytest.mark.parametrize(("source_tier", "target_tier", "settings"), [
    ("production", "staging", {"mask": True}),  # production's data outside production
    ("production", "dev", {}),
    ("dev", "preview", {"runs_untrusted_code": True}),  # any data where pull-request code runs
])
def test_unmasked_clone_is_refused_before_anything_is_copied(production: dict[str, Any],
                                                              source_tier: str,
                                                              target_tier: str, settings: dict[str, Any]) -> None:
    prod, stage = production["env"], production["stage"]
    ctx = production["ctx"]  # this module's own production: its state entries are this module's to set
    record(ctx, prod, source_tier)
    record(ctx, stage, target_tier, **settings)
    with pytest.raises(OdooOpsError) as err:
        clone_to_scratch(ctx, prod, stage, neutralize=True, mask=False, run_odoo=production["run_stage"])
    assert err.value.code == "CLONE_MASKING_REQUIRED"
    assert f"odooops db clone {prod} {stage}" in err.value.remediation and "--no-mask" in err.value.remediation
    assert clones_of(ctx, stage) == []
    assert not ctx.host.filestore_dir(stage).exists()


def test_unmasked_clone_between_trusted_non_production_envs_is_still_allowed(
        production: dict[str, Any]) -> None:
    prod, stage = production["env"], production["stage"]
    ctx = production["ctx"]  # this module's own production: its state entries are this module's to set
    record(ctx, prod, "dev")
    record(ctx, stage, "staging")
    result = clone_to_scratch(ctx, prod, stage, neutralize=True, mask=False, run_odoo=production["run_stage"])
    try:
        assert result.verification["ok"] and result.verification["masked_columns"] == []
    finally:
        ctx.pg.drop(result.db)
