"""Reads of git objects for the layers above the sources: whether a commit is present, a commit's tree, a
blob's id at a path, the addons under a commit's addons paths, a tree written out as files."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import cast

import pygit2
from pygit2.enums import FileMode

from reconciler.errors import OdooOpsError


def is_commit(repo: pygit2.Repository, oid: str) -> bool:
    """True when oid names a commit present in repo."""
    return isinstance(repo.get(oid), pygit2.Commit)


def commit_tree(repo: pygit2.Repository, commit: str) -> str | None:
    """Id of the commit's root tree; None when commit is no commit of repo."""
    obj = repo.get(commit)
    return str(obj.tree_id) if isinstance(obj, pygit2.Commit) else None


def peeled_tree(repo: pygit2.Repository, oid: str) -> str:
    """Id of the tree an object (a commit or a tree) peels to."""
    return str(cast(pygit2.Object, repo.get(oid)).peel(pygit2.Tree).id)


def resolve_commit(repo: pygit2.Repository, rev: str) -> str | None:
    """The commit a revision (an id, a short id, a ref) names; None when it names none."""
    try:
        return str(repo.revparse_single(rev).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


def blob_id(repo: pygit2.Repository, commit: str, path: str) -> str | None:
    """Id of the file at path in commit; None when path is no file there."""
    try:
        entry = cast(pygit2.Object, repo.get(commit)).peel(pygit2.Tree)[path]
    except KeyError:
        return None
    return str(entry.id) if entry.type_str == "blob" else None


def addon_manifests(repo: pygit2.Repository, commit: str, addons_paths: list[str]) -> dict[str, tuple[str, bytes]]:
    """addon name -> (its tree id, its __manifest__.py) for every directory holding a manifest directly under
    one of the addons paths at commit; paths that are missing or no directory are skipped."""
    out: dict[str, tuple[str, bytes]] = {}
    tree = cast(pygit2.Object, repo.get(commit)).peel(pygit2.Tree)
    for path in addons_paths:
        try:
            sub = tree[path.strip("/")] if path.strip("/") else tree
        except KeyError:
            continue
        if not isinstance(sub, pygit2.Tree):
            continue
        for entry in sub:
            if entry.type_str != "tree" or "__manifest__.py" not in cast(pygit2.Tree, entry):
                continue
            manifest = cast(pygit2.Tree, entry)["__manifest__.py"]
            out[cast(str, entry.name)] = (str(entry.id), cast(pygit2.Blob, repo.get(manifest.id)).data)
    return out


def export_tree(repo: pygit2.Repository, tree_id: str, dest: Path) -> int:
    """Write a git tree (or a commit's tree) under dest with git's modes; returns files written.

    Submodules are skipped (external addons are pinned separately); names git itself rejects
    and symlinks leaving the tree are refused, so a hostile repository cannot write elsewhere.
    """
    tree = repo[tree_id].peel(pygit2.Tree)
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    links: list[tuple[Path, PurePosixPath]] = []
    stack: list[tuple[pygit2.Tree, Path, PurePosixPath]] = [(tree, dest, PurePosixPath())]
    while stack:
        current, out, rel = stack.pop()
        for entry in current:
            name = os.fsdecode(cast(bytes, entry.raw_name))
            if name in (".", "..") or name.lower() == ".git" or "/" in name or "\0" in name:
                raise _unsafe(rel / name, "reserved file name")
            target, mode = out / name, entry.filemode
            if mode == FileMode.TREE:
                target.mkdir()
                stack.append((cast(pygit2.Tree, repo[entry.id]), target, rel / name))
            elif mode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
                target.write_bytes(cast(pygit2.Blob, repo[entry.id]).data)
                target.chmod(0o755 if mode == FileMode.BLOB_EXECUTABLE else 0o644)
                written += 1
            elif mode == FileMode.LINK:
                link = os.fsdecode(cast(pygit2.Blob, repo[entry.id]).data)
                if link.startswith("/"):
                    raise _unsafe(rel / name, f"absolute symlink ({link})")
                os.symlink(link, target)
                links.append((target, rel / name))
                written += 1
            # FileMode.COMMIT (a submodule): nothing to export.
    # Checked once every link exists: chains of links (`up -> ..`, `x -> up/../..`) can only
    # be judged by resolving them the way the kernel will.
    root = os.path.realpath(dest)
    for target, rel_path in links:
        real = os.path.realpath(target)
        if real != root and not real.startswith(root + os.sep):
            raise _unsafe(rel_path, f"symlink leaves the tree ({os.readlink(target)})")
    return written


def _unsafe(path: PurePosixPath, why: str) -> OdooOpsError:
    return OdooOpsError("ARTIFACT_UNSAFE_PATH", f"refusing to export {path}: {why}",
                        "fix the repository content; OdooOps exports plain files only",
                        {"path": str(path)})
