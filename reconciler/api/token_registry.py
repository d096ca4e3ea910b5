"""The server's record of tokens by id (jti): who holds them, who minted them, and which are revoked.

SQLite under the state directory (transactions make every change atomic; WAL keeps readers off the
writer's lock). Revocations are also held in memory, so checking a request costs a set lookup (and one
PRAGMA: the serves of a host, one per project, share the file and reload it when another one changed it)
and a revoked token is refused from the next request on, by every serve of the host, without a restart.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.api.auth import LEEWAY_S, MAX_TTL_S, Principal, unauthorized
from reconciler.api.errors import ApiError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    jti TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    issued_at REAL,
    expires_at REAL NOT NULL,
    origin TEXT NOT NULL,          -- api (POST /tokens), key-file (signed offline, recorded at first use), revocation
    created_by TEXT,               -- subject of the token that minted it (api)
    parent TEXT,                   -- jti of the token that minted it (api): revoked with it
    revoked_at REAL,
    revoked_by TEXT,
    projects TEXT                  -- the projects the token is limited to (space-separated), NULL: no limit
);
CREATE INDEX IF NOT EXISTS tokens_expiry ON tokens (expires_at);
CREATE INDEX IF NOT EXISTS tokens_parent ON tokens (parent);
"""
_COLUMNS = ("jti", "subject", "scopes", "issued_at", "expires_at", "origin", "created_by", "parent", "revoked_at",
            "revoked_by", "projects")


@dataclass(frozen=True)
class Revocation:
    """What DELETE /tokens/{id} did: the token and those it minted, directly or not."""

    id: str
    revoked: tuple[str, ...]
    revoked_at: float


class TokenRegistry:
    """Tokens by id; rows are kept until the token expires (a revoked one too: until then it must stay refused)."""

    def __init__(self, path: Path, max_ttl_s: float = MAX_TTL_S) -> None:
        self.path = path
        self.max_ttl_s = max_ttl_s
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # never briefly world-readable
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if not self._has_projects_column():
            # A registry from before tokens could be limited to projects: its tokens have no limit.
            try:
                self._db.execute("ALTER TABLE tokens ADD COLUMN projects TEXT")
            except sqlite3.OperationalError:
                if not self._has_projects_column():  # else another serve of the host added it meanwhile
                    raise
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._revoked: set[str] = set()
        self._version: int | None = None
        with self._lock:
            self._prune(time.time())
            self._reload()

    def _reload(self) -> None:
        """The in-memory sets from the file when another connection changed it: the serves of one host
        (one per project) share this registry, so a token revoked through one is refused by all of them
        from their next request on. PRAGMA data_version changes only with other connections' commits."""
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version:
            return
        rows = self._db.execute("SELECT jti, revoked_at FROM tokens").fetchall()
        self._known = {jti for jti, _ in rows}
        self._revoked = {jti for jti, revoked_at in rows if revoked_at is not None}
        self._version = version

    def _has_projects_column(self) -> bool:
        return "projects" in {row[1] for row in self._db.execute("PRAGMA table_info(tokens)")}

    def close(self) -> None:
        self._db.close()

    def _prune(self, now: float) -> None:
        gone = [r[0] for r in self._db.execute("SELECT jti FROM tokens WHERE expires_at + ? < ?", (LEEWAY_S, now))]
        if gone:
            self._db.execute("DELETE FROM tokens WHERE expires_at + ? < ?", (LEEWAY_S, now))
            self._known.difference_update(gone)
            self._revoked.difference_update(gone)

    def check(self, who: Principal) -> None:
        """401 TOKEN_REVOKED for a revoked token; a token the registry has not seen (signed offline with
        the key file) is recorded, so `token list` shows it and `token revoke` can name it."""
        with self._lock:
            self._reload()
        if who.jti in self._revoked:
            raise unauthorized("TOKEN_REVOKED", f"the bearer token {who.jti} was revoked")
        if who.jti not in self._known:
            self.record(who, origin="key-file")

    def record(self, who: Principal, *, origin: str = "api", created_by: str | None = None,
               parent: str | None = None) -> None:
        issued = who.claims.get("iat")
        projects = " ".join(who.projects) if who.projects is not None else None
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO tokens (jti, subject, scopes, issued_at, expires_at, origin, created_by, "
                "parent, projects) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (who.jti, who.subject, " ".join(sorted(who.scopes)), float(issued) if issued is not None else None,
                 who.expires_at, origin, created_by, parent, projects))
            self._known.add(who.jti)

    def get(self, jti: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM tokens WHERE jti = ?", (jti,)).fetchone()
        return _row(row, time.time()) if row else None

    def list(self, subject: str | None = None) -> list[dict[str, Any]]:
        """Every token not yet expired (revoked ones included), newest first; with subject only the ones
        that subject holds or minted."""
        now = time.time()
        query = f"SELECT {', '.join(_COLUMNS)} FROM tokens WHERE expires_at + ? >= ?"
        args: list[Any] = [LEEWAY_S, now]
        if subject is not None:
            query += " AND (subject = ? OR created_by = ?)"
            args += [subject, subject]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY issued_at DESC, jti", args).fetchall()
        return [_row(r, now) for r in rows]

    def revoke(self, jti: str, by: str, *, unknown_ok: bool = False) -> Revocation:
        """Revoke a token and every token it minted (and they minted). An id the registry never saw is
        refused (TOKEN_NOT_FOUND) unless unknown_ok (an admin revoking a key-file token not used yet):
        then it is remembered as revoked for the longest lifetime a token may have."""
        now = time.time()
        with self._lock:
            self._prune(now)
            exists = self._db.execute("SELECT 1 FROM tokens WHERE jti = ?", (jti,)).fetchone() is not None
            if not exists:
                if not unknown_ok:
                    raise ApiError("TOKEN_NOT_FOUND", f"no token {jti} on this server (or it has expired)",
                                   "odooops token list  # the ids of the tokens you may revoke", status=404)
                self._db.execute("INSERT INTO tokens (jti, subject, scopes, expires_at, origin) VALUES "
                                 "(?, '', '', ?, 'revocation')", (jti, now + self.max_ttl_s))
            family = [r[0] for r in self._db.execute(
                "WITH RECURSIVE fam(j) AS (SELECT ? UNION SELECT t.jti FROM tokens t JOIN fam ON t.parent = fam.j) "
                "SELECT j FROM fam", (jti,))]
            marks = ",".join("?" * len(family))
            self._db.execute(f"UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE revoked_at IS NULL AND "
                             f"jti IN ({marks})", (now, by, *family))
            self._known.update(family)
            self._revoked.update(family)
        return Revocation(jti, tuple(family), now)


def _row(row: tuple[Any, ...], now: float) -> dict[str, Any]:
    out = dict(zip(_COLUMNS, row, strict=True))
    out["id"] = out.pop("jti")
    out["scopes"] = out["scopes"].split()
    out["projects"] = out["projects"].split() if out["projects"] is not None else None
    out["state"] = "revoked" if out["revoked_at"] is not None else (
        "expired" if out["expires_at"] + LEEWAY_S < now else "active")
    return out
