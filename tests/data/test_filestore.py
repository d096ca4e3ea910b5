"""link_tree on real filesystems: hardlinks on one device, copies across devices, atomic on failure."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.data.filestore import link_tree, replace_file, shared_bytes
from reconciler.errors import OdooOpsError
from tests.data import backup_fixtures

tiny_tmpfs = backup_fixtures.small_tmpfs  # a 2 MiB tmpfs, reused from the backup tests


def make_filestore(root: Path, files: int = 12, size: int = 3000) -> dict[str, bytes]:
    """An Odoo-like filestore: <2 hex>/<40 hex> files owned by uid 101 (the image's odoo user)."""
    contents: dict[str, bytes] = {}
    root.mkdir(parents=True)
    for i in range(files):
        data = os.urandom(size + i)
        rel = f"{i % 4:02x}/{uuid.uuid4().hex}{i:08x}"
        path = root / rel
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        os.chown(path, 101, 101)
        os.chmod(path, 0o640)
        contents[rel] = data
    for d in root.iterdir():
        os.chown(d, 101, 101)
        os.chmod(d, 0o750)
    (root / "latest").symlink_to("00")
    os.chown(root, 101, 101)
    return contents


@pytest.fixture()
def shm_dir() -> Iterator[Path]:
    """A directory on /dev/shm (another device than the test's tmp_path): hardlinks across are impossible."""
    path = Path("/dev/shm") / f"odooops-fs-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _same_tree(src: Path, dst: Path, contents: dict[str, bytes]) -> None:
    for rel, data in contents.items():
        assert (dst / rel).read_bytes() == data
        s, d = (src / rel).stat(), (dst / rel).stat()
        assert (d.st_uid, d.st_gid, d.st_mode) == (s.st_uid, s.st_gid, s.st_mode) == (101, 101, d.st_mode)
        assert d.st_mode & 0o777 == 0o640
    for sub in (p for p in src.iterdir() if p.is_dir() and not p.is_symlink()):
        assert (dst / sub.name).stat().st_mode & 0o777 == 0o750 and (dst / sub.name).stat().st_uid == 101
    assert os.readlink(dst / "latest") == "00"
    assert dst.stat().st_uid == 101


def test_link_tree_hardlinks_on_one_filesystem(tmp_path: Path) -> None:
    src = tmp_path / "filestore" / "prod" / "filestore" / "prod"
    contents = make_filestore(src)
    dst = tmp_path / "filestore" / "stage" / "filestore" / "oo_clone_1"
    stats = link_tree(src, dst)
    _same_tree(src, dst, contents)
    assert stats.files == len(contents) and stats.bytes == sum(len(v) for v in contents.values())
    # ext4 here cannot reflink, so every file is a hardlink: the same inode.
    assert stats.reflinked + stats.linked == stats.files and stats.copied == 0
    if stats.linked:
        rel = next(iter(contents))
        assert (src / rel).stat().st_ino == (dst / rel).stat().st_ino
    assert [p.name for p in dst.parent.iterdir()] == ["oo_clone_1"]  # no temp directory left
    with pytest.raises(OdooOpsError) as exists:
        link_tree(src, dst)
    assert exists.value.code == "FILESTORE_TARGET_EXISTS" and str(dst) in exists.value.message


def test_link_tree_copies_across_devices(shm_dir: Path, tmp_path: Path) -> None:
    src = shm_dir / "prod"
    contents = make_filestore(src)
    dst = tmp_path / "copy"
    stats = link_tree(src, dst)
    assert stats.copied == stats.files == len(contents) and stats.linked == 0
    _same_tree(src, dst, contents)
    assert (src / next(iter(contents))).stat().st_ino != (dst / next(iter(contents))).stat().st_ino


def test_link_tree_of_missing_source_is_empty(tmp_path: Path) -> None:
    stats = link_tree(tmp_path / "never-written", tmp_path / "new")
    assert stats.files == 0 and list((tmp_path / "new").iterdir()) == []


def test_link_tree_disk_full_leaves_nothing(shm_dir: Path, tiny_tmpfs: Path) -> None:
    src = shm_dir / "prod"
    make_filestore(src, files=6, size=600_000)  # ~3.6 MB into a 2 MiB filesystem
    dst = tiny_tmpfs / "copy"
    with pytest.raises(OdooOpsError) as full:
        link_tree(src, dst)
    assert full.value.code == "FILESTORE_COPY_FAILED" and "No space left" in full.value.message
    assert list(tiny_tmpfs.iterdir()) == []


def test_shared_bytes_and_replace_file(tmp_path: Path) -> None:
    prod = tmp_path / "prod"
    contents = make_filestore(prod)
    clones = [tmp_path / f"clone{i}" for i in range(3)]
    for c in clones:
        link_tree(prod, c)
    total = sum(len(v) for v in contents.values())
    before = shared_bytes([prod, *clones])
    assert before.logical_bytes == 4 * total and before.physical_bytes == total
    assert before.shared_fraction == 1.0 and before.saved_fraction == 0.75
    # Replacing a file in one clone must not change it anywhere else (never write through a link).
    rel = next(iter(contents))
    replace_file(clones[0] / rel, b"masked")
    assert (clones[0] / rel).read_bytes() == b"masked"
    assert (clones[0] / rel).stat().st_uid == 101 and (clones[0] / rel).stat().st_mode & 0o777 == 0o640
    assert all((t / rel).read_bytes() == contents[rel] for t in (prod, clones[1], clones[2]))
    after = shared_bytes([prod, *clones])
    assert after.shared_bytes == before.shared_bytes - len(contents[rel])
    assert after.physical_bytes == total + len(b"masked")
