"""Restore and swap on a real deployed environment: data comes back, health holds, production needs --confirm."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from reconciler.data.backup import create_backup, list_backups, part_key, prune
from reconciler.data.restore import restore, restore_to_scratch
from reconciler.errors import OdooOpsError
from reconciler.executors.storage import store_for
from tests.data.backup_fixtures import *  # noqa: F403  (fixtures)

MARKER = "odooops.test.marker"


@pytest.fixture()
def as_production(deployed: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The deployed env's state entry says production (its own backup restores without sanitizing)."""
    ctx, env = deployed["ctx"], deployed["env"]
    entry = ctx.entry(env)
    ctx.store.set_state(env, entry["state"], tier="production")
    try:
        yield deployed
    finally:
        ctx.store.set_state(env, ctx.entry(env)["state"], tier=entry["tier"])


def _marker(ctx: Any, env: str) -> str | None:
    with ctx.pg.connect(env) as conn:
        row = conn.execute("SELECT value FROM ir_config_parameter WHERE key = %s", (MARKER,)).fetchone()
    return row[0] if row else None


def _set_marker(ctx: Any, env: str, value: str | None) -> None:
    with ctx.pg.connect(env) as conn:
        conn.execute("DELETE FROM ir_config_parameter WHERE key = %s", (MARKER,))
        if value is not None:
            conn.execute("INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s)", (MARKER, value))


def _scratch(ctx: Any, env: str) -> set[str]:
    """The scratch databases of `env` (its role owns them): other tests restore into their own environments
    on the same server at the same time, so the cluster's whole list is not this test's to compare."""
    return {d for d, owner in ctx.pg.database_owners("oo_").items()
            if owner == env and d.startswith(("oo_restore_", "oo_old_", "oo_verify_"))}


def _health(ctx: Any, env: str) -> int:
    domain = ctx.entry(env)["settings"]["domains"][0]
    return httpx.get(f"{ctx.host.router_http}/web/health", headers={"Host": domain}, timeout=10).status_code


def test_production_restore_without_confirm_is_refused_and_changes_nothing(as_production: dict[str, Any]) -> None:
    ctx, env = as_production["ctx"], as_production["env"]
    m = create_backup(ctx, env)
    _set_marker(ctx, env, "after-backup")
    web = ctx.runtime.observe_env(env).container("web")
    before = _scratch(ctx, env)
    with pytest.raises(OdooOpsError) as err:
        restore(ctx, env, m.id)
    assert err.value.code == "RESTORE_NEEDS_CONFIRMATION"
    assert f"odooops db restore {env} --backup {m.id} --confirm" in err.value.remediation
    assert _marker(ctx, env) == "after-backup" and _scratch(ctx, env) == before
    after = ctx.runtime.observe_env(env).container("web")
    assert web is not None and after is not None and after.id == web.id and after.running


def test_restore_swaps_the_backup_in_and_the_env_keeps_serving(as_production: dict[str, Any]) -> None:
    ctx, env = as_production["ctx"], as_production["env"]
    fs = ctx.host.filestore_dir(env)
    _set_marker(ctx, env, "before-backup")
    m = create_backup(ctx, env, reason="pre-restore test")
    # after the backup: data deleted, one attachment file gone
    _set_marker(ctx, env, None)
    victim = sorted(m.files)[0]
    (fs / victim).unlink()
    before = _scratch(ctx, env)
    result = restore(ctx, env, m.id, confirm=True)
    assert result["swapped"] and result["backup"] == m.id and result["dropped_old"].startswith("oo_old_")
    assert set(result["phases"]) >= {"restore_to_scratch", "stop", "rename_database", "rename_filestore",
                                     "start", "health", "drop_old"}
    assert _marker(ctx, env) == "before-backup"
    assert (fs / victim).is_file()
    assert _health(ctx, env) == 200
    assert _scratch(ctx, env) == before  # the old copy was dropped after the health check passed
    assert not [p for p in fs.parent.iterdir() if p.name != env]


def test_prune_keeps_the_newest_and_sweeps_unreferenced_objects(deployed: dict[str, Any]) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    store = store_for(ctx.host, ctx.secrets)
    create_backup(ctx, env)
    newest = create_backup(ctx, env)
    all_ids = [b.id for b in list_backups(ctx, env)]
    pruned = prune(ctx, env, datetime.now(UTC) + timedelta(days=30), {"days": 7})
    assert set(pruned) == set(all_ids) - {newest.id}
    assert [b.id for b in list_backups(ctx, env)] == [newest.id]
    # exactly the newest manifest's objects remain
    assert set(store.list("objects/")) == newest.object_keys()
    assert part_key(newest.dump) in store.list("objects/")


def test_restore_into_a_non_production_env_is_neutralized(deployed: dict[str, Any]) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    m = create_backup(ctx, env)
    db, filestore = restore_to_scratch(ctx, env, m.id, env)  # ephemeral tier: the copy must be neutralized
    try:
        with ctx.pg.connect(db) as conn:
            row = conn.execute("SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
                               ).fetchone()
            uuid = conn.execute("SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'").fetchone()
        assert row is not None and row[0].lower() == "true"
        assert uuid is not None and uuid[0] != m.database_uuid  # a copy gets a new identity
    finally:
        ctx.pg.drop(db)
        shutil.rmtree(filestore, ignore_errors=True)

