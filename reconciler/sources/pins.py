"""Rollback pins under refs/odooops/pins/<env>: a commit holding pin.json per environment, read, written, pushed.

A namespaced project's pins live under refs/odooops/projects/<project>/pins/<env> (core.projects.pin_prefix):
every function takes the prefix as `prefix`, the legacy project's by default, and the env name is the ref
minus the prefix.

The ref points at a commit (tree: `pin.json`; parent: the env's previous pin, so `git log` of the ref
is the pin history), not at a bare blob: libgit2's fetch negotiation fails with "object is not a
committish" on any advertised ref that points at a blob the fetching side already has, which would
break every later mirror refresh of the repository.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import pygit2
from pygit2.enums import RepositoryOpenFlag

from reconciler.core.model import Pin
from reconciler.errors import OdooOpsError
from reconciler.sources.git import CONFIG_FILE, PINS

# The notes module already knows how to publish objects into a repository on this disk; reuse it.
from reconciler.sources.notes import _copy_objects, _local_remote_path, _ref_target
from reconciler.sources.remote import AuthenticationFailed, Callbacks, ensure_network_timeouts, git_error, redact_url

PIN_PREFIX = PINS  # the legacy project's; the mirror fetches this namespace and PROJECT_REFS (sources.git)
PIN_SCHEMA = "odooops/pin/v1"
PIN_FILE = "pin.json"


def pin_ref(env: str, *, prefix: str = PIN_PREFIX) -> str:
    return prefix + env


def _pin_refs(repo: pygit2.Repository, targets: dict[str, str] | None = None, *,
              prefix: str = PIN_PREFIX) -> dict[str, str]:
    """ref name -> target of every pin under `prefix`: one listing of the repository's references (or of
    `targets`, a listing the caller already made: GitSource.ref_targets())."""
    if targets is not None:
        return {name: target for name, target in targets.items() if name.startswith(prefix)}
    return {r.name: str(r.target) for r in repo.listall_reference_objects()
            if r.name.startswith(prefix) and isinstance(r.target, pygit2.Oid)}


def pins_key(repo: pygit2.Repository, targets: dict[str, str] | None = None, *,
             prefix: str = PIN_PREFIX) -> tuple[tuple[str, str], ...]:
    """Changes whenever a pin under `prefix` is written, moved or removed (part of the plan memo key)."""
    return tuple(sorted(_pin_refs(repo, targets, prefix=prefix).items()))


def _commit_info(repo: pygit2.Repository, commit: str) -> tuple[int, str | None] | None:
    obj = repo.get(commit)
    if not isinstance(obj, pygit2.Commit):
        return None
    try:
        entry = obj.tree[CONFIG_FILE]
        blob = str(entry.id) if entry.type_str == "blob" else None
    except KeyError:
        blob = None
    return obj.commit_time, blob


def parse_pin(data: bytes, env: str) -> Pin | None:
    """A pin from its blob; None when the blob is not a pin for env (never trusted blindly)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("env") != env:
        return None
    commit, head = doc.get("commit"), doc.get("branch_head")
    if not (isinstance(commit, str) and len(commit) == 40 and isinstance(head, str) and len(head) == 40):
        return None
    return Pin(env=env, commit=commit, branch_head=head, reason=str(doc.get("reason") or ""),
               actor=str(doc.get("actor") or ""), created_at=float(doc.get("created_at") or 0))


def read_pins(repo: pygit2.Repository, targets: dict[str, str] | None = None, *,
              prefix: str = PIN_PREFIX) -> dict[str, Pin]:
    """env -> pin of every pin under `prefix` (env: the ref minus the prefix), with the pinned commit's time and
    `.odooops.yaml` blob filled in.

    A pin whose commit is not in the repository (not fetched yet, or garbage) is skipped: the
    environment then simply follows its branch."""
    out: dict[str, Pin] = {}
    for name, target in _pin_refs(repo, targets, prefix=prefix).items():
        env = name[len(prefix):]
        blob = _pin_blob(repo, target)
        pin = parse_pin(blob.data, env) if blob is not None else None
        info = _commit_info(repo, pin.commit) if pin is not None else None
        if pin is None or info is None:
            continue
        out[env] = Pin(**{**pin.__dict__, "commit_time": info[0], "config_blob": info[1]})
    return out


def _pin_blob(repo: pygit2.Repository, target: str) -> pygit2.Blob | None:
    obj = repo.get(target)
    if isinstance(obj, pygit2.Commit):
        try:
            obj = repo[obj.tree[PIN_FILE].id]
        except KeyError:
            return None
    return obj if isinstance(obj, pygit2.Blob) else None


def pin_document(pin: Pin) -> dict[str, Any]:
    return {"schema": PIN_SCHEMA, "env": pin.env, "commit": pin.commit, "branch_head": pin.branch_head,
            "reason": pin.reason, "actor": pin.actor, "created_at": pin.created_at}


def write_pin(repo: pygit2.Repository, env: str, commit: str, branch_head: str, *, reason: str,
              actor: str, now: float | None = None,
              publish: Callable[[str], None] | None = None, prefix: str = PIN_PREFIX) -> Pin:
    """Point <prefix><env> (refs/odooops/pins/<env>) at a new pin commit (replacing any earlier pin of env).

    With `publish`, the pin commit is handed to it (to push it to the remote) before the local ref
    moves: a mirror follows the remote's pins, so it must never hold one the remote lacks."""
    if _commit_info(repo, commit) is None:
        raise OdooOpsError("PIN_COMMIT_NOT_FOUND", f"cannot pin {env} to {commit}: no such commit in {repo.path}",
                           "pass a commit of the project's repository (git log --oneline on its branch)",
                           {"env": env, "commit": commit})
    pin = Pin(env=env, commit=commit, branch_head=branch_head, reason=reason, actor=actor,
              created_at=round(time.time() if now is None else now, 3))
    text = json.dumps(pin_document(pin), sort_keys=True, separators=(",", ":")) + "\n"
    builder = repo.TreeBuilder()
    builder.insert(PIN_FILE, repo.create_blob(text.encode()), pygit2.enums.FileMode.BLOB)
    ref = pin_ref(env, prefix=prefix)
    previous = repo.references.get(ref)
    parents = [previous.target] if previous is not None and isinstance(repo.get(previous.target), pygit2.Commit) \
        else []
    # Authored as the acting user; the e-mail is not known here, the platform's is used.
    author = pygit2.Signature(actor or "OdooOps", "odooops@localhost")
    message = f"odooops: pin {env} to {commit[:12]} (branch head {branch_head[:12]})\n\n{reason}\n"
    oid = repo.create_commit(None, author, author, message, builder.write(), parents)
    if publish is not None:
        publish(str(oid))
    repo.references.create(ref, oid, force=True)
    return pin


def delete_pin(repo: pygit2.Repository, env: str, *, prefix: str = PIN_PREFIX) -> bool:
    """Remove env's pin under `prefix`; False when there was none."""
    ref = repo.references.get(pin_ref(env, prefix=prefix))
    if ref is None:
        return False
    ref.delete()
    return True


def publish_ref(repo: pygit2.Repository, remote_url: str, ref: str, target: str | None, *,
                expected: Iterable[str | None] | None = None, force: bool = False) -> None:
    """Make the remote's `ref` point at `target` (None deletes it).

    Without `force` the remote only accepts a fast-forward (a smart server checks it; for a
    repository on this disk `expected` is the compare-and-swap the caller verified against)."""
    ensure_network_timeouts()
    path = _local_remote_path(remote_url)
    if path is not None:
        try:
            remote = pygit2.Repository(path, RepositoryOpenFlag.NO_SEARCH)
        except pygit2.GitError as exc:
            raise git_error(OSError(f"could not find repository at {path}"), path, "push") from exc
        if target is not None:
            _copy_objects(repo, remote, target)
        allowed = set(expected) if expected is not None else None
        with remote.transaction() as txn:
            txn.lock_ref(ref)
            current = _ref_target(remote, ref)
            if allowed is not None and current not in allowed:
                raise OdooOpsError(
                    "REMOTE_REF_MOVED", f"{ref} on {redact_url(remote_url)} moved to {current} meanwhile",
                    "re-run the command: it re-reads the remote first", {"ref": ref, "remote_target": current})
            if target is None:
                if current is not None:
                    txn.remove(ref)
            elif current != target:
                txn.set_target(ref, target, message="odooops: publish")
        return
    # A smart push needs a local ref as its source: a private one, removed afterwards.
    spec = f":{ref}"
    tmp = None
    if target is not None:
        tmp = f"refs/odooops-push/{ref.replace('/', '-')}-{int(time.time() * 1e6)}"
        repo.references.create(tmp, target, force=True)
        spec = f"{'+' if force else ''}{tmp}:{ref}"
    callbacks = Callbacks(remote_url)
    try:
        repo.remotes.create_anonymous(remote_url).push([spec], callbacks=callbacks)
    except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
        low = str(exc).lower()
        if "fast" in low and "forward" in low:
            raise OdooOpsError("REMOTE_REF_MOVED", f"{redact_url(remote_url)} refused {ref}: {exc}",
                               "re-run the command: it re-reads the remote first", {"ref": ref}) from None
        raise git_error(exc, remote_url, "push") from None
    finally:
        if tmp is not None and repo.references.get(tmp) is not None:
            repo.references.delete(tmp)
    if callbacks.rejected:
        raise OdooOpsError("REMOTE_REF_REJECTED", f"{redact_url(remote_url)} refused {ref}: "
                           + "; ".join(callbacks.rejected.values()),
                           "check the server's hooks and branch protection for this ref, then retry",
                           {"ref": ref})


def push_pin(repo: pygit2.Repository, remote_url: str, env: str, *, prefix: str = PIN_PREFIX) -> None:
    """Publish env's pin under `prefix` (or its removal) to the remote; pins are replaced, never merged."""
    ref = pin_ref(env, prefix=prefix)
    publish_ref(repo, remote_url, ref, _ref_target(repo, ref), force=True)


def fetch_pins(repo: pygit2.Repository, remote_url: str, *, prefix: str = PIN_PREFIX) -> dict[str, str]:
    """Bring the remote's pins under `prefix` into a mirror (pins removed there are removed here); ref -> target."""
    ensure_network_timeouts()
    remote = repo.remotes.create_anonymous(remote_url)
    try:
        remote.fetch([f"+{prefix}*:{prefix}*"], callbacks=Callbacks(remote_url),
                     prune=pygit2.enums.FetchPrune.PRUNE, message="odooops: pins")
    except (pygit2.GitError, AuthenticationFailed, OSError) as exc:
        raise git_error(exc, remote_url, "fetch") from None
    return _pin_refs(repo, prefix=prefix)
