"""Audit anchors under refs/odooops/audit-anchors of the project repository: the chain head, pushed.

Each anchor is a commit whose tree holds `anchor.json` ({seq, hash, anchored_at}) and whose parent is the
previous anchor, so `git log refs/odooops/audit-anchors` is the anchor history. It is pushed without force:
a server that refuses non-fast-forward updates (the default for `receive.denyNonFastForwards`, and any
branch protection on `refs/odooops/*`) keeps an attacker on the reconciler's host from moving it back.
The anchor is always read from the remote; the local repository is only where its objects are built.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import cast

import pygit2
from pygit2.enums import FileMode, RepositoryOpenFlag

from reconciler.core.audit_anchor import Anchor
from reconciler.errors import OdooOpsError
from reconciler.sources.notes import _ref_target
from reconciler.sources.pins import publish_ref
from reconciler.sources.remote import AuthenticationFailed, Callbacks, ensure_network_timeouts, git_error, redact_url

ANCHOR_REF = "refs/odooops/audit-anchors"
ANCHOR_FILE = "anchor.json"
SCHEMA = "odooops/audit-anchor/v1"
_FETCH_PREFIX = "refs/odooops-fetch/audit-anchor-"


class GitAnchors:
    """Anchors of one audit log in the repository at `remote_url`; `scratch` is a private bare repository."""

    def __init__(self, remote_url: str, scratch: Path) -> None:
        self.remote_url = remote_url
        self.scratch = scratch
        self.description = f"{ANCHOR_REF} of {redact_url(remote_url)}"
        self._lock = threading.Lock()

    def _repo(self) -> pygit2.Repository:
        if (self.scratch / "HEAD").exists():
            return pygit2.Repository(str(self.scratch), RepositoryOpenFlag.NO_SEARCH)
        self.scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        return pygit2.init_repository(str(self.scratch), bare=True)

    def _fetch(self, repo: pygit2.Repository) -> str | None:
        """The remote's anchor commit (its objects fetched), or None when the remote has no anchor yet."""
        ensure_network_timeouts()
        tmp = f"{_FETCH_PREFIX}{uuid.uuid4().hex}"
        remote = repo.remotes.create_anonymous(self.remote_url)
        try:
            remote.fetch([f"+{ANCHOR_REF}:{tmp}"], callbacks=Callbacks(self.remote_url))
            return _ref_target(repo, tmp)
        except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
            raise git_error(exc, self.remote_url, "fetch") from None
        finally:
            if repo.references.get(tmp) is not None:
                repo.references.delete(tmp)

    def _parse(self, repo: pygit2.Repository, commit_id: str) -> Anchor:
        try:
            commit = cast(pygit2.Commit, repo[commit_id])
            doc = json.loads(cast(pygit2.Blob, repo[commit.tree[ANCHOR_FILE].id]).data)
            seq, digest, when = int(doc["seq"]), str(doc["hash"]), float(doc["anchored_at"])
            if doc.get("schema") != SCHEMA or seq < 1 or len(digest) != 64:
                raise ValueError(doc)
        except (KeyError, ValueError, TypeError) as exc:
            raise OdooOpsError("AUDIT_ANCHOR_INVALID", f"{self.description} ({commit_id[:12]}) holds no valid anchor",
                               f"inspect it: git log -p {ANCHOR_REF}; someone with push rights wrote it",
                               {"commit": commit_id}) from exc
        return Anchor(seq=seq, hash=digest, anchored_at=when, where=self.description)

    def latest(self) -> Anchor | None:
        with self._lock:
            repo = self._repo()
            tip = self._fetch(repo)
            return None if tip is None else self._parse(repo, tip)

    def record(self, seq: int, digest: str) -> Anchor:
        """A new anchor commit on top of the remote's, pushed as a fast-forward."""
        with self._lock:
            repo = self._repo()
            parent = self._fetch(repo)
            if parent is not None:
                before = self._parse(repo, parent)
                if before.seq > seq:
                    raise OdooOpsError(
                        "AUDIT_ANCHOR_AHEAD", f"{self.description} records entry {before.seq}, the log ends at {seq}",
                        "the audit log lost entries after they were anchored: run odooops audit verify",
                        {"anchored_seq": before.seq, "log_seq": seq})
            now = round(time.time(), 3)
            text = json.dumps({"schema": SCHEMA, "seq": seq, "hash": digest, "anchored_at": now},
                              sort_keys=True, separators=(",", ":")) + "\n"
            builder = repo.TreeBuilder()
            builder.insert(ANCHOR_FILE, repo.create_blob(text.encode()), FileMode.BLOB)
            sig = pygit2.Signature("OdooOps", "odooops@localhost")
            oid = repo.create_commit(None, sig, sig, f"odooops: audit anchor at entry {seq}\n", builder.write(),
                                     [pygit2.Oid(hex=parent)] if parent else [])
            publish_ref(repo, self.remote_url, ANCHOR_REF, str(oid), expected=[parent])
            return Anchor(seq=seq, hash=digest, anchored_at=now, where=self.description)
