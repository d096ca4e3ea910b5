"""The audit trail: an append-only, hash-chained JSON-lines log whose head is also kept in a sidecar."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from reconciler.atomic import write_atomic

GENESIS = "0" * 64
REDACTED = "[redacted]"
MIN_SCRUB = 8
# Argument names whose values never reach the log (the command of an exec is kept, its stdin is not).
SECRET_KEYS = ("value", "password", "secret", "token", "stdin", "key", "credential", "passphrase")


def redact(value: Any, known: Iterable[str] = ()) -> Any:
    """A copy of value with secret-named keys and any known secret string replaced.

    Values shorter than MIN_SCRUB are not searched for: replacing every "e" would destroy the log
    and hide nothing (such a value is not a secret worth the name)."""
    known = sorted({k for k in known if k and len(k) >= MIN_SCRUB}, key=len, reverse=True)
    if isinstance(value, dict):
        return {k: REDACTED if any(s in str(k).lower() for s in SECRET_KEYS) and v is not None
                else redact(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, known) for v in value]
    if isinstance(value, str):
        for secret in known:
            value = value.replace(secret, REDACTED)
    return value


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 over the entry without its own hash; prev_hash is inside, which chains the entries."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


class AuditLog:
    """`<state>/audit/audit.jsonl` plus `audit.jsonl.head` ({seq, hash} of the last entry)."""

    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head_path = path.with_name(path.name + ".head")
        self.lock_path = path.with_name(path.name + ".lock")
        with self._guard:
            self._thread_lock = self._locks.setdefault(str(path.resolve()), threading.Lock())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A thread lock for this process, flock for other processes (a CLI writing token events).
        with self._thread_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _head(self) -> tuple[int, str]:
        try:
            doc = json.loads(self.head_path.read_text(encoding="utf-8"))
            return int(doc["seq"]), str(doc["hash"])
        except FileNotFoundError:
            return 0, GENESIS

    def _write_head(self, seq: int, digest: str) -> None:
        write_atomic(self.head_path, json.dumps({"seq": seq, "hash": digest}), dir_mode=None)

    def _last_line(self) -> dict[str, Any] | None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                end = fh.tell()
                pos = max(0, end - 65536)
                fh.seek(pos)
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return None
        for raw in reversed(lines):
            if raw.strip():
                try:
                    return dict(json.loads(raw))
                except ValueError:
                    return None
        return None

    def append(self, *, actor: str, scopes: Iterable[str], action: str, target: str,
               arguments: dict[str, Any] | None = None, result: Any = "ok", request_id: str | None = None,
               secrets: Iterable[str] = ()) -> dict[str, Any]:
        """Append one entry (fsync'd, then the sidecar head); returns it with its hash."""
        with self._locked():
            seq, prev = self._head()
            last = self._last_line()
            if last is not None and last.get("seq") == seq + 1 and last.get("prev_hash") == prev \
                    and last.get("hash") == entry_hash(last):
                # A crash between the log's fsync and the head's: finish that append first.
                seq, prev = seq + 1, str(last["hash"])
                self._write_head(seq, prev)
            known = list(secrets)
            entry: dict[str, Any] = {
                "seq": seq + 1, "time": round(time.time(), 6), "actor": actor, "scopes": sorted(scopes),
                "action": action, "target": target, "arguments": redact(arguments or {}, known),
                "result": redact(result, known), "request_id": request_id, "prev_hash": prev,
            }
            entry["hash"] = entry_hash(entry)
            line = _canonical(entry) + b"\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_head(entry["seq"], entry["hash"])
            return entry

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest `limit` entries (all when None), oldest first; unparsable lines are skipped."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for raw in lines[-limit:] if limit else lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(raw))
        return out

    def verify(self) -> dict[str, Any]:
        """{"ok", "entries", "first_bad"?, "reason"?}: any edited, inserted, deleted, reordered or
        truncated entry breaks the chain or disagrees with the sidecar head."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        head_seq, head_hash = self._head()
        prev, expected = GENESIS, 1
        for index, raw in enumerate(lines, start=1):
            try:
                entry = json.loads(raw)
                ok_shape = isinstance(entry, dict)
            except ValueError:
                ok_shape = False
            if not ok_shape:
                return {"ok": False, "entries": len(lines), "first_bad": index, "reason": "not a JSON object"}
            if entry.get("seq") != expected:
                return {"ok": False, "entries": len(lines), "first_bad": index,
                        "reason": f"sequence {entry.get('seq')} where {expected} was expected (inserted, "
                                  "deleted or reordered entry)"}
            if entry.get("prev_hash") != prev:
                return {"ok": False, "entries": len(lines), "first_bad": index,
                        "reason": "prev_hash does not match the previous entry"}
            if entry.get("hash") != entry_hash(entry):
                return {"ok": False, "entries": len(lines), "first_bad": index,
                        "reason": "the entry's content does not match its hash (edited)"}
            prev, expected = str(entry["hash"]), expected + 1
        count = expected - 1
        if (count, prev) != (head_seq, head_hash):
            return {"ok": False, "entries": len(lines), "first_bad": min(count, head_seq) + 1,
                    "reason": f"the log ends at entry {count} but the head file records entry {head_seq} "
                              "(truncated or replaced)"}
        return {"ok": True, "entries": count}
