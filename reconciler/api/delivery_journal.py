"""Webhook deliveries already taken, on disk: a replayed delivery is acknowledged and ignored, after restarts too."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from reconciler.errors import OdooOpsError

DEFAULT_RETENTION = 7 * 24 * 3600.0  # GitHub lets people redeliver for 3 days, GitLab and Gitea retry less
PRUNE_EVERY = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    provider TEXT NOT NULL,
    delivery TEXT NOT NULL,
    digest TEXT NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (provider, delivery)
);
CREATE INDEX IF NOT EXISTS deliveries_by_digest ON deliveries (provider, digest);
CREATE INDEX IF NOT EXISTS deliveries_by_age ON deliveries (received);
"""


class Seen(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"  # this delivery id, or this exact signed body, was taken before
    CONFLICT = "conflict"  # this delivery id came before with another body


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class DeliveryJournal:
    """One SQLite table of (provider, delivery id, body digest, received at), kept for `retention`.

    The body digest is the key that matters: the delivery id header is not signed, so a captured
    body sent again under a new id is still the same signed body and is recognised by its digest.
    Each new delivery is committed (WAL, synchronous=FULL) before the daemon hears of it.
    """

    def __init__(self, path: Path, retention: float = DEFAULT_RETENTION,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.retention = retention
        self.clock = clock
        self._lock = threading.Lock()
        self._pruned_at = float("-inf")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # never readable by others
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise OdooOpsError("WEBHOOK_JOURNAL_UNREADABLE", f"the webhook delivery journal {path} cannot be "
                               f"opened: {exc}", f"move it aside (mv {path} {path}.broken) and restart; deliveries "
                               "taken before are then accepted once more, which only causes extra polls "
                               "unless one opens or closes a pull request within --webhook-max-age") from exc

    def record(self, provider: str, delivery: str, digest: str) -> Seen:
        """NEW (and written to disk) the first time; DUPLICATE or CONFLICT otherwise (nothing written)."""
        now = self.clock()
        with self._lock:
            if now - self._pruned_at >= PRUNE_EVERY:
                self._db.execute("DELETE FROM deliveries WHERE received < ?", (now - self.retention,))
                self._pruned_at = now
            row = self._db.execute("SELECT digest FROM deliveries WHERE provider = ? AND delivery = ?",
                                   (provider, delivery)).fetchone()
            if row is not None:
                return Seen.DUPLICATE if row[0] == digest else Seen.CONFLICT
            if self._db.execute("SELECT 1 FROM deliveries WHERE provider = ? AND digest = ? LIMIT 1",
                                (provider, digest)).fetchone() is not None:
                return Seen.DUPLICATE
            self._db.execute("INSERT INTO deliveries VALUES (?, ?, ?, ?)", (provider, delivery, digest, now))
            return Seen.NEW

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM deliveries").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
