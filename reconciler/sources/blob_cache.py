"""Cache of results computed from git blobs, keyed by blob id, in memory and in a sqlite file."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A blob id names immutable content, so an entry never goes stale; the compute function can
# change between releases, so callers put a version in the file name (config-v1.sqlite).
_SCHEMA = "CREATE TABLE IF NOT EXISTS blobs (oid TEXT PRIMARY KEY, value TEXT NOT NULL)"


class BlobCache:
    """get_or_compute(oid, compute) runs compute(blob bytes) once per blob id, ever.

    Values are stored as canonical JSON and every call returns a fresh dict, so a caller that
    mutates its result cannot corrupt the cache. The disk store is sqlite: each new entry is
    committed on its own (atomic, no explicit flush), other instances sharing the file see it
    on their next miss, and a corrupt file is discarded and rebuilt.
    """

    def __init__(self, path: Path | None, reader: Callable[[str], bytes] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reader = reader  # e.g. GitSource.read_blob; get_or_compute(read=...) overrides it
        self.hits = 0
        self.misses = 0
        self._mem: dict[str, str] = {}
        self._db: sqlite3.Connection | None = None
        self._loaded = False
        self._lock = threading.Lock()

    def get_or_compute(self, oid: str, compute: Callable[[bytes], dict[str, Any]],
                       read: Callable[[str], bytes] | None = None) -> dict[str, Any]:
        """The cached value for oid, else compute(read(oid)), stored before it is returned."""
        read = read or self.reader
        if read is None:
            raise TypeError("BlobCache needs a reader: BlobCache(path, reader=...) or read=...")
        with self._lock:
            if not self._loaded:
                self._load()
            text = self._mem.get(oid)
            if text is None:
                text = self._from_disk(oid)
            if text is not None:
                self.hits += 1
                cached: dict[str, Any] = json.loads(text)
                return cached
        # Compute outside the lock: it may be slow (YAML parsing) and must not block readers.
        value = compute(read(oid))
        if not isinstance(value, dict):
            raise TypeError(f"BlobCache values must be dicts, compute returned {type(value)}")
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self.misses += 1
            self._mem[oid] = text
            self._store(oid, text)
        stored: dict[str, Any] = json.loads(text)
        return stored

    def __contains__(self, oid: str) -> bool:
        with self._lock:
            if not self._loaded:
                self._load()
            return oid in self._mem or self._from_disk(oid) is not None

    def __len__(self) -> int:
        with self._lock:
            if not self._loaded:
                self._load()
            return len(self._mem)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- disk ----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                             check_same_thread=False)
        # WAL: readers never block the writer; NORMAL: a crash may lose the newest entries,
        # which only costs a recomputation, never a wrong value.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        return db

    def _load(self) -> None:
        self._loaded = True
        if self.path is None:
            return
        for attempt in (1, 2):
            try:
                self._db = self._connect()
                self._mem.update(self._db.execute("SELECT oid, value FROM blobs"))
                return
            except sqlite3.DatabaseError as exc:
                self._discard(exc)
                if attempt == 2:
                    log.warning("blob cache %s unusable (%s); caching in memory only",
                                self.path, exc)

    def _discard(self, exc: Exception) -> None:
        assert self.path is not None
        log.warning("discarding corrupt blob cache %s: %s", self.path, exc)
        if self._db is not None:
            self._db.close()
            self._db = None
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _from_disk(self, oid: str) -> str | None:
        """Another instance may have stored oid since we loaded: look before computing."""
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT value FROM blobs WHERE oid = ?", (oid,)).fetchone()
        except sqlite3.DatabaseError as exc:
            self._discard(exc)
            return None
        if row is None:
            return None
        text: str = row[0]
        self._mem[oid] = text
        return text

    def _store(self, oid: str, text: str) -> None:
        if self._db is None:
            return
        try:
            self._db.execute("INSERT OR IGNORE INTO blobs (oid, value) VALUES (?, ?)", (oid, text))
        except sqlite3.DatabaseError as exc:
            self._discard(exc)
