"""Changes the platform makes to a project's branches for a person: a file committed on top of the tip, the
branch moved (or deleted) without force, so a branch that moved meanwhile refuses the change instead of
losing someone's commit. Each call opens its own handle on the repository: pygit2 objects are not shared
between threads."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, cast

import pygit2

from reconciler.errors import OdooOpsError
from reconciler.sources.remote import scrub

if TYPE_CHECKING:
    from reconciler.sources.git import GitSource


def branch_tip(source: GitSource, branch: str) -> str | None:
    """The commit the branch points at; None when the branch is not in the repository (or the mirror)."""
    ref = pygit2.Repository(source.repo.path).references.get(f"refs/heads/{branch}")
    return str(ref.target) if ref is not None else None


def branch_file(source: GitSource, branch: str, path: str) -> tuple[str, bytes | None] | None:
    """(tip commit, content of the file at path there, None when there is none) of a branch; None when the
    branch is not in the repository (or the mirror)."""
    repo = pygit2.Repository(source.repo.path)
    ref = repo.references.get(f"refs/heads/{branch}")
    if ref is None:
        return None
    tree = repo[ref.target].tree
    data = cast(pygit2.Blob, repo[tree[path].id]).data if path in tree else None
    return str(ref.target), data


def commit_file(source: GitSource, parent: str, path: str, data: bytes, message: str,
                author: tuple[str, str], committer: tuple[str, str]) -> str:
    """A new commit (on no branch) whose tree is parent's with the file at path set to data (a regular file)."""
    repo = pygit2.Repository(source.repo.path)
    parent_commit = cast(pygit2.Commit, repo[parent])
    builder = repo.TreeBuilder(parent_commit.tree)
    builder.insert(path, repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
    oid = repo.create_commit(None, pygit2.Signature(*author), pygit2.Signature(*committer), message,
                             builder.write(), [parent_commit.id])
    return str(oid)


def move_branch(source: GitSource, branch: str, new: str | None, old: str) -> None:
    """Point the branch at new (delete it when new is None) if it still points at old: in the repository
    itself when the source is a local one, else by a push with a lease to the remote."""
    repo = pygit2.Repository(source.repo.path)
    if not source.is_mirror:
        ref = repo.references.get(f"refs/heads/{branch}")
        if ref is None or str(ref.target) != old:
            raise _moved(branch)
        if not repo.is_bare and not repo.head_is_detached and repo.head.name == f"refs/heads/{branch}":
            raise OdooOpsError("BRANCH_CHECKED_OUT", f"{branch} is checked out in {source.path}",
                               "serve a bare repository or a remote URL (odooops serve --repo URL)")
        if new is None:
            ref.delete()
        else:
            ref.set_target(new)
        return
    spec = f"{new}:refs/heads/{branch}" if new else f":refs/heads/{branch}"
    cmd = ["git", f"--git-dir={repo.path}", "push", "--porcelain", f"--force-with-lease=refs/heads/{branch}:{old}",
           source.location, spec]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"})
    if proc.returncode != 0:
        output = scrub(proc.stdout + proc.stderr, source.location)
        if "stale info" in output or "rejected" in output or "fetch first" in output:
            raise _moved(branch)
        raise OdooOpsError("GIT_PUSH_FAILED", f"could not push {branch} to {source.display}: {output[-500:]}",
                           "check that the server's credentials may push to the repository, then retry")


def _moved(branch: str) -> OdooOpsError:
    return OdooOpsError("BRANCH_CONFLICT", f"branch {branch} moved while the change was being made",
                        "retry: the change is re-applied on top of the new commit")
