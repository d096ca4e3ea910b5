"""Status notes under refs/notes/odooops (a namespaced project's: refs/notes/odooops-<project>, core.projects.
notes_ref): deterministic writes and lossless concurrent pushes. Every function takes the notes ref as `ref`,
the legacy project's by default."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pygit2
from pygit2.enums import FileMode, ObjectType, RepositoryOpenFlag

from reconciler.errors import OdooOpsError
from reconciler.sources.remote import (
    NOTES_REF,
    AuthenticationFailed,
    Callbacks,
    ensure_network_timeouts,
    git_error,
    is_url,
    redact_url,
)
from reconciler.sources.urls import file_url_path

log = logging.getLogger(__name__)

SCHEMA = "odooops/status-note/v1"
DEFAULT_AUTHOR = ("OdooOps", "odooops@localhost")
_SYNC_PREFIX = "refs/odooops-sync/"
_HEX = frozenset("0123456789abcdef")
_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


@dataclass(frozen=True)
class PushResult:
    """Outcome of push_notes: whether the remote moved, and the retries/merges it took."""

    pushed: bool
    retries: int
    merges: int
    remote_commit: str | None


class NotesRefMoved(Exception):
    """A notes ref moved under us (or was locked): re-read, merge and try again."""


def canonical_json(doc: Any) -> str:
    """The one serialisation of a note: sorted keys, no spaces, trailing newline."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("environments"), dict):
        return None
    return doc


def _note_bytes(repo: pygit2.Repository, commit: str, ref: str = NOTES_REF) -> bytes | None:
    try:
        note = repo.lookup_note(commit, ref)
    except KeyError:
        return None
    data: bytes = cast(pygit2.Blob, repo[note.id]).data
    return data


def read_note(repo: pygit2.Repository, commit: str, *, ref: str = NOTES_REF) -> dict[str, Any] | None:
    """The status note of commit in `ref`, or None when there is none (or it is not a valid note)."""
    raw = _note_bytes(repo, commit, ref)
    doc = _parse(raw)
    if raw is not None and doc is None:
        log.warning("ignoring unparsable status note on %s in %s", commit, ref)
    return doc


def iter_notes(repo: pygit2.Repository, *, ref: str = NOTES_REF) -> Iterator[tuple[str, dict[str, Any]]]:
    """(commit, note) for every valid status note in `ref`, in commit id order."""
    tip = _ref_target(repo, ref)
    if tip is None:
        return
    for commit, blob in sorted(_notes_map(repo, tip).items()):
        doc = _parse(cast(pygit2.Blob, repo[blob]).data)
        if doc is not None:
            yield commit, doc


def write_env_entry(
    repo: pygit2.Repository, commit: str, env: str, entry: dict[str, Any],
    author: pygit2.Signature | None = None, *, ref: str = NOTES_REF,
) -> bool:
    """Set environments[env] = entry in commit's note in `ref` (written as `author`, by default the platform's
    DEFAULT_AUTHOR); False (and no write) if bytes are equal."""
    author = author or pygit2.Signature(*DEFAULT_AUTHOR)
    if not isinstance(entry, dict):
        raise TypeError("a status entry must be a dict")
    if not isinstance(repo.get(commit), pygit2.Commit):
        raise OdooOpsError(
            "NOTE_COMMIT_NOT_FOUND",
            f"Cannot write a status note on {commit}: no such commit in {repo.path}.",
            "Refresh the git source so the deployed commit is present, then retry.",
            {"commit": commit, "environment": env},
        )
    with lock_for(repo):
        for _ in range(20):
            raw = _note_bytes(repo, commit, ref)
            doc = _parse(raw) or {"environments": {}}
            doc["schema"] = SCHEMA
            doc["environments"][env] = entry
            text = canonical_json(doc)
            if raw == text.encode():
                return False
            try:
                repo.create_note(text, author, author, commit, ref, True)
                return True
            except pygit2.GitError as exc:
                # Another process moved the notes ref between our read and write: re-read.
                if not _is_transient(exc):
                    raise
                time.sleep(random.uniform(0.005, 0.05))
    raise OdooOpsError(
        "NOTE_WRITE_CONFLICT",
        f"Could not write the status note of {env} on {commit}: the notes ref kept changing.",
        f"Check that no process rewrites {ref} in a loop, then retry.",
        {"commit": commit, "environment": env, "ref": ref},
    )


def _is_transient(exc: BaseException) -> bool:
    low = str(exc).lower()
    return any(k in low for k in ("current tip", "lock", "modified", "already exists"))


def lock_for(repo: pygit2.Repository) -> threading.Lock:
    """The in-process lock that serialises writers of one repository's notes refs (all projects' alike)."""
    with _write_locks_guard:
        return _write_locks.setdefault(str(Path(repo.path).resolve()), threading.Lock())


# -- merging -----------------------------------------------------------------------------------


def _updated_key(entry: Any) -> tuple[float, str]:
    """Order entries by updated_at (ISO-8601 or epoch), then by canonical JSON for ties."""
    stamp = entry.get("updated_at") if isinstance(entry, dict) else None
    when = float("-inf")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        when = float(stamp)
    elif isinstance(stamp, str):
        try:
            parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            # A stamp without offset is taken as UTC, never as this machine's local time.
            when = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        except ValueError:
            when = float("-inf")
    return when, canonical_json(entry)


def merge_docs(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> dict[str, Any]:
    """Union of environments; an env on both sides keeps the entry with the later updated_at."""
    envs: dict[str, Any] = dict((theirs or {}).get("environments", {}))
    for name, entry in (ours or {}).get("environments", {}).items():
        if name not in envs or _updated_key(entry) > _updated_key(envs[name]):
            envs[name] = entry
    return {"schema": SCHEMA, "environments": envs}


def _notes_map(repo: pygit2.Repository, notes_commit: str) -> dict[str, pygit2.Oid]:
    """commit id -> note blob id of a notes commit, flattening git's fan-out directories."""
    out: dict[str, pygit2.Oid] = {}
    stack: list[tuple[str, pygit2.Tree]] = [("", repo[notes_commit].peel(pygit2.Tree))]
    while stack:
        prefix, tree = stack.pop()
        for entry in tree:
            entry_name = cast(str, entry.name)  # always set on an entry read from a tree
            name = prefix + entry_name
            if entry.type_str == "tree" and len(name) < 40 and set(entry_name) <= _HEX:
                stack.append((name, cast(pygit2.Tree, repo[entry.id])))
            elif entry.type_str == "blob" and len(name) == 40 and set(name) <= _HEX:
                out[name] = entry.id
    return out


def _merged_tree(repo: pygit2.Repository, ours: str, theirs: str) -> pygit2.Oid:
    a, b = _notes_map(repo, ours), _notes_map(repo, theirs)
    builder = repo.TreeBuilder()
    for commit in sorted(set(a) | set(b)):
        blob = a.get(commit) or b[commit]
        if commit in a and commit in b and a[commit] != b[commit]:
            doc = merge_docs(_parse(cast(pygit2.Blob, repo[a[commit]]).data),
                             _parse(cast(pygit2.Blob, repo[b[commit]]).data))
            blob = repo.create_blob(canonical_json(doc).encode())
        builder.insert(commit, blob, FileMode.BLOB)
    return builder.write()


def _ref_target(repo: pygit2.Repository, ref: str) -> str | None:
    found = repo.references.get(ref)
    return str(found.target) if found is not None else None


def _cas(repo: pygit2.Repository, ref: str, expected: set[str | None], new: str) -> bool:
    """Point ref at new if it still holds one of expected; the ref lock makes this atomic."""
    try:
        with repo.transaction() as txn:
            txn.lock_ref(ref)
            if _ref_target(repo, ref) not in expected:
                raise NotesRefMoved(ref)
            txn.set_target(ref, new, message="odooops: notes")
    except (NotesRefMoved, pygit2.GitError):
        return False
    return True


def merge_into_ref(
    repo: pygit2.Repository, ref: str, ours: str, theirs: str | None,
    author: pygit2.Signature | None = None,
) -> str:
    """Point ref at the union of notes commits ours and theirs (a merge commit when diverged)."""
    if theirs is None or theirs == ours or repo.descendant_of(ours, theirs):
        result = ours
    elif repo.descendant_of(theirs, ours):
        result = theirs
    else:
        sig = author or pygit2.Signature(*DEFAULT_AUTHOR)
        tree = _merged_tree(repo, ours, theirs)
        result = str(repo.create_commit(None, sig, sig, f"Merge notes into {ref}\n", tree,
                                        [pygit2.Oid(hex=ours), pygit2.Oid(hex=theirs)]))
    if _ref_target(repo, ref) != result and not _cas(repo, ref, {ours, theirs}, result):
        raise NotesRefMoved(ref)
    return result


# -- pushing -----------------------------------------------------------------------------------


def _local_remote_path(url: str) -> str | None:
    if url.startswith("file://"):
        return file_url_path(url)
    return None if is_url(url) else url


def _fetch_remote_tip(repo: pygit2.Repository, url: str, *, ref: str = NOTES_REF) -> str | None:
    """Fetch the remote's notes ref `ref` into a private ref and return its target (None if absent)."""
    tmp = f"{_SYNC_PREFIX}{uuid.uuid4().hex}"
    remote = repo.remotes.create_anonymous(url)
    try:
        remote.fetch([f"+{ref}:{tmp}"], callbacks=Callbacks(url))
        return _ref_target(repo, tmp)
    except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
        raise git_error(exc, url, "fetch") from None
    finally:
        if repo.references.get(tmp) is not None:
            repo.references.delete(tmp)


def _copy_objects(src: pygit2.Repository, dst: pygit2.Repository, root: str) -> None:
    """Write the objects reachable from root that dst lacks, children before parents."""
    dst_odb, src_odb = dst.odb, src.odb
    stack: list[tuple[pygit2.Oid, bool]] = [(pygit2.Oid(hex=root), False)]
    while stack:
        oid, expanded = stack.pop()
        if oid in dst_odb:
            continue
        if expanded:
            kind, data = src_odb.read(oid)
            dst_odb.write(kind, data)
            continue
        stack.append((oid, True))
        obj = src[oid]
        if obj.type == ObjectType.COMMIT:
            commit = cast(pygit2.Commit, obj)
            stack += [(commit.tree_id, False)] + [(p, False) for p in commit.parent_ids]
        elif obj.type == ObjectType.TREE:
            stack += [(e.id, False) for e in cast(pygit2.Tree, obj) if e.filemode != FileMode.COMMIT]


def _push_local(repo: pygit2.Repository, path: str, tip: str, expected: str | None, *,
                ref: str = NOTES_REF) -> None:
    try:
        remote = pygit2.Repository(path, RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError as exc:
        raise git_error(OSError(f"could not find repository at {path}"), path, "push") from exc
    _copy_objects(repo, remote, tip)
    if not _cas(remote, ref, {expected}, tip):
        raise NotesRefMoved(ref)


def _push_smart(repo: pygit2.Repository, url: str, commit: str, *, ref: str = NOTES_REF) -> None:
    """Push exactly `commit` (the merged notes) to `ref` through a private ref: a refresh in another thread may
    move the notes ref meanwhile (force-fetch, then merge back), and pushing the ref itself could then send
    the remote its own tip and report success while our note stays unpushed."""
    callbacks = Callbacks(url)
    remote = repo.remotes.create_anonymous(url)
    private = f"refs/odooops-sync/push-{os.getpid()}-{threading.get_ident()}-{random.getrandbits(32):08x}"
    repo.references.create(private, pygit2.Oid(hex=commit), force=True)
    try:
        # No "+": the server refuses anything but a fast-forward of the value it advertised.
        remote.push([f"{private}:{ref}"], callbacks=callbacks)
    except pygit2.GitError as exc:
        low = str(exc).lower()
        if any(k in low for k in ("fastforward", "fast-forward", "not present locally")):
            raise NotesRefMoved(str(exc)) from None
        raise git_error(exc, url, "push") from None
    except (AuthenticationFailed, OSError) as exc:
        raise git_error(exc, url, "push") from None
    finally:
        with contextlib.suppress(KeyError, pygit2.GitError):
            repo.references.delete(private)
    if callbacks.rejected:
        raise NotesRefMoved("; ".join(f"{k}: {v}" for k, v in callbacks.rejected.items()))


def push_notes(
    repo: pygit2.Repository, remote_url: str, attempts: int = 5, *,
    base_delay: float = 0.1, author: pygit2.Signature | None = None, ref: str = NOTES_REF,
) -> PushResult:
    """Push the notes ref `ref` without forcing; on a race fetch, merge and retry with backoff. Only `ref`
    moves, locally and on the remote: another project's notes ref in the same repository is left alone.

    Each attempt first fetches the remote notes and merges them in when they diverged (counted
    in `merges`); `retries` counts pushes the remote then rejected because it moved meanwhile.
    """
    retries = merges = 0
    reason = ""
    ensure_network_timeouts()
    local_path = _local_remote_path(remote_url)
    for attempt in range(attempts):
        ours = _ref_target(repo, ref)
        if ours is None:
            return PushResult(False, retries, merges, None)
        theirs = _fetch_remote_tip(repo, remote_url, ref=ref)
        try:
            if theirs != ours and theirs is not None and not repo.descendant_of(ours, theirs):
                merged = merge_into_ref(repo, ref, ours, theirs, author)
                merges += merged not in (ours, theirs)
                ours = merged
            if theirs == ours:
                return PushResult(False, retries, merges, ours)
            if local_path is not None:
                _push_local(repo, local_path, ours, theirs, ref=ref)
            else:
                _push_smart(repo, remote_url, ours, ref=ref)
            return PushResult(True, retries, merges, ours)
        except NotesRefMoved as why:
            retries += 1
            reason = redact_url(str(why))
            log.info("notes push to %s rejected (%s); retry %d", redact_url(remote_url),
                     reason, retries)
            if attempt + 1 < attempts:
                delay = min(base_delay * 2**attempt, 5.0)
                time.sleep(delay + random.uniform(0, delay))
    raise OdooOpsError(
        "NOTES_PUSH_CONFLICT",
        f"Could not push {ref} to {redact_url(remote_url)} after {attempts} attempts; "
        f"last rejection: {reason}",
        "Retry later. If it persists, check that no process force-pushes the notes ref and "
        f"that no server hook refuses updates of {ref}.",
        {"location": redact_url(remote_url), "retries": retries, "last_rejection": reason, "ref": ref},
    )
