"""Reads of git objects (sources/objects.py) on real repositories."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from reconciler.errors import OdooOpsError
from reconciler.sources.objects import (
    addon_manifests,
    blob_id,
    commit_tree,
    export_tree,
    is_commit,
    peeled_tree,
    resolve_commit,
)

BLOB, LINK = pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.LINK


def _commit(repo: pygit2.Repository, files: dict[str, tuple[bytes, int]]) -> str:
    """Commit `path -> (content, filemode)` on HEAD and return the root tree id."""
    index = repo.index
    for path, (data, mode) in files.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), mode))
    tree = index.write_tree()
    sig = pygit2.Signature("t", "t@example.test", 0, 0)
    parents = [] if repo.head_is_unborn else [repo.head.target]
    repo.create_commit("HEAD", sig, sig, "c", tree, parents)
    return str(tree)


@pytest.fixture
def repo(tmp_path: Path) -> pygit2.Repository:
    return pygit2.init_repository(str(tmp_path / "repo"), bare=True)


def test_commits_trees_and_blobs(repo: pygit2.Repository) -> None:
    tree = _commit(repo, {"addons/a/__manifest__.py": (b"{'version': '1.0'}", BLOB), "requirements.txt": (b"x", BLOB)})
    head = str(repo.head.target)
    assert is_commit(repo, head) and not is_commit(repo, tree) and not is_commit(repo, "0" * 40)
    assert commit_tree(repo, head) == tree and commit_tree(repo, tree) is None
    assert peeled_tree(repo, head) == tree == peeled_tree(repo, tree)
    assert resolve_commit(repo, head[:10]) == head == resolve_commit(repo, "HEAD")
    assert resolve_commit(repo, "no-such-ref") is None and resolve_commit(repo, "0" * 40) is None
    assert blob_id(repo, head, "requirements.txt") == str(repo.create_blob(b"x"))
    assert blob_id(repo, head, "addons") is None and blob_id(repo, head, "missing.txt") is None


def test_addon_manifests_lists_directories_with_a_manifest(repo: pygit2.Repository) -> None:
    _commit(repo, {"addons/a/__manifest__.py": (b"{'version': '1.0'}", BLOB), "addons/b/README": (b"no", BLOB),
                   "addons/c.py": (b"", BLOB), "top/__manifest__.py": (b"{}", BLOB)})
    head = str(repo.head.target)
    found = addon_manifests(repo, head, ["addons", "/missing/", "addons/c.py"])
    assert list(found) == ["a"]
    tree, manifest = found["a"]
    assert manifest == b"{'version': '1.0'}"
    assert tree == str(repo.revparse_single(f"{head}:addons/a").id)
    assert list(addon_manifests(repo, head, [""])) == ["top"]


def test_export_tree_refuses_escaping_symlinks(tmp_path: Path, repo: pygit2.Repository) -> None:
    link = pygit2.enums.FileMode.LINK
    cases = [{"m/evil": (b"/etc/passwd", link)}, {"m/evil": (b"../../outside", link)},
             # Each link alone stays inside; resolved together, `esc` climbs out.
             {"m/up": (b"..", link), "m/esc": (b"up/../../x", link)}]
    for i, files in enumerate(cases):
        r = pygit2.init_repository(str(tmp_path / f"r{i}"), bare=True)
        with pytest.raises(OdooOpsError) as err:
            export_tree(r, _commit(r, files), tmp_path / f"out{i}")
        assert err.value.code == "ARTIFACT_UNSAFE_PATH"
    tree = _commit(repo, {"m/ok": (b"../m/x", pygit2.enums.FileMode.LINK)})
    assert export_tree(repo, tree, tmp_path / "fine") == 1
