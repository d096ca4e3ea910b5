"""Object stores: local (atomic, keys confined, disk full) and S3 against a real S3 server (moto)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from reconciler.errors import OdooOpsError
from reconciler.executors.storage import LocalStore, ObjectStore, S3Store, store_for
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore
from tests.data.backup_fixtures import *  # noqa: F403  (fixtures)


def _roundtrip(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3000))
    store.put_file("objects/sha256/ab/abc", src)
    store.put_bytes("backups/prod/1.json", b'{"a": 1}')
    assert store.exists("objects/sha256/ab/abc") and not store.exists("objects/sha256/ab/nope")
    assert store.size("objects/sha256/ab/abc") == 3000
    assert store.list("backups/") == ["backups/prod/1.json"]
    assert store.list() == ["backups/prod/1.json", "objects/sha256/ab/abc"]
    dest = tmp_path / "dest.bin"
    store.get_file("objects/sha256/ab/abc", dest)
    assert dest.read_bytes() == src.read_bytes()
    assert store.get_bytes("backups/prod/1.json") == b'{"a": 1}'
    store.delete("backups/prod/1.json")
    assert store.list("backups/") == []
    with pytest.raises(OdooOpsError) as err:
        store.get_bytes("backups/prod/1.json")
    assert err.value.code == "BACKUP_OBJECT_MISSING"


def test_local_store_roundtrip_and_no_temp_files_left(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    _roundtrip(store, tmp_path)
    assert list((tmp_path / "store" / ".tmp").iterdir()) == []
    assert store.local_path("objects/sha256/ab/abc") == tmp_path / "store/objects/sha256/ab/abc"


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a//b", "", "a/./b", "a\\b"])
def test_local_store_refuses_keys_leaving_the_root(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(OdooOpsError) as err:
        store.put_bytes(key, b"x")
    assert err.value.code == "BACKUP_KEY_INVALID"
    assert not (tmp_path / "x").exists()


def test_local_store_disk_full_keeps_nothing_partial(small_tmpfs: Path, tmp_path: Path) -> None:
    store = LocalStore(small_tmpfs)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))  # 3 MiB into a 2 MiB file system
    with pytest.raises(OdooOpsError) as err:
        store.put_file("objects/sha256/aa/big", big)
    assert err.value.code == "BACKUP_DISK_FULL" and str(small_tmpfs) in err.value.message
    assert store.list() == [] and list((small_tmpfs / ".tmp").iterdir()) == []


def test_s3_store_roundtrip_and_multipart(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    store = S3Store(s3_bucket, "proj/a", s3_endpoint, "us-east-1", ("testing", "testing"),
                    multipart_threshold=5 << 20)
    _roundtrip(store, tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(21 << 20))  # above the threshold: uploaded in parts
    store.put_file("objects/sha256/cd/big", big)
    head = store.client.head_object(Bucket=s3_bucket, Key="proj/a/objects/sha256/cd/big")
    assert head["ContentLength"] == 21 << 20 and "-" in head["ETag"]  # a multipart ETag has "-<parts>"
    back = tmp_path / "back.bin"
    store.get_file("objects/sha256/cd/big", back)
    assert back.read_bytes() == big.read_bytes()


def test_s3_unreachable_endpoint_names_it(closed_port: int) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    store = S3Store("b", "", endpoint, "us-east-1", ("k", "s"), max_attempts=2)
    with pytest.raises(OdooOpsError) as err:
        store.put_bytes("backups/x.json", b"{}")
    assert err.value.code == "BACKUP_STORE_UNREACHABLE"
    assert endpoint in err.value.message and endpoint in err.value.remediation


def test_store_for_reads_keys_from_the_secret_store(tmp_path: Path, services_env: dict[str, str],
                                                    s3_endpoint: str, s3_bucket: str) -> None:
    host = HostSettings.from_env(tmp_path / "state", services_env)
    secrets = SecretStore(tmp_path / "state" / "secrets", tmp_path / "key")
    assert isinstance(store_for(host, secrets), LocalStore)
    host = dataclasses.replace(host, backup_store={"s3": {"bucket": s3_bucket, "endpoint_url": s3_endpoint}})
    with pytest.raises(OdooOpsError) as err:
        store_for(host, secrets)
    assert err.value.code == "BACKUP_STORE_CREDENTIALS_MISSING"
    assert "odooops secrets set s3_access_key_id" in err.value.remediation
    secrets.set("_project", "s3_access_key_id", "testing")
    secrets.set("_project", "s3_secret_access_key", "testing")
    store = store_for(host, secrets)
    store.put_bytes("k", b"v")
    assert store.get_bytes("k") == b"v"
