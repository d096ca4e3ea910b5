"""Copies of production come from its newest verified backup (real PostgreSQL, stand-in Odoo schema):
production keeps its sessions, and the copy holds the backup's data, not what was written since."""

from __future__ import annotations

import shutil
import time
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from reconciler.data.backup import create_backup, is_verified, load_manifest, record_verification
from reconciler.data.backup_check import verify_backup
from reconciler.data.clone import CloneResult, clone_to_scratch
from reconciler.data.context import DataContext
from reconciler.data.production_copy import MAX_AGE_ENV
from reconciler.executors.storage import store_for
from tests.data.conftest import PERSONAL

pytestmark = pytest.mark.integration


def mark_production(ctx: DataContext, env: str) -> None:
    """The state entry a deployed production has (its tier is what makes a source production)."""
    data = ctx.store._read()
    data["environments"].setdefault(env, {"env": env, "branch": "main", "tier": "production", "commit": "0" * 40,
                                          "spec_digest": "", "settings": {}, "state": "running",
                                          "deployed_at": time.time(), "updated_at": time.time()})
    ctx.store._write(data)


def trusted_target(ctx: DataContext, env: str) -> None:
    """These tests check where a copy of production comes from, with its data as it is: only a production-tier
    target may receive production's data unmasked (any other target gets CLONE_MASKING_REQUIRED)."""
    mark_production(ctx, env)


def names(ctx: DataContext, db: str) -> set[str]:
    with ctx.pg.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM res_partner WHERE name IS NOT NULL").fetchall()}


def restored_scratch(ctx: DataContext) -> list[str]:
    return ctx.pg.list_databases("oo_restore_")


def drop(ctx: DataContext, result: CloneResult) -> None:
    ctx.pg.drop(result.db)
    shutil.rmtree(result.filestore, ignore_errors=True)


def test_copy_restores_the_verified_backup_and_production_keeps_its_sessions(
        production: dict[str, Any], pg_conn_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, prod, stage = production["ctx"], production["env"], production["stage"]
    mark_production(ctx, prod)
    trusted_target(ctx, stage)
    monkeypatch.delenv(MAX_AGE_ENV, raising=False)
    backup = create_backup(ctx, prod, reason="scheduled")
    record_verification(ctx, prod, backup.id, verify_backup(ctx, prod, backup.id))
    with psycopg.connect(dbname=prod, autocommit=True, **pg_conn_params) as c:
        c.execute("INSERT INTO res_partner (name) VALUES ('Written after the backup')")
    before = restored_scratch(ctx)
    # A web worker of production, in the middle of a transaction (it holds a lock on res_partner).
    held = psycopg.connect(dbname=prod, application_name="prod-web", **pg_conn_params)
    held.execute("SELECT count(*) FROM res_partner").fetchone()
    pid = held.info.backend_pid
    result = None
    try:
        result = clone_to_scratch(ctx, prod, stage, neutralize=False, mask=False)
        assert held.info.transaction_status == TransactionStatus.INTRANS
        assert held.execute("SELECT 'still here'").fetchone() == ("still here",)
        with ctx.pg.connect() as conn:
            alive = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            allow = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (prod,)).fetchone()
        assert alive == ("idle in transaction",) and allow == (True,)

        assert result.source_backup is not None
        assert result.source_backup["id"] == backup.id and result.source_backup["taken_now"] is False
        assert 0 <= result.source_backup["age_s"] < 600
        copied = names(ctx, result.db)
        assert "Written after the backup" in names(ctx, prod)
        assert "Written after the backup" not in copied and set(PERSONAL["names"]) <= copied
        assert {"restore_backup", "copy_db"} <= set(result.steps) and "backup" not in result.steps
        # The attachments come from the backup, with production's content.
        originals = sorted(p.relative_to(production["filestore"]).as_posix()
                           for p in production["filestore"].rglob("*") if p.is_file())
        assert originals and all((result.filestore / rel).read_bytes()
                                 == (production["filestore"] / rel).read_bytes() for rel in originals)
        # The copy is checked against the backup's data, and that restored reference is gone afterwards.
        assert result.verification["ok"] and result.verification["checks"]["new_identity"]["same_as_source"] == []
        assert restored_scratch(ctx) == before
    finally:
        held.rollback()
        held.close()
        if result is not None:
            drop(ctx, result)


def test_without_a_recent_verified_backup_a_new_one_is_taken_verified_and_reused(
        production: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, prod, stage = production["ctx"], production["env"], production["stage"]
    mark_production(ctx, prod)
    trusted_target(ctx, stage)
    monkeypatch.setenv(MAX_AGE_ENV, "0")  # no backup is recent enough (0: a new backup for every copy)
    unverified = create_backup(ctx, prod, reason="manual")  # newest, but never verified: never a source
    results: list[CloneResult] = []
    try:
        results.append(clone_to_scratch(ctx, prod, stage, neutralize=False, mask=False))
        taken = results[0].source_backup
        assert taken is not None and taken["taken_now"] is True and taken["id"] != unverified.id
        assert taken["reason"] == "production-copy" and "backup" in results[0].steps
        manifest = load_manifest(store_for(ctx.host, ctx.secrets), prod, taken["id"])
        assert is_verified(manifest) and manifest.extra["verification"]["modules"] > 0
        # Production's state entry now names it: the plan reads it from there.
        assert ctx.store.entries()[prod]["verified_backup"]["id"] == taken["id"]

        monkeypatch.setenv(MAX_AGE_ENV, "3600")  # the new one is now the newest verified, recent enough
        results.append(clone_to_scratch(ctx, prod, stage, neutralize=False, mask=False))
        assert results[1].source_backup == {**taken, "taken_now": False,
                                            "age_s": results[1].source_backup["age_s"]}  # type: ignore[index]

        monkeypatch.setenv(MAX_AGE_ENV, "0")
        results.append(clone_to_scratch(ctx, prod, stage, neutralize=False, mask=False))
        third = results[2].source_backup
        assert third is not None and third["taken_now"] is True and third["id"] != taken["id"]
    finally:
        for result in results:
            drop(ctx, result)


def test_a_malformed_age_limit_is_refused_before_anything_is_copied(production: dict[str, Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.errors import OdooOpsError

    ctx, prod, stage = production["ctx"], production["env"], production["stage"]
    mark_production(ctx, prod)
    trusted_target(ctx, stage)
    monkeypatch.setenv(MAX_AGE_ENV, "a day")
    clones = ctx.pg.list_databases("oo_clone_")
    with pytest.raises(OdooOpsError) as err:
        clone_to_scratch(ctx, prod, stage, neutralize=False, mask=False)
    assert err.value.code == "HOST_NOT_CONFIGURED" and MAX_AGE_ENV in err.value.message
    assert ctx.pg.list_databases("oo_clone_") == clones


def test_a_masked_copy_shares_no_file_with_production_or_the_backup_store(
        production: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, prod, stage = production["ctx"], production["env"], production["stage"]
    mark_production(ctx, prod)
    trusted_target(ctx, stage)
    monkeypatch.setenv(MAX_AGE_ENV, "3600")
    result = clone_to_scratch(ctx, prod, stage, neutralize=False, mask=True,
                              rules=[{"table": "x_loyalty_card", "column": "card_no", "kind": "digits"}])
    try:
        assert result.source_backup is not None and result.verification["ok"], result.verification
        source_inodes = {p.stat().st_ino for p in production["filestore"].rglob("*") if p.is_file()}
        copied = [p for p in result.filestore.rglob("*") if p.is_file()]
        assert copied and all(p.stat().st_nlink == 1 and p.stat().st_ino not in source_inodes for p in copied)
    finally:
        drop(ctx, result)
