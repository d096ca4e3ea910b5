"""Filestore copies that share bytes: reflink where the filesystem can, else hardlink, else a plain copy."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import OdooOpsError

FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
# Errors meaning "this way of sharing does not work here", not "something is broken".
_REFLINK_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM}
_LINK_UNSUPPORTED = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


@dataclass
class LinkStats:
    """What link_tree did: every regular file is counted once in exactly one of the three ways."""

    files: int = 0
    bytes: int = 0
    linked: int = 0
    copied: int = 0
    reflinked: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes, "linked": self.linked, "copied": self.copied,
                "reflinked": self.reflinked}


@dataclass
class _Mode:
    reflink: bool = True
    hardlink: bool = True


def link_tree(src: Path, dst: Path, *, hardlink: bool = True) -> LinkStats:
    """Make `dst` a copy of `src` sharing file contents; `dst` must not exist and appears whole or not at all.

    Odoo never rewrites a filestore file in place (names are content hashes), so hardlinks are safe;
    code that replaces a file in a copy must unlink it first (see replace_file). `hardlink=False` (masked
    copies) shares no inode with the source: reflinks where the filesystem can, else plain copies."""
    if dst.exists() or dst.is_symlink():
        raise OdooOpsError("FILESTORE_TARGET_EXISTS", f"the filestore directory {dst} already exists",
                           f"remove it first (rm -rf {dst}) or choose another database name", {"path": str(dst)})
    created_parent = not dst.parent.exists()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if created_parent and src.parent.is_dir():
        # Odoo (uid 101 in the official image) creates per-database directories here.
        st = src.parent.stat()
        os.chown(dst.parent, st.st_uid, st.st_gid)
        os.chmod(dst.parent, st.st_mode & 0o7777)
    tmp = dst.parent / f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}"
    stats, mode = LinkStats(), _Mode(hardlink=hardlink)
    try:
        if src.is_dir():
            _copy_dir(src, tmp, stats, mode)
        else:
            # An environment that never stored an attachment has no filestore yet: an empty one is right.
            tmp.mkdir(mode=0o700)
        os.rename(tmp, dst)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OdooOpsError("FILESTORE_COPY_FAILED", f"cannot copy the filestore {src} to {dst}: {exc}",
                           f"free disk space or fix permissions under {dst.parent}, then retry",
                           {"source": str(src), "target": str(dst)}) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _copy_dir(src: Path, dst: Path, stats: LinkStats, mode: _Mode) -> None:
    st = src.stat()
    os.mkdir(dst, 0o700)
    with os.scandir(src) as entries:
        for entry in entries:
            target = dst / entry.name
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
                lst = entry.stat(follow_symlinks=False)
                os.lchown(target, lst.st_uid, lst.st_gid)
            elif entry.is_dir(follow_symlinks=False):
                _copy_dir(Path(entry.path), target, stats, mode)
            elif entry.is_file(follow_symlinks=False):
                _copy_file(Path(entry.path), target, entry.stat(follow_symlinks=False), stats, mode)
    # Owner and mode last: a read-only source directory must not stop us filling the copy.
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, st.st_mode & 0o7777)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_file(src: Path, dst: Path, st: os.stat_result, stats: LinkStats, mode: _Mode) -> None:
    stats.files += 1
    stats.bytes += st.st_size
    if mode.reflink and _reflink(src, dst, st, mode):
        stats.reflinked += 1
        return
    if mode.hardlink:
        try:
            os.link(src, dst)  # same inode: owner, mode and times come along
            stats.linked += 1
            return
        except OSError as exc:
            if exc.errno not in _LINK_UNSUPPORTED:
                raise
            mode.hardlink = False  # e.g. another filesystem: no point trying for every file
    shutil.copyfile(src, dst)
    _same_attrs(dst, st)
    stats.copied += 1


def _reflink(src: Path, dst: Path, st: os.stat_result, mode: _Mode) -> bool:
    with open(src, "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.ioctl(fd, FICLONE, fin.fileno())
        except OSError as exc:
            os.close(fd)
            os.unlink(dst)
            if exc.errno not in _REFLINK_UNSUPPORTED:
                raise
            mode.reflink = False  # the filesystem cannot: stop trying for the rest of the tree
            return False
        os.close(fd)
    _same_attrs(dst, st)
    return True


def _same_attrs(path: Path, st: os.stat_result) -> None:
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, st.st_mode & 0o7777)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def replace_file(path: Path, data: bytes) -> None:
    """Give `path` new contents without touching other links to its inode (write aside, then rename)."""
    st = path.stat()
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.rename(tmp, path)  # replaces the directory entry; the old inode lives on in the other trees
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SharedBytes:
    """Bytes of several trees as seen by inode: how much storage the copies really share."""

    trees: int
    files: int
    logical_bytes: int  # the sum of every file of every tree, as `du --apparent-size` per tree adds up
    physical_bytes: int  # each inode counted once
    shared_bytes: int  # logical bytes of files whose inode also appears in another tree

    @property
    def shared_fraction(self) -> float:
        return self.shared_bytes / self.logical_bytes if self.logical_bytes else 0.0

    @property
    def saved_fraction(self) -> float:
        return 1 - self.physical_bytes / self.logical_bytes if self.logical_bytes else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"trees": self.trees, "files": self.files, "logical_bytes": self.logical_bytes,
                "physical_bytes": self.physical_bytes, "shared_bytes": self.shared_bytes,
                "shared_fraction": round(self.shared_fraction, 4), "saved_fraction": round(self.saved_fraction, 4)}


def shared_bytes(trees: Iterable[Path]) -> SharedBytes:
    """Measure sharing between trees by (device, inode); reflinked copies have their own inodes and
    are not seen as shared here (their sharing is at the extent level)."""
    seen: dict[tuple[int, int], tuple[int, set[int]]] = {}
    per_file: list[tuple[tuple[int, int], int]] = []
    count = 0
    for index, root in enumerate(trees):
        count += 1
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                if not stat.S_ISREG(st.st_mode):
                    continue
                key = (st.st_dev, st.st_ino)
                seen.setdefault(key, (st.st_size, set()))[1].add(index)
                per_file.append((key, st.st_size))
    logical = sum(size for _key, size in per_file)
    physical = sum(size for size, _where in seen.values())
    shared = sum(size for key, size in per_file if len(seen[key][1]) > 1)
    return SharedBytes(count, len(per_file), logical, physical, shared)
