"""The audit trail: an append-only JSON-lines log chained by HMAC-SHA256 with a key kept outside the
state directory, its head in a sidecar and, periodically, anchored outside the host (a Git ref)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from reconciler.core.audit_anchor import Anchor
from reconciler.errors import OdooOpsError
from reconciler.keyfiles import default_key_path, load_key
from reconciler.platform.atomic import write_atomic

log = logging.getLogger(__name__)

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


KEY_ENV = "ODOOOPS_AUDIT_KEY_FILE"
KEYED_MARKER = "audit.keyed"  # the first keyed entry after unkeyed (legacy) ones


def default_audit_key_file() -> Path:
    return default_key_path("keys.audit")


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _body(entry: dict[str, Any]) -> bytes:
    return _canonical({k: v for k, v in entry.items() if k != "hash"})


def entry_hash(entry: dict[str, Any]) -> str:
    """The unkeyed (legacy) digest: sha256 over the entry without its own hash; prev_hash is inside."""
    return hashlib.sha256(_body(entry)).hexdigest()


@dataclass(frozen=True)
class AuditKey:
    """The HMAC key of the chain; `id` (16 hex digits) names it in every keyed entry without revealing it."""

    secret: bytes
    path: Path | None = None

    @property
    def id(self) -> str:
        return hmac.new(self.secret, b"odooops audit key id", hashlib.sha256).hexdigest()[:16]

    def mac(self, entry: dict[str, Any]) -> str:
        return hmac.new(self.secret, _body(entry), hashlib.sha256).hexdigest()

    @classmethod
    def from_file(cls, path: Path, *, create: bool, outside: Iterable[Path] = ()) -> AuditKey:
        """The key in `path`; create=True makes a new one when the file is missing (0600, never replaced)."""
        return cls(load_key(path, what="AUDIT", env_var=KEY_ENV, create=create, outside=outside), path)


class AnchorStore(Protocol):
    """Somewhere the state directory's writers cannot rewrite (sources.audit_anchors: a Git ref)."""

    description: str

    def latest(self) -> Anchor | None: ...

    def record(self, seq: int, digest: str) -> Anchor: ...


def _verdict(status: str, entries: int, counts: tuple[int, int], anchor: Anchor | None, *,
             first_bad: int | None = None, reason: str = "") -> dict[str, Any]:
    """status: ok | tampered (exit 1) | unverifiable (exit 2); `message` is what `audit verify` prints."""
    legacy, keyed = counts
    out: dict[str, Any] = {"ok": status == "ok", "status": status, "entries": entries, "legacy_entries": legacy,
                           "keyed_entries": keyed, "anchor": anchor.to_json() if anchor else None}
    if status == "ok":
        where = f"; anchored at entry {anchor.seq} in {anchor.where}" if anchor else "; no anchor yet"
        out["message"] = (f"audit trail intact: {entries} entries ({keyed} keyed, {legacy} legacy unkeyed)"
                          + where)
        return out
    out["first_bad"] = first_bad
    out["reason"] = reason
    out["message"] = (f"audit trail TAMPERED: entry {first_bad} of {entries}: {reason}" if status == "tampered"
                      else f"audit trail CANNOT BE VERIFIED (entry {first_bad}): {reason}")
    return out


class AuditLog:
    """`<state>/audit/audit.jsonl` plus `audit.jsonl.head` ({seq, hash} of the last entry).

    With a key, every entry's `hash` is HMAC-SHA256 over the entry (its `prev_hash` included) and the
    entry names the key (`key_id`); without one (legacy) it is a plain SHA-256, which anyone who can
    write the file can recompute. A log that has unkeyed entries continues keyed after a marker entry
    (`audit.keyed`); once keyed, an unkeyed entry is tampering. `anchors` keeps the head outside."""

    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path, key: AuditKey | None = None, anchors: AnchorStore | None = None) -> None:
        self.path = path
        self.key = key
        self.anchors = anchors
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

    def is_keyed(self) -> bool:
        """Whether the log's newest entry is keyed (then a key is needed to append and to verify)."""
        last = self._last_line()
        return last is not None and "key_id" in last

    def _digest(self, entry: dict[str, Any]) -> str | None:
        if "key_id" not in entry:
            return entry_hash(entry)
        if self.key is None or entry.get("key_id") != self.key.id:
            return None
        return self.key.mac(entry)

    def _write(self, seq: int, prev: str, fields: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {"seq": seq, "time": round(time.time(), 6), **fields, "prev_hash": prev}
        if self.key is not None:
            entry["key_id"] = self.key.id
            entry["hash"] = self.key.mac(entry)
        else:
            entry["hash"] = entry_hash(entry)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, _canonical(entry) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._write_head(entry["seq"], entry["hash"])
        return entry

    def _seal(self, seq: int, prev: str) -> tuple[int, str]:
        # From here on the chain is keyed; the unkeyed entries before are checked as legacy, and this
        # entry's HMAC covers the last legacy hash, so they can no longer be rewritten either.
        marker = self._write(seq + 1, prev, {
            "actor": "odooops", "scopes": [], "action": KEYED_MARKER, "target": "audit",
            "arguments": {"legacy_entries": seq}, "result": "ok", "request_id": None})
        return marker["seq"], marker["hash"]

    def seal(self) -> bool:
        """Continue an unkeyed (legacy) log keyed now, with the marker entry; False when nothing to do.

        The server seals at start, so a keyed server's log never ends in unkeyed entries."""
        if self.key is None:
            return False
        with self._locked():
            last = self._last_line()
            if last is None or "key_id" in last:
                return False
            seq, prev = self._head()
            if (last.get("seq"), last.get("hash")) != (seq, prev):
                return False  # the head disagrees: leave it to verify() (and the next append's recovery)
            self._seal(seq, prev)
            return True

    def append(self, *, actor: str, scopes: Iterable[str], action: str, target: str,
               arguments: dict[str, Any] | None = None, result: Any = "ok", request_id: str | None = None,
               secrets: Iterable[str] = ()) -> dict[str, Any]:
        """Append one entry (fsync'd, then the sidecar head); returns it with its hash."""
        with self._locked():
            seq, prev = self._head()
            last = self._last_line()
            if last is not None and last.get("seq") == seq + 1 and last.get("prev_hash") == prev \
                    and last.get("hash") == self._digest(last):
                # A crash between the log's fsync and the head's: finish that append first.
                seq, prev = seq + 1, str(last["hash"])
                self._write_head(seq, prev)
            if last is not None and "key_id" in last and self.key is None:
                raise OdooOpsError("AUDIT_KEY_MISSING",
                                   f"the audit log {self.path} is keyed and no audit key was given",
                                   f"start odooops serve with --audit-key-file (or {KEY_ENV}) pointing at its key")
            if self.key is not None and last is not None and "key_id" not in last:
                seq, prev = self._seal(seq, prev)
            known = list(secrets)
            return self._write(seq + 1, prev, {
                "actor": actor, "scopes": sorted(scopes), "action": action, "target": target,
                "arguments": redact(arguments or {}, known), "result": redact(result, known),
                "request_id": request_id})

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

    def verify(self, *, check_anchor: bool = True) -> dict[str, Any]:
        """The chain (sequence, prev_hash, each entry's HMAC or legacy hash), the latest anchor, the head file.

        {"ok", "status": ok|tampered|unverifiable, "entries", "legacy_entries", "keyed_entries", "anchor",
        "message", and when not ok "first_bad" (1-based line) and "reason"}."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        total = len(lines)
        head_seq, head_hash = self._head()
        hashes: list[str] = []
        prev, expected, legacy, keyed = GENESIS, 1, 0, 0
        anchor: Anchor | None = None

        def bad(index: int, reason: str, status: str = "tampered") -> dict[str, Any]:
            return _verdict(status, total, (legacy, keyed), anchor, first_bad=index, reason=reason)

        for index, raw in enumerate(lines, start=1):
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                return bad(index, "not a JSON object")
            if entry.get("seq") != expected:
                return bad(index, f"sequence {entry.get('seq')} where {expected} was expected (inserted, deleted or "
                                  "reordered entry)")
            if entry.get("prev_hash") != prev:
                return bad(index, "prev_hash does not match the previous entry")
            kid = entry.get("key_id")
            if kid is None:
                if keyed:
                    return bad(index, "an unkeyed entry after keyed ones (the chain was recomputed without the key)")
                if entry.get("hash") != entry_hash(entry):
                    return bad(index, "the entry's content does not match its hash (edited)")
                legacy += 1
            else:
                if self.key is None:
                    return bad(index, "the entry is keyed (HMAC-SHA256) and no audit key was given: pass "
                                      f"--key-file or set {KEY_ENV}", "unverifiable")
                if kid != self.key.id:
                    if not keyed:
                        return bad(index, f"the entry was written with audit key {kid}, the key file holds key "
                                          f"{self.key.id} (wrong key file?)", "unverifiable")
                    return bad(index, f"the entry names audit key {kid}, the entries before it key {self.key.id}")
                if not hmac.compare_digest(str(entry.get("hash")), self.key.mac(entry)):
                    return bad(index, "the entry's HMAC does not match its content (edited, or the chain was "
                                      "recomputed without the key)")
                keyed += 1
            prev, expected = str(entry["hash"]), expected + 1
            hashes.append(prev)
        count = expected - 1
        if check_anchor and self.anchors is not None:
            try:
                anchor = self.anchors.latest()
            except OdooOpsError as exc:
                return bad(count + 1, f"the anchor in {self.anchors.description} cannot be read: {exc.message}",
                           "unverifiable")
            if anchor is not None:
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(anchor.anchored_at))
                if count < anchor.seq:
                    return bad(count + 1, f"the log ends at entry {count} but the anchor of {when} in {anchor.where} "
                                          f"records entry {anchor.seq} (truncated)")
                if hashes[anchor.seq - 1] != anchor.hash:
                    return bad(anchor.seq, f"entry {anchor.seq} is not the one anchored on {when} in {anchor.where} "
                                           "(the log was replaced)")
        if (count, prev) != (head_seq, head_hash):
            return bad(min(count, head_seq) + 1, f"the log ends at entry {count} but the head file records entry "
                                                 f"{head_seq} (truncated or replaced)")
        if self.key is not None and count and not keyed:
            return bad(1, f"the log holds {count} unkeyed entries and no keyed one: its keyed entries were "
                          "stripped and the chain recomputed, or no keyed server has continued it yet (odooops "
                          "serve seals a legacy log when it starts)", "unverifiable")
        return _verdict("ok", count, (legacy, keyed), anchor)

    def anchor(self) -> Anchor | None:
        """Record the current head in the anchor store when it moved (None without a store or entries).

        Only a chain that verifies is anchored, and never one shorter than the last anchor: anchoring a
        rewritten log would bless it."""
        if self.anchors is None:
            return None
        seq, digest = self._head()
        if seq == 0:
            return None
        result = self.verify()
        if not result["ok"]:
            raise OdooOpsError("AUDIT_NOT_ANCHORED", f"the audit log was not anchored: {result['message']}",
                               "investigate with odooops audit verify; the log or its anchor was changed",
                               {"verify": result})
        latest = result["anchor"]
        if latest is not None and (latest["seq"], latest["hash"]) == (seq, digest):
            return Anchor(**latest)
        return self.anchors.record(seq, digest)


class PeriodicAnchor:
    """A thread anchoring the audit log's head every `interval` seconds (and once at start)."""

    def __init__(self, audit: AuditLog, interval: float) -> None:
        self.audit = audit
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="odooops-audit-anchor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(grace)

    def _run(self) -> None:
        while True:
            try:
                self.audit.anchor()
            except OdooOpsError as exc:
                log.error("audit anchor: %s (%s)", exc.message, exc.code)
            except Exception:  # a broken remote must not end the thread
                log.exception("audit anchor failed")
            if self._stop.wait(self.interval):
                return
