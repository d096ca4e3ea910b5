"""Whether a project's remote answers and would take a notes push, found without changing it (`odooops doctor`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.ffi import C

from reconciler.errors import OdooOpsError
from reconciler.sources.remote import NOTES_REF, AuthenticationFailed, Callbacks, ensure_network_timeouts, git_error
from reconciler.sources.remote import is_url as _is_url
from reconciler.sources.urls import file_url_path


@dataclass(frozen=True)
class PushAccess:
    """`checked` is False when the transport offers no way to ask without pushing."""

    checked: bool
    detail: str


def local_path(location: str) -> Path | None:
    """The repository on this disk that `location` names (a path or a file:// URL), else None."""
    if location.startswith("file://"):
        path = file_url_path(location)
        return Path(path) if path is not None else None
    return None if _is_url(location) else Path(location).expanduser()


@contextlib.contextmanager
def _scratch_repo() -> Iterator[pygit2.Repository]:
    # libgit2 needs a repository to hold an anonymous remote; an empty bare one costs a few ms.
    with tempfile.TemporaryDirectory(prefix="odooops-probe-") as tmp:
        yield pygit2.init_repository(tmp, bare=True)


def list_remote(location: str) -> int:
    """ls-remote: how many refs the remote advertises; raises its error (GIT_* codes) when it does not answer."""
    path = local_path(location)
    if path is not None:
        try:
            repo = pygit2.Repository(str(path))
        except (pygit2.GitError, OSError) as exc:
            raise git_error(exc, location, "fetch") from None
        return len(repo.listall_references())
    ensure_network_timeouts()
    with _scratch_repo() as scratch:
        remote = scratch.remotes.create_anonymous(location)
        try:
            return len(remote.list_heads(callbacks=Callbacks(location)))
        except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
            raise git_error(exc, location, "fetch") from None


def notes_push_access(location: str, *, notes_ref: str = NOTES_REF) -> PushAccess:
    """Would a push of `notes_ref` (the project's notes ref; the legacy project's by default) be accepted?
    On this disk: the repository's refs and objects take a probe file. Over a smart transport: the server
    accepts a push connection (receive-pack advertises its refs, credentials included); nothing is sent, so
    a hook that refuses the ref itself is not seen."""
    path = local_path(location)
    if path is not None:
        try:
            gitdir = Path(pygit2.Repository(str(path)).path)
        except (pygit2.GitError, OSError) as exc:
            raise git_error(exc, location, "push") from None
        for sub in ("objects", "refs"):
            try:
                fd, probe = tempfile.mkstemp(prefix=".odooops-probe-", dir=gitdir / sub)
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise OdooOpsError(
                    "GIT_PUSH_FAILED", f"cannot write {notes_ref} into {gitdir}: {exc.strerror or exc}",
                    f"give the user running OdooOps write access to {gitdir / sub} (chown -R or chmod -R u+w)",
                    {"location": str(path), "ref": notes_ref}) from exc
        return PushAccess(True, f"the repository on this disk ({gitdir}) takes writes to its objects and refs")
    ensure_network_timeouts()
    with _scratch_repo() as scratch:
        remote = scratch.remotes.create_anonymous(location)
        try:
            remote.connect(callbacks=Callbacks(location), direction=C.GIT_DIRECTION_PUSH)
            refs = remote.list_heads(connect=False)
        except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
            raise git_error(exc, location, "push") from None
    return PushAccess(True, f"the remote accepts a push connection (receive-pack advertised {len(refs)} refs); "
                            "nothing was pushed")
