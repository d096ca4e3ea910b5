"""Content-addressed addons bundles: built once per set of inputs, published atomically, mounted read-only."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.model import canonical_json
from reconciler.errors import OdooOpsError
from reconciler.procs import pid_alive as _pid_alive

FORMAT = 1  # bump when the bundle layout changes: every id changes with it
MANIFEST = "manifest.json"
BUNDLE = "bundle"
_ID = re.compile(r"^[0-9a-f]{64}$")
_OID = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
_REL = re.compile(r"^(?!/)(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9_./-]{1,200}$")
_TMP = re.compile(r"^\.tmp-(?P<pid>[0-9]+)-")


@dataclass(frozen=True)
class ArtifactInputs:
    """Everything that decides a bundle's content, and nothing else (no names, times or paths)."""

    base_image: str  # image id or repo digest: requirements are installed with its Python
    addons: tuple[tuple[str, str], ...] = ()  # (addons path in the repository, git tree id)
    external: tuple[tuple[str, str, str], ...] = ()  # (name, url, pinned commit)
    requirements: str | None = None  # git blob id of the requirements file

    def __post_init__(self) -> None:
        bad = [] if self.base_image else ["base_image"]
        bad += [p for p, t in self.addons if not (_REL.match(p) and _OID.match(t))]
        bad += [n for n, _u, c in self.external if not (re.match(r"^[a-z0-9][a-z0-9_-]{0,62}$", n)
                                                       and _OID.match(c))]
        bad += [self.requirements] if self.requirements and not _OID.match(self.requirements) else []
        if bad:
            raise OdooOpsError("ARTIFACT_BAD_INPUTS", f"invalid artifact inputs: {bad}",
                               "pass git tree/commit/blob ids and relative addons paths")

    def canonical(self) -> dict[str, Any]:
        # Sorted: the bundle's layout does not depend on order (addons_path order lives in odoo.conf).
        return {"format": FORMAT, "base_image": self.base_image,
                "addons": [{"path": p, "tree": t} for p, t in sorted(self.addons)],
                "external": [{"name": n, "url": u, "commit": c} for n, u, c in sorted(self.external)],
                "requirements": self.requirements}

    @property
    def id(self) -> str:
        return hashlib.sha256(canonical_json(self.canonical()).encode("utf-8")).hexdigest()

    def addons_paths(self, mount: str = "/mnt/extra-addons") -> list[str]:
        """Container paths of the conventional layout, in the order given (for `addons_path`)."""
        return ([f"{mount}/repo/{p.strip('/')}" for p, _t in self.addons]
                + [f"{mount}/external/{n}" for n, _u, _c in self.external])


@dataclass(frozen=True)
class Artifact:
    id: str
    path: Path  # the bundle directory to mount read-only at /mnt/extra-addons
    created: bool
    content_digest: str

    @property
    def manifest_path(self) -> Path:
        return self.path.parent / MANIFEST


class ArtifactStore:
    """`root/<id>/{bundle/,manifest.json}`; `root/.tmp-*` are builds in progress or crashed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        # Containers run as an unprivileged user: the store must be traversable by everyone.
        with contextlib.suppress(PermissionError):
            os.chmod(self.root, 0o755)

    def get(self, artifact_id: str) -> Artifact | None:
        if not _ID.match(artifact_id):
            return None
        try:
            manifest = json.loads((self.root / artifact_id / MANIFEST).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if manifest.get("id") != artifact_id:
            return None
        return Artifact(artifact_id, self.root / artifact_id / BUNDLE, False, manifest["content_digest"])

    def ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if _ID.match(p.name))

    def ensure(self, inputs: ArtifactInputs, materialize: Callable[[Path], None]) -> Artifact:
        """The artifact for these inputs; built by `materialize(bundle_dir)` only when missing."""
        aid = inputs.id
        if found := self.get(aid):
            return found
        with self._lock(aid):
            if found := self.get(aid):  # another process built it while we waited
                return found
            self._clean_stale()
            # A directory without a valid manifest is debris (hand-made or a foreign tool's).
            shutil.rmtree(self.root / aid, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=self.root))
            try:
                bundle = tmp / BUNDLE
                bundle.mkdir()
                started = time.monotonic()
                try:
                    materialize(bundle)
                except OdooOpsError:
                    raise
                except Exception as exc:
                    raise OdooOpsError("ARTIFACT_BUILD_FAILED", f"building artifact {aid[:12]} "
                                       f"failed: {type(exc).__name__}: {exc}",
                                       "fix the cause above; the next reconcile retries the build",
                                       {"artifact": aid}) from exc
                normalize_modes(bundle)
                content = content_digest(bundle)
                manifest = {"id": aid, "inputs": inputs.canonical(), "content_digest": content,
                            "build_seconds": round(time.monotonic() - started, 3),
                            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
                os.chmod(tmp, 0o755)
                # Data must be on disk before the rename makes the artifact visible.
                os.sync()
                os.rename(tmp, self.root / aid)
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and (found := self.get(aid)):
                    return found  # lost a race to a builder that held no lock (see gc)
                raise
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return Artifact(aid, self.root / aid / BUNDLE, True, content)

    def verify(self, artifact_id: str) -> bool:
        """Recompute the bundle's content digest and compare it with the manifest."""
        found = self.get(artifact_id)
        return found is not None and content_digest(found.path) == found.content_digest

    def gc(self, keep: set[str]) -> list[str]:
        """Delete artifacts not in `keep` (pass every id a container still mounts) and dead builds."""
        removed: list[str] = []
        for aid in self.ids():
            if aid in keep:
                continue
            with self._lock(aid):
                shutil.rmtree(self.root / aid, ignore_errors=True)
            # Unlinking a lock file someone waits on only risks a duplicate build, which the
            # rename in ensure() resolves; it keeps .locks from growing forever.
            with contextlib.suppress(FileNotFoundError):
                (self.root / ".locks" / f"{aid}.lock").unlink()
            removed.append(aid)
        self._clean_stale()
        return removed

    @contextlib.contextmanager
    def _lock(self, aid: str) -> Iterator[None]:
        fd = os.open(self.root / ".locks" / f"{aid}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
            yield
        finally:
            os.close(fd)

    def _clean_stale(self) -> None:
        """Remove temp dirs whose builder process is gone (a crash mid-build)."""
        for p in self.root.iterdir():
            m = _TMP.match(p.name)
            if m and not _pid_alive(int(m["pid"])):
                shutil.rmtree(p, ignore_errors=True)


def _walk(root: Path) -> Iterator[tuple[bytes, os.DirEntry[str]]]:
    """Every entry below root with its relative path as bytes, never following symlinks."""
    stack = [(b"", str(root))]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as it:
            for entry in it:
                child = rel + b"/" + os.fsencode(entry.name) if rel else os.fsencode(entry.name)
                yield child, entry
                if entry.is_dir(follow_symlinks=False):
                    stack.append((child, entry.path))


def normalize_modes(root: Path) -> None:
    """0755 dirs, 0644/0755 files: umask-independent, and readable by the container's user."""
    for _rel, entry in _walk(root):
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, 0o755)
        else:
            mode = entry.stat(follow_symlinks=False).st_mode
            os.chmod(entry.path, 0o755 if mode & 0o111 else 0o644)
    os.chmod(root, 0o755)


def content_digest(root: Path) -> str:
    """sha256 over sorted (type, mode, relative path, content hash) lines; mtimes and owners ignored."""
    lines: list[bytes] = []
    for rel, entry in _walk(root):
        st = entry.stat(follow_symlinks=False)
        if entry.is_symlink():
            kind, mode, h = b"l", 0o777, hashlib.sha256(os.fsencode(os.readlink(entry.path))).hexdigest()
        elif entry.is_dir(follow_symlinks=False):
            kind, mode, h = b"d", 0o755, ""
        elif entry.is_file(follow_symlinks=False):
            kind, mode, h = b"f", 0o755 if st.st_mode & 0o111 else 0o644, _file_sha256(entry.path)
        else:
            raise OdooOpsError("ARTIFACT_BAD_FILE", f"{rel.decode('utf-8', 'replace')} is not a "
                               "file, directory or symlink", "bundles hold only regular files")
        lines.append(b"%s %o %s\0%s\n" % (kind, mode, rel, h.encode()))
    return hashlib.sha256(b"".join(sorted(lines))).hexdigest()


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
