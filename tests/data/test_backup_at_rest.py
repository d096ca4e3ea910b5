"""Backups at rest: the store holds only ciphertext (AES-256-GCM, streamed), a changed byte is refused before
anything is restored, local objects are 0600 in 0700 directories and never hardlinked into a filestore, a
wrong key is named, and backups from before encryption still restore."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.data.backup import (
    REFUSE_PLAIN_ENV,
    create_backup,
    list_backups,
    load_manifest,
    manifest_key,
    object_key,
    part_key,
    read_part,
    reading_key,
)
from reconciler.data.backup_check import verify_backup
from reconciler.data.backup_crypto import MAGIC, BackupKey, SealBroken, SealKeyMismatch, unseal
from reconciler.data.context import DataContext
from reconciler.data.restore import restore_to_scratch
from reconciler.errors import OdooOpsError
from reconciler.executors.storage import LocalStore, ObjectStore, S3Store, store_for
from tests.data.backup_fixtures import *  # noqa: F403  (fixtures)

SECRET_TEXT = b"odooops-at-rest-marker: invoice of ACME Corp, IBAN DE89370400440532013000"


def with_store(ctx: DataContext, store: dict[str, Any]) -> DataContext:
    return dataclasses.replace(ctx, host=dataclasses.replace(ctx.host, backup_store=store))


def scratch_dbs(ctx: DataContext) -> set[str]:
    return {d for d in ctx.pg.list_databases("oo_") if d.startswith(("oo_restore_", "oo_verify_", "oo_old_"))}


@pytest.fixture()
def attachment(deployed: dict[str, Any]) -> Iterator[Path]:
    """A filestore file with a recognisable text, removed afterwards."""
    path = deployed["ctx"].host.filestore_dir(deployed["env"]) / "at" / f"rest-{os.getpid()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SECRET_TEXT * 50)
    yield path
    path.unlink(missing_ok=True)


def _production(ctx: DataContext, env: str) -> Any:
    """Restoring an environment's own backup into it as production: no neutralization step (stand-in Odoo)."""
    entry = ctx.entry(env)
    ctx.store.set_state(env, entry["state"], tier="production")
    return entry


def _assert_only_ciphertext(store: ObjectStore, env: str, m: Any) -> None:
    keys = store.list()
    assert manifest_key(env, m.id) in keys and part_key(m.dump) in keys
    assert all(k.startswith(("backups/", "objects/aes256gcm/")) for k in keys), keys
    for k in keys:
        data = store.get_bytes(k)
        assert data.startswith(MAGIC), k
        for plain in (b"PGDMP", b"res_partner", b"ir_module_module", b"odooops-at-rest-marker",
                      m.database_uuid.encode(), b'"modules"'):
            assert plain not in data, (k, plain)
    # object names are keyed: the store does not tell which known content (by SHA-256) it holds
    assert not any(f["sha256"] in " ".join(keys) for f in [m.dump, *m.files.values()])


def test_local_store_holds_ciphertext_with_private_modes(deployed: dict[str, Any], attachment: Path,
                                                         tmp_path: Path) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    local = with_store(ctx, {"local": str(tmp_path / "store")})
    m = create_backup(local, env)
    store = store_for(local.host, local.secrets)
    assert isinstance(store, LocalStore)
    assert m.extra["encryption"]["scheme"].startswith("aes-256-gcm") and m.dump["sealed"]
    _assert_only_ciphertext(store, env, m)
    root = tmp_path / "store"
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    key_file = Path(os.environ["ODOOOPS_BACKUP_KEY_FILE"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and not key_file.is_relative_to(root)

    entry = _production(local, env)
    try:
        db, filestore = restore_to_scratch(local, env, m.id, env)
    finally:
        ctx.store.set_state(env, entry["state"], tier=entry["tier"])
    try:
        restored = filestore / attachment.relative_to(ctx.host.filestore_dir(env))
        assert restored.read_bytes() == attachment.read_bytes()
        with ctx.pg.connect(db) as conn:
            uuid = conn.execute("SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'").fetchone()
        assert uuid == (m.database_uuid,)
        # the filestore got copies: the store's objects share no inode with it and kept their mode
        objects = [p for p in (root / "objects").rglob("*") if p.is_file()]
        assert all(p.stat().st_nlink == 1 and stat.S_IMODE(p.stat().st_mode) == 0o600 for p in objects)
    finally:
        ctx.pg.drop(db)
        shutil.rmtree(filestore, ignore_errors=True)


def test_s3_round_trip_and_a_flipped_byte_is_refused(deployed: dict[str, Any], attachment: Path,
                                                     s3_endpoint: str, s3_bucket: str) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    ctx.secrets.set("_project", "s3_access_key_id", "testing")
    ctx.secrets.set("_project", "s3_secret_access_key", "testing")
    s3 = with_store(ctx, {"s3": {"bucket": s3_bucket, "prefix": "enc", "endpoint_url": s3_endpoint}})
    store = store_for(s3.host, s3.secrets)
    assert isinstance(store, S3Store)
    m = create_backup(s3, env)
    _assert_only_ciphertext(store, env, m)
    assert [b.id for b in list_backups(s3, env)] == [m.id]
    assert verify_backup(s3, env, m.id)["ok"]  # a full round trip: decrypted, restored, checked, dropped

    blob = bytearray(store.get_bytes(part_key(m.dump)))
    blob[len(blob) // 2] ^= 0x01
    store.put_bytes(part_key(m.dump), bytes(blob))
    before = scratch_dbs(ctx)
    entry = _production(s3, env)
    try:
        for attempt in (lambda: restore_to_scratch(s3, env, m.id, env), lambda: verify_backup(s3, env, m.id)):
            with pytest.raises(OdooOpsError) as err:
                attempt()
            assert err.value.code == "BACKUP_CORRUPT" and err.value.details["part"] == "database dump"
            assert "fails authentication" in err.value.message and part_key(m.dump) in err.value.message
    finally:
        ctx.store.set_state(env, entry["state"], tier=entry["tier"])
    assert scratch_dbs(ctx) == before
    assert not [p for p in ctx.host.filestore_dir(env).parent.iterdir() if p.name.startswith((".oo_", "oo_"))]


def test_wrong_key_is_named_and_key_inside_the_store_is_refused(deployed: dict[str, Any], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    local = with_store(ctx, {"local": str(tmp_path / "store")})
    m = create_backup(local, env)
    right = BackupKey.from_file(Path(os.environ["ODOOOPS_BACKUP_KEY_FILE"]), create=False)
    monkeypatch.setenv("ODOOOPS_BACKUP_KEY_FILE", str(tmp_path / "other" / "backup.key"))
    other = BackupKey.from_file(tmp_path / "other" / "backup.key", create=True)
    with pytest.raises(OdooOpsError) as err:
        restore_to_scratch(local, env, m.id, env)
    assert err.value.code == "BACKUP_KEY_MISMATCH" and right.id in err.value.message and other.id in err.value.message
    assert "ODOOOPS_BACKUP_KEY_FILE" in err.value.remediation
    monkeypatch.setenv("ODOOOPS_BACKUP_KEY_FILE", str(tmp_path / "store" / "backup.key"))
    with pytest.raises(OdooOpsError) as err:
        create_backup(local, env)
    assert err.value.code == "BACKUP_KEY_INSIDE_PROTECTED_DIR"
    assert not (tmp_path / "store" / "backup.key").exists()


def _to_legacy(store: ObjectStore, env: str, m: Any, legacy_id: str) -> None:
    """Rewrite backup m as a backup from before encryption: plain objects under objects/sha256/, a JSON manifest."""
    key = reading_key(m)
    doc = m.to_json()
    doc.pop("encryption")
    doc["id"] = legacy_id
    for part in [doc["dump"], *doc["files"].values()]:
        buf = io.BytesIO()
        read_part(store, part, buf.write, key)
        for name in ("object", "sealed", "stored_size"):
            part.pop(name, None)
        store.put_bytes(object_key(part["sha256"]), buf.getvalue())
    doc["dump"]["key"] = object_key(doc["dump"]["sha256"])
    store.put_bytes(manifest_key(env, legacy_id), json.dumps(doc, indent=1).encode())


def test_backups_from_before_encryption_still_restore(deployed: dict[str, Any], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, env = deployed["ctx"], deployed["env"]
    local = with_store(ctx, {"local": str(tmp_path / "store")})
    store = store_for(local.host, local.secrets)
    m = create_backup(local, env)
    legacy_id = m.id[:-4] + "0000"
    _to_legacy(store, env, m, legacy_id)
    legacy = load_manifest(store, env, legacy_id)
    assert not legacy.sealed and part_key(legacy.dump) == object_key(legacy.dump["sha256"])
    assert store.get_bytes(part_key(legacy.dump)).startswith(b"PGDMP")  # really the old, plain format
    assert verify_backup(local, env, legacy_id)["ok"]
    entry = _production(local, env)
    try:
        db, filestore = restore_to_scratch(local, env, legacy_id, env)
        ctx.pg.drop(db)
        shutil.rmtree(filestore, ignore_errors=True)
        monkeypatch.setenv(REFUSE_PLAIN_ENV, "1")
        with pytest.raises(OdooOpsError) as err:
            restore_to_scratch(local, env, legacy_id, env)
        assert err.value.code == "BACKUP_UNENCRYPTED_REFUSED" and REFUSE_PLAIN_ENV in err.value.remediation
    finally:
        ctx.store.set_state(env, entry["state"], tier=entry["tier"])


# -- the sealed stream itself (no services) ---------------------------------------------------------------


def _seal(key: BackupKey, data: bytes, context: bytes = b"ctx", chunk: int = 64) -> bytes:
    out = io.BytesIO()
    writer = key.sealer(out, context, chunk)
    for i in range(0, len(data), 10):  # written in pieces that do not line up with chunks
        writer.write(data[i:i + 10])
    writer.close()
    return out.getvalue()


def _open(key: BackupKey, blob: bytes, context: bytes = b"ctx") -> bytes:
    out = io.BytesIO()
    unseal(key, io.BytesIO(blob).read, out.write, context)
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 1000])
def test_sealed_stream_round_trip(tmp_path: Path, size: int) -> None:
    key = BackupKey.from_file(tmp_path / "k", create=True)
    data = os.urandom(size)
    blob = _seal(key, data)
    assert _open(key, blob) == data
    assert size < 16 or data not in blob[43:]  # (a few random bytes may occur in any ciphertext by chance)
    assert _seal(key, data) != blob  # a fresh salt and nonce prefix per object


def test_sealed_stream_refuses_changes(tmp_path: Path) -> None:
    key = BackupKey.from_file(tmp_path / "k", create=True)
    data = os.urandom(200)  # 4 chunks of 64: 3 full + 8 bytes
    blob = _seal(key, data)
    chunk = 64 + 16
    cases = {
        "flipped byte": blob[:100] + bytes([blob[100] ^ 1]) + blob[101:],
        "cut at a chunk boundary": blob[:43 + 2 * chunk],
        "cut inside a chunk": blob[:-5],
        "chunks swapped": blob[:43] + blob[43 + chunk:43 + 2 * chunk] + blob[43:43 + chunk] + blob[43 + 2 * chunk:],
        "header only": blob[:43],
        "plain data": data,
    }
    for name, broken in cases.items():
        with pytest.raises(SealBroken):
            _open(key, broken)
        assert name
    with pytest.raises(SealBroken):  # another object's context (a manifest moved to another backup's name)
        _open(key, blob, b"other")
    with pytest.raises(SealKeyMismatch):
        _open(BackupKey.from_file(tmp_path / "k2", create=True), blob)
