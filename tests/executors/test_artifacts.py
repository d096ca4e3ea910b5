"""ArtifactStore on a real filesystem, bundles exported from a real git repository."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pygit2
import pytest

from reconciler.errors import OdooOpsError
from reconciler.executors.artifacts import (
    ArtifactInputs,
    ArtifactStore,
    content_digest,
)
from reconciler.sources.objects import export_tree

BASE = "sha256:" + "ab" * 32
TREE_A, TREE_B = "1" * 40, "2" * 40


def _commit(repo: pygit2.Repository, files: dict[str, tuple[bytes, int]]) -> str:
    """Commit `path -> (content, filemode)` and return the root tree id."""
    index = repo.index
    for path, (data, mode) in files.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), mode))
    tree = index.write_tree()
    sig = pygit2.Signature("t", "t@example.test", 0, 0)
    repo.create_commit("HEAD", sig, sig, "c", tree, [])
    return str(tree)


@pytest.fixture
def repo(tmp_path: Path) -> pygit2.Repository:
    return pygit2.init_repository(str(tmp_path / "repo"), bare=True)


def test_artifact_ids_depend_on_inputs_only() -> None:
    a = ArtifactInputs(BASE, (("addons", TREE_A), ("oca", TREE_B)),
                       (("web", "https://example.test/web.git", "3" * 40),), "4" * 40)
    same = ArtifactInputs(BASE, (("oca", TREE_B), ("addons", TREE_A)),
                          (("web", "https://example.test/web.git", "3" * 40),), "4" * 40)
    assert a.id == same.id and len(a.id) == 64
    # Pinned: changing the canonical form silently would orphan every stored artifact.
    assert ArtifactInputs(BASE, (("addons", TREE_A),)).id == (
        "a74bead76846e0363e4c95925fc5f3b8a14d31156f8534652af689f276e663ac")
    variants = [
        ArtifactInputs(BASE, (("addons", TREE_B), ("oca", TREE_B)), a.external, a.requirements),
        ArtifactInputs("sha256:" + "cd" * 32, a.addons, a.external, a.requirements),
        ArtifactInputs(BASE, a.addons, (("web", "https://example.test/web.git", "5" * 40),),
                       a.requirements),
        ArtifactInputs(BASE, a.addons, a.external, None),
    ]
    assert len({v.id for v in variants} | {a.id}) == len(variants) + 1
    assert a.addons_paths() == ["/mnt/extra-addons/repo/addons", "/mnt/extra-addons/repo/oca",
                                "/mnt/extra-addons/external/web"]
    with pytest.raises(OdooOpsError):
        ArtifactInputs(BASE, (("../escape", TREE_A),))
    with pytest.raises(OdooOpsError):
        ArtifactInputs(BASE, (("addons", "not-a-tree"),))


def test_same_inputs_build_once_and_digest_is_reproducible(
        tmp_path: Path, repo: pygit2.Repository) -> None:
    tree = _commit(repo, {
        "demo/__manifest__.py": (b"{'name': 'Demo'}\n", pygit2.enums.FileMode.BLOB),
        "demo/bin/tool.sh": (b"#!/bin/sh\necho hi\n", pygit2.enums.FileMode.BLOB_EXECUTABLE),
        "demo/link.py": (b"__manifest__.py", pygit2.enums.FileMode.LINK),
    })
    inputs = ArtifactInputs(BASE, (("addons", tree),))
    builds: list[Path] = []

    def materialize(bundle: Path) -> None:
        builds.append(bundle)
        export_tree(repo, tree, bundle / "repo" / "addons")

    store = ArtifactStore(tmp_path / "store")
    first = store.ensure(inputs, materialize)
    again = store.ensure(inputs, materialize)
    assert first.created and not again.created and len(builds) == 1
    assert first.id == again.id == inputs.id and first.path == again.path
    files = first.path / "repo" / "addons" / "demo"
    assert (files / "__manifest__.py").read_bytes() == b"{'name': 'Demo'}\n"
    assert os.access(files / "bin" / "tool.sh", os.X_OK)
    assert os.readlink(files / "link.py") == "__manifest__.py"
    assert stat.S_IMODE((files / "__manifest__.py").stat().st_mode) == 0o644
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]

    # A second store, another umask and other mtimes: the same content digest.
    old = os.umask(0o077)
    try:
        other = ArtifactStore(tmp_path / "other").ensure(inputs, materialize)
    finally:
        os.umask(old)
    os.utime(other.path / "repo" / "addons" / "demo" / "__manifest__.py", (1, 1))
    assert other.content_digest == first.content_digest == content_digest(other.path)
    assert store.verify(first.id)
    (files / "__manifest__.py").write_text("tampered")
    assert not store.verify(first.id)


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    inputs = ArtifactInputs(BASE, (("addons", TREE_A),))
    builds: list[int] = []
    results: list[bool] = []

    def materialize(bundle: Path) -> None:
        builds.append(1)
        (bundle / "f").write_text("x")

    def worker() -> None:
        results.append(store.ensure(inputs, materialize).created)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and sorted(results) == [False, False, False, True]


def test_failed_and_crashed_builds_leave_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    inputs = ArtifactInputs(BASE, (("addons", TREE_B),))

    def broken(bundle: Path) -> None:
        (bundle / "half").write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(OdooOpsError) as err:
        store.ensure(inputs, broken)
    assert err.value.code == "ARTIFACT_BUILD_FAILED" and store.get(inputs.id) is None
    assert [p.name for p in store.root.iterdir()] == [".locks"]

    # A builder killed mid-build leaves .tmp-<pid>-*; a dead pid's leftovers are swept,
    # a live builder's are not.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (store.root / f".tmp-{dead}-crashed" / "bundle").mkdir(parents=True)
    (store.root / f".tmp-{os.getpid()}-building").mkdir()
    built = store.ensure(inputs, lambda b: (b / "ok").write_text("ok"))
    names = {p.name for p in store.root.iterdir()}
    assert f".tmp-{dead}-crashed" not in names and f".tmp-{os.getpid()}-building" in names
    # A directory under an artifact id but without a manifest is debris, not an artifact.
    debris = ArtifactInputs(BASE, (("other", TREE_B),))
    (store.root / debris.id).mkdir()
    assert store.get(debris.id) is None
    assert store.ensure(debris, lambda b: (b / "f").write_text("f")).created
    assert store.verify(built.id) and store.verify(debris.id)


def test_gc_keeps_only_what_is_in_use(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    ids = [store.ensure(ArtifactInputs(BASE, ((f"p{i}", TREE_A),)),
                        lambda b: (b / "f").write_text("f")).id for i in range(3)]
    assert sorted(store.gc(keep={ids[0]})) == sorted(ids[1:])
    assert store.ids() == [ids[0]] and store.get(ids[0])
