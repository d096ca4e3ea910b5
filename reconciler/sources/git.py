"""Git source: branch and PR/MR heads, their .odooops.yaml blobs, from a repo or a pygit2 mirror."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FetchPrune, FileMode, RepositoryOpenFlag

from reconciler.core.projects import LEGACY_PINS
from reconciler.errors import OdooOpsError
from reconciler.sources import notes
from reconciler.sources.remote import (
    _URL_RE,
    _USERINFO_RE,
    NOTES_REF,
    AuthenticationFailed,
    Callbacks,
    ensure_network_timeouts,
    git_error,
    is_status_notes_ref,
    is_url,
    redact_url,
)
from reconciler.sources.urls import file_url_path

log = logging.getLogger(__name__)

CONFIG_FILE = ".odooops.yaml"
FETCH_REFSPECS = (
    "+refs/heads/*:refs/heads/*",
    "+refs/pull/*/head:refs/pull/*/head",
    "+refs/merge-requests/*/head:refs/merge-requests/*/head",
    "+refs/notes/*:refs/notes/*",
    # Rollback pins are desired state too: one pushed (or deleted) by another server or by hand
    # from a checkout (`odooops rollback --clear` without a server) must reach the mirror.
    "+refs/odooops/pins/*:refs/odooops/pins/*",
    # Pins of namespaced projects: refs/odooops/projects/<project>/pins/<env> (core.projects.ResourceNames).
    "+refs/odooops/projects/*:refs/odooops/projects/*",
)
PINS = LEGACY_PINS  # the legacy project's pins
PROJECT_REFS = "refs/odooops/projects/"  # every namespaced project's pins live below
# How long refresh() waits for another process that is fetching into the same mirror.
MIRROR_LOCK_TIMEOUT = 600.0

_PULL_RE = re.compile(r"^refs/(pull|merge-requests)/([0-9]+)/head$")
_HEAD_PREFIXES = ("refs/heads/", "refs/pull/", "refs/merge-requests/")


@dataclass(frozen=True)
class RefHead:
    """One deployable head: a branch or a pull/merge request ref, peeled to its commit."""

    ref: str
    branch: str
    kind: str
    number: int | None
    commit: str
    commit_time: int
    config_blob: str | None


@dataclass(frozen=True)
class FetchResult:
    """What a refresh changed among the head refs (branches, PRs, MRs) and the notes refs."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    notes_changed: bool = False
    received_objects: int = 0
    received_bytes: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted or self.notes_changed)


def mirror_name(url: str) -> str:
    """`<readable-slug>-<sha256[:12]>.git`, both computed from the URL without its user-info."""
    bare = _USERINFO_RE.sub("", url)
    if not _URL_RE.match(bare):
        bare = re.sub(r"^[^@/:\s]+@", "", bare)  # scp-like user@
    digest = hashlib.sha256(bare.encode()).hexdigest()[:12]
    readable = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", bare).removesuffix(".git")
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", readable).strip("-.")[-48:].strip("-.") or "repo"
    return f"{slug}-{digest}.git"


def _ref_of(head: RefHead) -> str:
    return head.ref


def _classify(name: str) -> tuple[str, str, int | None] | None:
    if name.startswith("refs/heads/"):
        return "branch", name[11:], None
    if name.startswith(("refs/pull/", "refs/merge-requests/")):
        m = _PULL_RE.match(name)
        if m:
            kind = "pull_request" if m.group(1) == "pull" else "merge_request"
            return kind, f"{m.group(1)}/{m.group(2)}", int(m.group(2))
    return None


class GitSource:
    """Reads heads and blobs from a local repository in place, or from a bare mirror of a URL.

    `notes_ref` is the project's status notes ref and `pin_prefix` where its rollback pins live (the legacy
    project's by default; core.projects.ResourceNames gives a namespaced project's). Two projects made from
    one repository share its mirror, so a refresh fetches (and keeps the unpushed local notes of) every
    project's notes ref and pins, not only this source's."""

    def __init__(self, location: str, state_dir: Path, *, notes_ref: str = NOTES_REF,
                 pin_prefix: str = PINS) -> None:
        if not is_status_notes_ref(notes_ref):
            raise ValueError(f"not a status notes ref: {notes_ref!r} (expected {NOTES_REF} or {NOTES_REF}-<project>)")
        if not (pin_prefix == PINS or (pin_prefix.startswith(PROJECT_REFS) and pin_prefix.endswith("/pins/"))):
            raise ValueError(f"not a pin prefix the mirror fetches: {pin_prefix!r} "
                             f"(expected {PINS} or {PROJECT_REFS}<project>/pins/)")
        self.notes_ref = notes_ref
        self.pin_prefix = pin_prefix
        self.location = location
        self.display = redact_url(location)
        self._url: str | None = location if is_url(location) else None
        # (ref, target) -> RefHead: objects never change, so an entry never goes stale.
        self._memo: dict[tuple[str, str], RefHead] = {}
        self._last_heads: dict[str, str] | None = None
        if self._url is not None:
            ensure_network_timeouts()
            mirrors = Path(state_dir) / "mirrors"
            self.path = mirrors / mirror_name(self._url)
            self._lock_path = mirrors / (self.path.name + ".lock")
            self._repo = self._open_mirror()
        else:
            self.path = Path(location).expanduser().resolve()
            self._repo = self._open_local(self.path)

    @property
    def repo(self) -> pygit2.Repository:
        return self._repo

    @property
    def is_mirror(self) -> bool:
        return self._url is not None

    # -- opening -------------------------------------------------------------------------------

    def _open_local(self, path: Path) -> pygit2.Repository:
        try:
            # NO_SEARCH: a plain directory inside some other checkout must not silently match it.
            return pygit2.Repository(str(path), RepositoryOpenFlag.NO_SEARCH)
        except (pygit2.GitError, KeyError, OSError) as exc:
            raise OdooOpsError(
                "GIT_NOT_A_REPOSITORY",
                f"{self.display} is not a git repository.",
                f"Point the location at a repository (`git -C {self.display} rev-parse "
                "--git-dir` must succeed) or at a remote URL to mirror.",
                {"location": self.display, "cause": str(exc)},
            ) from exc

    def _try_open_mirror(self) -> pygit2.Repository | None:
        if not (self.path / "HEAD").is_file():
            return None
        try:
            repo = pygit2.Repository(str(self.path), RepositoryOpenFlag.NO_SEARCH)
            repo.lookup_reference("HEAD")  # opening alone does not notice a mangled HEAD
            return repo
        except pygit2.GitError:
            return None

    def _open_mirror(self) -> pygit2.Repository:
        repo = self._try_open_mirror()
        if repo is not None:
            return repo
        with self._locked():
            repo = self._try_open_mirror()  # another process may have created it meanwhile
            if repo is not None:
                return repo
            if self.path.exists():
                log.warning("mirror %s is unreadable; recreating it", self.path)
                shutil.rmtree(self.path)
            # Initialise beside the final path and rename, so a crash never leaves half a mirror.
            tmp = self.path.with_name(f"{self.path.name}.init-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            repo = pygit2.init_repository(str(tmp), bare=True)
            repo.config["core.logallrefupdates"] = False
            del repo
            os.replace(tmp, self.path)
        return pygit2.Repository(str(self.path), RepositoryOpenFlag.NO_SEARCH)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers of one mirror across threads and processes (flock is per open)."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + MIRROR_LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OdooOpsError(
                            "GIT_MIRROR_BUSY",
                            f"Another process has been updating the mirror of {self.display} "
                            f"for over {MIRROR_LOCK_TIMEOUT:.0f}s.",
                            f"Find and stop it: `fuser {self._lock_path}`.",
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _clear_stale_locks(self) -> None:
        """Remove leftovers of an interrupted fetch; safe because we hold the mirror lock."""
        root = self.path
        stale = [root / n for n in ("packed-refs.lock", "FETCH_HEAD.lock", "HEAD.lock",
                                    "config.lock", "shallow.lock")]
        for dirpath, _dirs, files in os.walk(root / "refs"):
            stale += [Path(dirpath) / f for f in files if f.endswith(".lock")]
        pack_dir = root / "objects" / "pack"
        if pack_dir.is_dir():
            stale += [p for p in pack_dir.iterdir() if p.name.startswith(("pack_git2_", "tmp_"))]
        for path in stale:
            if path.exists():
                log.warning("removing stale %s left by an interrupted fetch", path)
                path.unlink(missing_ok=True)

    # -- refresh -------------------------------------------------------------------------------

    def refresh(self) -> FetchResult:
        """Fetch the mirror incrementally; for a local path, report changes since the last call."""
        if self._url is None:
            now = self._head_targets()
            before = self._last_heads if self._last_heads is not None else {}
            self._last_heads = now
            return _diff(before, now)
        # The notes write lock keeps in-process note writers out while the forced notes refspec
        # may move the notes refs; _keep_local_notes then merges their unpushed notes back (every
        # project's: a mirror is shared by the projects made from one repository).
        with self._locked(), notes.lock_for(self._repo):
            self._clear_stale_locks()
            before = self._all_targets()
            remote = self._repo.remotes.create_anonymous(self._url)
            try:
                stats = remote.fetch(list(FETCH_REFSPECS), callbacks=Callbacks(self._url),
                                     prune=FetchPrune.PRUNE, message="odooops: refresh")
            except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
                raise git_error(exc, self._url, "fetch") from None
            after = self._all_targets()
            moved_notes = sorted(k for k, v in before.items() if is_status_notes_ref(k) and after.get(k) != v)
            for ref in moved_notes:
                self._keep_local_notes(ref, before[ref], after.get(ref))
            if moved_notes:
                after = self._all_targets()
            if after != before:
                # One packed-refs file reads much faster than thousands of loose ref files.
                self._repo.compress_references()
        heads = {k: v for k, v in after.items() if _classify(k)}
        old_heads = {k: v for k, v in before.items() if _classify(k)}
        notes_changed = any(
            before.get(k) != after.get(k)
            for k in set(before) | set(after) if k.startswith("refs/notes/")
        )
        result = _diff(old_heads, heads, notes_changed)
        return FetchResult(result.added, result.updated, result.deleted, result.notes_changed,
                           stats.received_objects, stats.received_bytes)

    def remote_refs(self) -> dict[str, str]:
        """The remote's refs that refresh() fetches, ls-remote style: one round trip, no objects."""
        return self._list_remote()[0]

    def _list_remote(self) -> tuple[dict[str, str], pygit2.Remote | None]:
        """remote_refs(), and for a network remote the still open connection it was read over: a
        targeted fetch right after reuses it instead of connecting (and reading every ref) again."""
        if self._url is None:
            return {k: v for k, v in self._all_targets().items() if _fetched(k)}, None
        local = file_url_path(self._url)
        if local is not None:
            # A file:// remote is a repository on this disk: reading its refs directly costs a few
            # ms, where libgit2's local transport spends ~50 ms on 1,000 refs.
            try:
                other = pygit2.Repository(local)
            except (pygit2.GitError, OSError) as exc:
                raise git_error(exc, self._url, "fetch") from None
            return {r.name: str(r.target) for r in other.listall_reference_objects()
                    if isinstance(r.target, pygit2.Oid) and _fetched(r.name)}, None
        remote = self._repo.remotes.create_anonymous(self._url)
        try:
            heads = remote.list_heads(callbacks=Callbacks(self._url))
        except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
            raise git_error(exc, self._url, "fetch") from None
        return ({h.name: str(h.oid) for h in heads if h.name is not None and _fetched(h.name) and not h.symref_target},
                remote)

    def local_refs(self) -> dict[str, str]:
        """The mirror's refs in the namespaces refresh() fetches (what remote_refs() compares to)."""
        return {k: v for k, v in self._all_targets().items() if _fetched(k)}

    def notes_ahead_of(self, remote: dict[str, str]) -> bool:
        """True when this source's notes ref strictly descends from the remote's (notes not pushed yet)."""
        return self._ahead(self.notes_ref, self.local_refs(), remote)

    def _ahead(self, ref: str, local: dict[str, str], remote: dict[str, str]) -> bool:
        ours, theirs = local.get(ref), remote.get(ref)
        if ours is None or ours == theirs:
            return False
        if theirs is None:
            return True
        try:
            return theirs in self._repo.odb and self._repo.descendant_of(ours, theirs)
        except (pygit2.GitError, ValueError):
            return False

    def refresh_if_changed(self) -> FetchResult | None:
        """Fetch only when the remote's refs differ from the mirror's; None when nothing changed.

        An unchanged remote costs one ref advertisement (no negotiation, no pack); local notes
        that are merely ahead of the remote (not pushed yet) are no reason to fetch.
        """
        if self._url is None:
            result = self.refresh()
            return result if result.changed else None
        remote, connection = self._list_remote()
        local = self.local_refs()
        if remote == local:
            return None
        differing = {k for k in set(remote) | set(local) if remote.get(k) != local.get(k)}
        notes = {k for k in differing if k.startswith("refs/notes/")}
        # Any project's notes (the mirror may be shared) merely ahead of the remote: nothing to fetch.
        if differing == notes and all(is_status_notes_ref(k) and self._ahead(k, local, remote) for k in notes):
            return None
        if notes:
            return self.refresh()  # notes need refresh()'s merge of unpushed local notes
        return self._fetch_heads(remote, local, connection)

    def _fetch_heads(self, remote: dict[str, str], local: dict[str, str],
                     connection: pygit2.Remote | None = None) -> FetchResult:
        """Fetch only the head refs that moved (explicit refspecs) and drop the vanished ones: the
        cost follows the number of changed refs, not the number of branches.

        A ref is dropped only when it is still what it was when the remote was read: one written
        meanwhile (a rollback pin, pushed to the remote first and then set here) is newer news
        than the remote's listing."""
        with self._locked():
            self._clear_stale_locks()
            before = self._all_targets()
            moved = sorted(k for k, v in remote.items() if _targeted(k) and before.get(k) != v)
            gone = sorted(k for k in before if _targeted(k) and k not in remote and before[k] == local.get(k))
            received = (0, 0)
            if moved:
                url = self._url
                assert url is not None  # refresh_if_changed() fetches heads only from a remote URL
                refspecs = [f"+{k}:{k}" for k in moved]
                stats = None
                if connection is not None:
                    # The connection the remote's refs were just listed over: the fetch sends its
                    # wants at once (one connection, one ref advertisement per poll, not two).
                    try:
                        stats = connection.fetch(refspecs, callbacks=Callbacks(url), message="odooops: refresh")
                    except (pygit2.GitError, AuthenticationFailed, OSError):
                        # The server may have closed it while we waited for the mirror lock.
                        log.info("fetch over the listing's connection to %s failed; connecting again", self.display)
                if stats is None:
                    fetcher = self._repo.remotes.create_anonymous(url)
                    try:
                        stats = fetcher.fetch(refspecs, callbacks=Callbacks(url), message="odooops: refresh")
                    except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
                        raise git_error(exc, url, "fetch") from None
                received = (stats.received_objects, stats.received_bytes)
            for name in gone:
                self._repo.references.delete(name)
            after = self._all_targets()
            # Loose refs read slower than one packed-refs file, but packing rewrites all of them:
            # pack once enough loose ones piled up, not on every fetch.
            self._loose_refs = getattr(self, "_loose_refs", 0) + len(moved)
            if self._loose_refs > 256:
                self._repo.compress_references()
                self._loose_refs = 0
        result = _diff({k: v for k, v in before.items() if _classify(k)}, {k: v for k, v in after.items()
                                                                            if _classify(k)})
        return FetchResult(result.added, result.updated, result.deleted, False, *received)

    def _keep_local_notes(self, ref: str, ours: str, theirs: str | None) -> None:
        """The forced notes refspec must not drop local notes of `ref` that were not pushed yet."""
        if theirs is not None and self._repo.descendant_of(theirs, ours):
            return
        try:
            notes.merge_into_ref(self._repo, ref, ours, theirs)
        except notes.NotesRefMoved:
            # Only another process can move it while we hold both locks; its write carries on
            # from the fetched notes, and ours are re-written by the next reconcile.
            log.warning("%s of %s moved during refresh; local notes %s not merged",
                        ref, self.display, ours)

    # -- reading -------------------------------------------------------------------------------

    def _all_targets(self) -> dict[str, str]:
        return {
            ref.name: str(ref.target)
            for ref in self._repo.listall_reference_objects()
            if isinstance(ref.target, pygit2.Oid)
        }

    def _head_targets(self) -> dict[str, str]:
        return {k: v for k, v in self._all_targets().items() if _classify(k)}

    def ref_targets(self) -> dict[str, str]:
        """Every direct ref and its target, in one listing: a planning round reads the refs once and
        hands this to refs_digest(), heads() and the pins and notes readers."""
        return self._all_targets()

    def heads(self, targets: dict[str, str] | None = None) -> list[RefHead]:
        """All branches and PR/MR refs, sorted by ref, each with its .odooops.yaml blob id.
        `targets`: a ref_targets() listing of this round (read now when not given)."""
        memo, fresh = self._memo, {}
        out: list[RefHead] = []
        for name, target in (self._all_targets() if targets is None else targets).items():
            if not name.startswith(_HEAD_PREFIXES):
                continue
            key = (name, target)
            head = memo.get(key)
            if head is None:
                head = self._make_head(name, pygit2.Oid(hex=target))
                if head is None:
                    continue
            fresh[key] = head
            out.append(head)
        self._memo = fresh
        out.sort(key=_ref_of)
        return out

    def _make_head(self, name: str, target: pygit2.Oid) -> RefHead | None:
        kind = _classify(name)
        info = self._inspect(target) if kind else None
        if kind is None or info is None:
            return None
        return RefHead(name, kind[1], kind[0], kind[2], *info)

    def _inspect(self, target: pygit2.Oid) -> tuple[str, int, str | None] | None:
        found = self._repo.get(target)
        if found is None:
            return None
        if isinstance(found, pygit2.Commit):
            obj = found
        else:
            try:
                obj = found.peel(pygit2.Commit)  # an annotated tag under refs/heads
            except (pygit2.GitError, ValueError, TypeError):
                return None
        blob: str | None = None
        try:
            entry = obj.tree[CONFIG_FILE]
            if entry.type_str == "blob" and entry.filemode != FileMode.LINK:
                blob = str(entry.id)
        except KeyError:
            pass
        return str(obj.id), obj.commit_time, blob

    def read_blob(self, oid: str) -> bytes:
        try:
            obj = self._repo.get(oid)
        except ValueError:
            obj = None
        if not isinstance(obj, pygit2.Blob):
            raise OdooOpsError(
                "GIT_OBJECT_NOT_FOUND",
                f"Blob {oid} is not in the repository {self.display}.",
                "Refresh the source (the object may belong to a ref fetched later) "
                "or check the id.",
                {"location": self.display, "oid": oid},
            )
        return obj.data

    def tree_id(self, commit: str, path: str = "") -> str | None:
        """Id of the tree at path in commit ("" is the root tree); None if path is no tree."""
        try:
            obj = self._repo.get(commit)
            commit_obj = obj.peel(pygit2.Commit) if obj is not None else None
        except (ValueError, pygit2.GitError, TypeError):
            commit_obj = None
        if commit_obj is None:
            raise OdooOpsError(
                "GIT_OBJECT_NOT_FOUND",
                f"Commit {commit} is not in the repository {self.display}.",
                "Refresh the source first, or check the commit id.",
                {"location": self.display, "commit": commit},
            )
        tree = commit_obj.tree
        path = path.strip("/")
        if not path:
            return str(tree.id)
        try:
            entry = tree[path]
        except KeyError:
            return None
        return str(entry.id) if entry.type_str == "tree" else None

    def refs_digest(self, targets: dict[str, str] | None = None) -> str:
        """sha256 over the sorted (ref, target) pairs of the refs heads() reads; no object reads.
        `targets`: a ref_targets() listing of this round (read now when not given)."""
        h = hashlib.sha256()
        heads = self._head_targets() if targets is None else {k: v for k, v in targets.items() if _classify(k)}
        for name, target in sorted(heads.items()):
            h.update(f"{name}\0{target}\n".encode())
        return h.hexdigest()


def _targeted(name: str) -> bool:
    """Refs the cheap poll fetches one by one: heads, pull/merge requests and rollback pins (every project's)."""
    return bool(_classify(name)) or name.startswith((PINS, PROJECT_REFS))


def _fetched(name: str) -> bool:
    """True for the refs FETCH_REFSPECS bring into the mirror."""
    return name.startswith(("refs/heads/", "refs/notes/", PINS, PROJECT_REFS)) or bool(_PULL_RE.match(name))


def _diff(before: dict[str, str], after: dict[str, str], notes: bool = False) -> FetchResult:
    return FetchResult(
        added=tuple(sorted(set(after) - set(before))),
        updated=tuple(sorted(k for k in set(after) & set(before) if after[k] != before[k])),
        deleted=tuple(sorted(set(before) - set(after))),
        notes_changed=notes,
    )
