"""Backups of a real deployed environment: manifest checksums, dedupe, verify, and the faults (disk, S3, corrupt)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from reconciler.data.backup import (
    backup_key,
    create_backup,
    list_backups,
    load_manifest,
    manifest_key,
    part_key,
    read_part,
    reading_key,
    resolve,
    save_manifest,
    sha256_file,
)
from reconciler.data.backup_check import verify_backup
from reconciler.data.context import DataContext
from reconciler.data.restore import restore_to_scratch
from reconciler.errors import OdooOpsError
from reconciler.executors.storage import LocalStore, S3Store, store_for
from tests.data.backup_fixtures import *  # noqa: F403  (fixtures)


def with_store(ctx: DataContext, store: dict[str, Any]) -> DataContext:
    return dataclasses.replace(ctx, host=dataclasses.replace(ctx.host, backup_store=store))


def scratch_dbs(ctx: DataContext) -> set[str]:
    """The databases this module's own operations made (through ctx.pg) that still exist. Not every oo_*
    database of the server: another test's restore, in flight on the shared server, is not ours to count."""
    made: set[str] | None = getattr(ctx.pg, "made_by_tests", None)
    if made is None:
        made = set()
        pg, create, clone, rename = ctx.pg, ctx.pg.create, ctx.pg.clone, ctx.pg.rename

        def recording_create(db: str, owner: str | None = None) -> None:
            made.add(db)
            create(db, owner)

        def recording_clone(src: str, dst: str, *args: Any, **kwargs: Any) -> Any:
            made.add(dst)
            return clone(src, dst, *args, **kwargs)

        def recording_rename(old: str, new: str, *args: Any, **kwargs: Any) -> None:
            made.add(new)
            rename(old, new, *args, **kwargs)

        for name, fn in (("create", recording_create), ("clone", recording_clone), ("rename", recording_rename),
                         ("made_by_tests", made)):
            setattr(pg, name, fn)
    return {d for d in ctx.pg.list_databases("oo_") if d in made}


def test_backup_manifest_checksums_dedupe_list_and_verify(deployed: dict[str, Any]) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    store = store_for(ctx.host, ctx.secrets)
    assert isinstance(store, LocalStore)
    first = create_backup(ctx, env, reason="manual")
    fs_root = ctx.host.filestore_dir(env)
    assert first.files, "the stand-in stores attachments: the backup must hold filestore files"
    assert set(first.files) == {str(p.relative_to(fs_root)) for p in fs_root.rglob("*") if p.is_file()}
    # every part's object exists and decrypts to what the manifest says
    key = reading_key(first)
    dump_obj = store.local_path(part_key(first.dump))
    assert dump_obj is not None and read_part(store, first.dump, lambda _b: None, key) == first.dump["sha256"]
    assert first.dump["size"] == first.sizes["dump"] and dump_obj.stat().st_size == first.dump["stored_size"]
    for rel, f in first.files.items():
        path = store.local_path(part_key(f))
        assert path is not None
        assert read_part(store, f, lambda _b: None, key) == f["sha256"] == sha256_file(fs_root / rel)
    assert first.odoo_version == "19.0" and first.base_version.startswith("19.0.")
    assert "base" in first.modules and first.database_uuid and first.commit and first.tier == "ephemeral"
    assert load_manifest(store, env, first.id).id == first.id

    objects_before = set(store.list("objects/"))
    second = create_backup(ctx, env, reason="schedule")
    new_objects = set(store.list("objects/")) - objects_before
    # unchanged filestore files are stored once: only the (time-stamped) dump is new
    assert new_objects <= {part_key(second.dump)}
    assert second.sizes["new_bytes"] <= second.dump["size"] and second.files == first.files

    assert [m.id for m in list_backups(ctx, env)] == [second.id, first.id]
    # the shortest prefix that tells the two apart resolves to it (the ids differ at least in the suffix)
    cut = next(i for i, (a, b) in enumerate(zip(first.id, second.id, strict=True)) if a != b) + 1
    assert resolve(ctx, env, first.id[:cut]) == first.id and resolve(ctx, env, second.id[:cut]) == second.id
    assert resolve(ctx, env, first.id) == first.id
    with pytest.raises(OdooOpsError) as err:
        resolve(ctx, env, first.id[:4])
    assert err.value.code == "BACKUP_AMBIGUOUS" and first.id in err.value.message
    with pytest.raises(OdooOpsError) as err:
        resolve(ctx, env, "1999-01")
    assert err.value.code == "BACKUP_NOT_FOUND" and second.id in err.value.message

    before = scratch_dbs(ctx)
    report = verify_backup(ctx, env, second.id)
    assert report["ok"] and report["modules"] == len(second.modules) and report["uuid"] == second.database_uuid
    assert report["database"] in ctx.pg.made_by_tests  # the recorder saw it made
    assert scratch_dbs(ctx) == before  # the oo_verify_* database is dropped


def test_truncated_dump_is_corrupt_and_nothing_is_left(deployed: dict[str, Any]) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    store = store_for(ctx.host, ctx.secrets)
    m = create_backup(ctx, env)
    path = store.local_path(part_key(m.dump))
    assert path is not None
    with open(path, "r+b") as fh:
        fh.truncate(m.dump["stored_size"] // 2)
    before = scratch_dbs(ctx)
    for attempt in (lambda: verify_backup(ctx, env, m.id), lambda: restore_to_scratch(ctx, env, m.id, env)):
        with pytest.raises(OdooOpsError) as err:
            attempt()
        assert err.value.code == "BACKUP_CORRUPT" and err.value.details["part"] == "database dump"
        assert part_key(m.dump) in err.value.message and "fails authentication" in err.value.message
    assert scratch_dbs(ctx) == before
    assert not [p for p in ctx.host.filestore_dir(env).parent.iterdir() if p.name.startswith((".oo_", "oo_"))]
    assert ctx.pg.exists(env)


def test_backup_from_another_odoo_version_is_refused(deployed: dict[str, Any]) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    store = store_for(ctx.host, ctx.secrets)
    m = create_backup(ctx, env)
    doc = dict(m.to_json(), odoo_version="17.0", base_version="17.0.1.3")
    save_manifest(store, backup_key(ctx.host, store), env, m.id, doc)
    assert load_manifest(store, env, m.id).odoo_version == "17.0"
    before = scratch_dbs(ctx)
    with pytest.raises(OdooOpsError) as err:
        restore_to_scratch(ctx, env, m.id, env)
    assert err.value.code == "BACKUP_VERSION_MISMATCH"
    assert "17.0" in err.value.message and "19.0" in err.value.message and "odoo_version" in err.value.remediation
    assert scratch_dbs(ctx) == before


def test_disk_full_during_backup_leaves_no_manifest_and_no_objects(deployed: dict[str, Any],
                                                                  small_tmpfs: Path) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    tiny = with_store(ctx, {"local": str(small_tmpfs)})
    # 3 MiB of incompressible rows make the dump larger than the 2 MiB store.
    with ctx.pg.connect(env) as conn:
        conn.execute("CREATE TABLE odooops_test_filler AS SELECT (SELECT decode(string_agg(md5(random()::text "
                     "|| r || g), ''), 'hex') FROM generate_series(1, 64) g) AS b FROM generate_series(1, 3072) r")
    try:
        with pytest.raises(OdooOpsError) as err:
            create_backup(tiny, env)
    finally:
        with ctx.pg.connect(env) as conn:
            conn.execute("DROP TABLE odooops_test_filler")
    assert err.value.code == "BACKUP_DISK_FULL" and str(small_tmpfs) in err.value.message
    store = store_for(tiny.host, tiny.secrets)
    assert store.list() == [] and list_backups(tiny, env) == []
    assert not any((small_tmpfs / ".tmp").iterdir())


def test_s3_unreachable(deployed: dict[str, Any], closed_port: int) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    ctx.secrets.set("_project", "s3_access_key_id", "testing")
    ctx.secrets.set("_project", "s3_secret_access_key", "testing")
    endpoint = f"http://127.0.0.1:{closed_port}"
    s3 = with_store(ctx, {"s3": {"bucket": "backups", "endpoint_url": endpoint}})
    with pytest.raises(OdooOpsError) as err:
        create_backup(s3, env)
    assert err.value.code == "BACKUP_STORE_UNREACHABLE" and endpoint in err.value.message


def test_backup_verify_and_restore_through_s3(deployed: dict[str, Any], s3_endpoint: str, s3_bucket: str) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    ctx.secrets.set("_project", "s3_access_key_id", "testing")
    ctx.secrets.set("_project", "s3_secret_access_key", "testing")
    s3 = with_store(ctx, {"s3": {"bucket": s3_bucket, "prefix": "acme", "endpoint_url": s3_endpoint}})
    store = store_for(s3.host, s3.secrets)
    assert isinstance(store, S3Store)
    m = create_backup(s3, env)
    keys = store.list()
    assert manifest_key(env, m.id) in keys and part_key(m.dump) in keys
    assert all(part_key(f) in keys for f in m.files.values())
    assert [b.id for b in list_backups(s3, env)] == [m.id]
    assert verify_backup(s3, env, m.id)["ok"]
    entry = ctx.entry(env)
    ctx.store.set_state(env, entry["state"], tier="production")  # a production backup into production: no sanitize
    try:
        db, filestore = restore_to_scratch(s3, env, m.id, env)
    finally:
        ctx.store.set_state(env, entry["state"], tier=entry["tier"])
    try:
        with ctx.pg.connect(db) as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'res_partner'").fetchone()
            uuid = conn.execute("SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'").fetchone()
        assert owner == (env,) and uuid == (m.database_uuid,)
        assert {str(p.relative_to(filestore)) for p in filestore.rglob("*") if p.is_file()} == set(m.files)
    finally:
        ctx.pg.drop(db)
        import shutil
        shutil.rmtree(filestore, ignore_errors=True)


def test_flipped_filestore_byte_is_refused(deployed: dict[str, Any]) -> None:
    """Same size, one byte changed: the object's authentication fails before anything is restored."""
    ctx, env = deployed["ctx"], deployed["env"]
    attachment = ctx.host.filestore_dir(env) / "ab" / "odooops-test-attachment"
    attachment.parent.mkdir(parents=True, exist_ok=True)
    attachment.write_bytes(b"invoice scan " * 1000)
    try:
        m = create_backup(ctx, env)
    finally:
        attachment.unlink()
    info = next(v for k, v in m.files.items() if k.endswith("odooops-test-attachment"))
    path = store_for(ctx.host, ctx.secrets).local_path(part_key(info))
    assert path is not None
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    before = scratch_dbs(ctx)
    with pytest.raises(OdooOpsError) as err:
        restore_to_scratch(ctx, env, m.id, env)
    assert err.value.code == "BACKUP_CORRUPT" and part_key(info) in err.value.message
    assert "fails authentication" in err.value.message, err.value.message
    assert scratch_dbs(ctx) == before
    assert not [p for p in ctx.host.filestore_dir(env).parent.iterdir() if p.name.startswith((".oo_", "oo_"))]


def test_disk_full_during_restore_leaves_the_live_data_and_nothing_partial(
        deployed: dict[str, Any], small_tmpfs: Path, s3_endpoint: str, s3_bucket: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """From S3 the dump is downloaded to a temporary directory first: when that fills up, the restore
    fails with a clear error before PostgreSQL is touched, and leaves nothing behind."""
    import tempfile

    ctx, env = deployed["ctx"], deployed["env"]
    ctx.secrets.set("_project", "s3_access_key_id", "testing")
    ctx.secrets.set("_project", "s3_secret_access_key", "testing")
    s3 = with_store(ctx, {"s3": {"bucket": s3_bucket, "prefix": "full", "endpoint_url": s3_endpoint}})
    with ctx.pg.connect(env) as conn:
        conn.execute("CREATE TABLE odooops_test_filler AS SELECT (SELECT decode(string_agg(md5(random()::text "
                     "|| r || g), ''), 'hex') FROM generate_series(1, 64) g) AS b FROM generate_series(1, 3072) r")
    try:
        m = create_backup(s3, env)
    finally:
        with ctx.pg.connect(env) as conn:
            conn.execute("DROP TABLE odooops_test_filler")
    assert m.dump["size"] > 2 * 1024 * 1024  # larger than the 2 MiB temporary directory
    before = scratch_dbs(ctx)
    monkeypatch.setattr(tempfile, "tempdir", str(small_tmpfs))
    for attempt in (lambda: restore_to_scratch(s3, env, m.id, env), lambda: verify_backup(s3, env, m.id)):
        with pytest.raises(OdooOpsError) as err:
            attempt()
        assert err.value.code == "RESTORE_DISK_FULL", err.value.to_dict()
        assert str(small_tmpfs) in err.value.message and "TMPDIR" in err.value.remediation
        assert scratch_dbs(ctx) == before and list(small_tmpfs.iterdir()) == []
    assert not [p for p in ctx.host.filestore_dir(env).parent.iterdir() if p.name.startswith((".oo_", "oo_"))]
    with ctx.pg.connect(env) as conn:  # the live database is untouched
        assert conn.execute("SELECT count(*) FROM ir_module_module WHERE state = 'installed'").fetchone()[0] > 0
