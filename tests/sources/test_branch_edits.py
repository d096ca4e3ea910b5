"""Commits and branch moves the platform makes for a person (sources/branch_edits.py), on real repositories:
a local bare repository, a checked-out one, and a mirror of a file:// remote (pushed with a lease)."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from reconciler.errors import OdooOpsError
from reconciler.sources.branch_edits import branch_file, branch_tip, commit_file, move_branch
from reconciler.sources.git import GitSource

from ._gitutil import git

AUTHOR, COMMITTER = ("alice@example.test", "alice@example.test"), ("OdooOps API", "api@odooops")


def test_commit_a_file_and_move_the_branch_in_a_local_repository(tmp_path: Path, bare_remote: Path) -> None:
    source = GitSource(str(bare_remote), tmp_path / "state")
    tip = git(bare_remote, "rev-parse", "main")
    assert branch_tip(source, "main") == tip and branch_tip(source, "nope") is None
    assert branch_file(source, "main", ".odooops.yaml") == (tip, b"version: 1\n")
    assert branch_file(source, "main", "missing.yaml") == (tip, None)
    assert branch_file(source, "nope", ".odooops.yaml") is None

    new = commit_file(source, tip, ".odooops.yaml", b"version: 1\nworkers: 2\n", "scale\n", AUTHOR, COMMITTER)
    assert branch_tip(source, "main") == tip  # a commit on no branch until the branch is moved
    commit = source.repo[new].peel(pygit2.Commit)
    assert [str(p) for p in commit.parent_ids] == [tip]
    assert (commit.author.name, commit.author.email) == AUTHOR
    assert (commit.committer.name, commit.committer.email) == COMMITTER
    assert git(bare_remote, "show", f"{new}:.odooops.yaml") == "version: 1\nworkers: 2"
    assert git(bare_remote, "show", f"{new}:README.md") == "# project"  # the rest of the tree is kept

    move_branch(source, "main", new, tip)
    assert branch_tip(source, "main") == new
    with pytest.raises(OdooOpsError) as err:  # the branch is no longer at tip: refused, nothing lost
        move_branch(source, "main", tip, tip)
    assert err.value.code == "BRANCH_CONFLICT" and branch_tip(source, "main") == new

    git(bare_remote, "branch", "feature", new)
    move_branch(source, "feature", None, new)
    assert branch_tip(source, "feature") is None


def test_a_checked_out_branch_is_not_moved(tmp_path: Path, work_repo: Path) -> None:
    source = GitSource(str(work_repo), tmp_path / "state")
    tip = git(work_repo, "rev-parse", "main")
    new = commit_file(source, tip, "x.txt", b"x\n", "x\n", AUTHOR, COMMITTER)
    with pytest.raises(OdooOpsError) as err:
        move_branch(source, "main", new, tip)
    assert err.value.code == "BRANCH_CHECKED_OUT" and git(work_repo, "rev-parse", "main") == tip


def test_a_mirror_pushes_with_a_lease(tmp_path: Path, bare_remote: Path) -> None:
    source = GitSource(bare_remote.as_uri(), tmp_path / "state")
    source.refresh()
    tip = git(bare_remote, "rev-parse", "main")
    new = commit_file(source, tip, ".odooops.yaml", b"version: 1\nworkers: 3\n", "scale\n", AUTHOR, COMMITTER)
    move_branch(source, "main", new, tip)
    assert git(bare_remote, "rev-parse", "main") == new  # pushed to the remote

    other = commit_file(source, tip, "y.txt", b"y\n", "y\n", AUTHOR, COMMITTER)
    with pytest.raises(OdooOpsError) as err:  # the remote moved since `tip`: the lease refuses
        move_branch(source, "main", other, tip)
    assert err.value.code == "BRANCH_CONFLICT" and git(bare_remote, "rev-parse", "main") == new

    git(bare_remote, "branch", "gone", new)
    move_branch(source, "gone", None, new)
    assert git(bare_remote, "branch", "--list", "gone") == ""
