"""The local record of what was applied, per project: one SQLite row per environment."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.core.model import EnvSpec, ObservedEnv

SCHEMA = "odooops/state/v1"
DB_NAME = "state.sqlite"
MIGRATED_SUFFIX = ".migrated"

_DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # doc NULL is a tombstone: a forgotten environment stays visible to incremental readers.
    "CREATE TABLE IF NOT EXISTS environments (name TEXT PRIMARY KEY, doc TEXT, generation INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS environments_generation ON environments (generation)",
)


class StateStore:
    """The environments this host applied, with their settings: `state.sqlite` (WAL) beside `path`.

    `path` is the former `<state_dir>/state.json`; that file is imported once, in one transaction,
    on first open and then renamed to `state.json.migrated`. Every write bumps a store-wide
    generation (`stamp()`), so readers cache and re-read only the rows changed since.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db_path = path.with_name(DB_NAME)
        self._local = threading.local()
        self._cache_lock = threading.Lock()
        self._cache_generation = -1
        self._cache: dict[str, str] = {}
        self._text_generation = -1
        self._text = "{}"
        self._rows_generation = -1
        self._rows: dict[str, tuple[str, dict[str, Any]]] = {}  # name -> (row text, parsed entry)

    # -- connection and migration ---------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        conn = self._open()
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._create()
        try:
            conn = self._connect()
        except sqlite3.OperationalError:
            raise  # busy or locked: not corrupt (OperationalError is a DatabaseError too)
        except sqlite3.DatabaseError:
            # A corrupt database must not stop planning: keep it aside and rebuild from notes.
            self.db_path.replace(self.db_path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}"))
            self._create()
            conn = self._connect()
        self._migrate(conn)
        return conn

    def _create(self) -> None:
        """A new database appears whole: built (0600, WAL, tables) under a temporary name, then
        linked into place, so processes opening it together never see it half made. SQLite gives
        the -wal and -shm files the database's mode."""
        if self.db_path.exists():
            return
        tmp = self.db_path.with_name(f".{DB_NAME}.{os.getpid()}.{threading.get_ident()}")
        os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600))
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                for statement in _DDL:
                    conn.execute(statement)
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, self.db_path)
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _DDL:
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Import the old JSON file once; a crash before COMMIT leaves it in place for the next open."""
        if not self.path.exists():
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM meta WHERE key = 'migrated'").fetchone()
            if done is None:
                envs = _read_json_state(self.path)
                generation = self._next_generation(conn)
                self._import_rows(conn, envs, generation)
                conn.execute("INSERT INTO meta (key, value) VALUES ('migrated', ?)", (str(time.time()),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # After COMMIT the import is done whatever happens next: a crash here only leaves the
        # rename for the next open, which skips the import because of the meta row.
        with contextlib.suppress(FileNotFoundError):  # another process renamed it first
            self.path.replace(self.path.with_name(self.path.name + MIGRATED_SUFFIX))

    def _import_rows(self, conn: sqlite3.Connection, envs: dict[str, Any], generation: int) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO environments (name, doc, generation) VALUES (?, ?, ?)",
            [(name, _dump(e), generation) for name, e in envs.items() if isinstance(e, dict)])

    @staticmethod
    def _next_generation(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        generation = (int(row[0]) if row else 0) + 1
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', ?)", (str(generation),))
        return generation

    def _update(self, name: str, change: Any) -> Any:
        """Read-modify-write one row under BEGIN IMMEDIATE: `change(old entry or None)` returns
        (new entry, or None to delete, or ... to leave it, result)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT doc FROM environments WHERE name = ?", (name,)).fetchone()
            previous = json.loads(row[0]) if row and row[0] is not None else None
            new, result = change(previous)
            if new is not ...:
                if new is None and previous is None:
                    conn.execute("COMMIT")
                    return result
                generation = self._next_generation(conn)
                conn.execute("INSERT OR REPLACE INTO environments (name, doc, generation) VALUES (?, ?, ?)",
                             (name, None if new is None else _dump(new), generation))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    # -- reading ------------------------------------------------------------------------------

    def _absent(self) -> bool:
        """Nothing recorded yet: reads answer empty without creating files."""
        return not self.db_path.exists() and not self.path.exists()

    def stamp(self) -> int:
        """The store-wide generation: it changes whenever any environment's entry changes."""
        if self._absent():
            return 0
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def changed_since(self, generation: int) -> tuple[int, dict[str, dict[str, Any] | None]]:
        """(current generation, {name: entry, or None when forgotten}) for rows written after
        `generation`; one read transaction, so the pair is consistent."""
        if self._absent():
            return 0, {}
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            current = self.stamp()
            rows = conn.execute("SELECT name, doc FROM environments WHERE generation > ?",
                                (generation,)).fetchall()
        finally:
            conn.execute("COMMIT")
        return current, {name: (json.loads(doc) if doc is not None else None) for name, doc in rows}

    def _raw_entries(self) -> dict[str, str]:
        if self._absent():
            return {}
        conn = self._conn()
        with self._cache_lock:
            conn.execute("BEGIN")
            try:
                current = self.stamp()
                if current != self._cache_generation:
                    rows = conn.execute("SELECT name, doc FROM environments WHERE generation > ?",
                                        (self._cache_generation,)).fetchall()
                    for name, doc in rows:
                        if doc is None:
                            self._cache.pop(name, None)
                        else:
                            self._cache[name] = doc
                    self._cache_generation = current
            finally:
                conn.execute("COMMIT")
            return self._cache

    def entries(self) -> dict[str, dict[str, Any]]:
        # One parse of one document, as the JSON file was: fresh dicts every call (callers may
        # change them), at the cost of a join that is only redone when a row changed.
        text = self._entries_text()
        result: dict[str, dict[str, Any]] = json.loads(text)
        return result

    def rows(self) -> tuple[int, dict[str, dict[str, Any]]]:
        """(generation, every entry), each entry parsed once per change of its row (a re-plan after
        one apply parses one row, not all of them). The entries are shared between calls: read them,
        never change them (entries() gives copies to change)."""
        raw = self._raw_entries()
        with self._cache_lock:
            if self._rows_generation != self._cache_generation:
                before, rows = self._rows, {}
                for name, doc in raw.items():
                    old = before.get(name)
                    # The cache keeps a row's text object until the row is written again.
                    rows[name] = old if old is not None and (old[0] is doc or old[0] == doc) else (doc, json.loads(doc))
                self._rows, self._rows_generation = rows, self._cache_generation
            return self._rows_generation, {name: entry for name, (_doc, entry) in self._rows.items()}

    def _entries_text(self) -> str:
        raw = self._raw_entries()
        with self._cache_lock:
            if self._text_generation != self._cache_generation or not raw:
                self._text = "{" + ",".join(f"{json.dumps(name)}:{doc}" for name, doc in sorted(raw.items())) + "}"
                self._text_generation = self._cache_generation
            return self._text

    def get(self, name: str) -> dict[str, Any] | None:
        if self._absent():
            return None
        row = self._conn().execute("SELECT doc FROM environments WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row and row[0] is not None else None

    def load(self) -> dict[str, ObservedEnv]:
        return {name: observed_from_entry(e, "state") for name, e in self.entries().items()
                if e.get("state") not in ("destroyed", "blocked")}

    def _read(self) -> dict[str, Any]:
        """The whole store in the former state.json shape (for tools and tests that edit it)."""
        return {"schema": SCHEMA, "environments": self.entries()}

    def _write(self, data: dict[str, Any]) -> None:
        """Replace the whole store with `data` (the state.json shape) in one transaction; only
        rows that differ are written."""
        wanted = {name: _dump(e) for name, e in data["environments"].items()}
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = dict(conn.execute("SELECT name, doc FROM environments WHERE doc IS NOT NULL").fetchall())
            changed: list[tuple[str, str | None]] = [(n, doc) for n, doc in wanted.items() if current.get(n) != doc]
            changed += [(name, None) for name in current if name not in wanted]
            if changed:
                generation = self._next_generation(conn)
                conn.executemany("INSERT OR REPLACE INTO environments (name, doc, generation) VALUES (?, ?, ?)",
                                 [(name, doc, generation) for name, doc in changed])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- writing ------------------------------------------------------------------------------

    def record(self, spec: EnvSpec, state: str = "running", deployed_at: float | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write what now runs for an environment; returns the entry (also used as the note body)."""
        def change(previous: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
            previous = previous or {}
            when = deployed_at
            if when is None:
                same_commit = previous.get("commit") == spec.commit
                when = previous.get("deployed_at") if same_commit else time.time()
            entry = entry_for(spec, state, when)
            if isinstance(previous.get("verified_backup"), dict):
                entry["verified_backup"] = previous["verified_backup"]  # a fact of the data, not of the deploy
            entry.update(extra or {})
            return entry, entry
        result: dict[str, Any] = self._update(spec.name, change)
        return result

    def set_state(self, name: str, state: str, **fields: Any) -> None:
        def change(previous: dict[str, Any] | None) -> tuple[Any, None]:
            if previous is None:
                return ..., None
            previous.update(state=state, updated_at=time.time(), **fields)
            return previous, None
        self._update(name, change)

    def annotate(self, name: str, **fields: Any) -> None:
        """Add facts to an entry without making it a newer observation (updated_at and state stay)."""
        def change(previous: dict[str, Any] | None) -> tuple[Any, None]:
            if previous is None:
                return ..., None
            previous.update(**fields)
            return previous, None
        self._update(name, change)

    def forget(self, name: str) -> None:
        self._update(name, lambda previous: (None, None))


def _retry_busy(run: Callable[[], object], deadline_s: float = 30.0) -> None:
    """Switching to WAL can report "locked" without waiting on the busy timeout while another
    process opens the same new database: retry for a while."""
    until = time.monotonic() + deadline_s
    while True:
        try:
            run()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > until:
                raise
            time.sleep(0.01)


def _dump(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def _read_json_state(path: Path) -> dict[str, Any]:
    """The environments of a pre-SQLite state.json; a torn or corrupt file imports as empty."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("environments"), dict):
        return {}
    return dict(data["environments"])


def entry_for(spec: EnvSpec, state: str, deployed_at: float | None) -> dict[str, Any]:
    return {
        "env": spec.name, "branch": spec.branch, "tier": str(spec.tier), "commit": spec.commit,
        "spec_digest": spec.spec_digest, "settings": spec.settings, "state": state,
        "deployed_at": deployed_at, "updated_at": time.time(),
    }


def observed_from_entry(e: dict[str, Any], source: str) -> ObservedEnv:
    return ObservedEnv(
        name=str(e["env"]), branch=str(e.get("branch", "")), tier=str(e.get("tier", "")),
        commit=str(e.get("commit", "")), spec_digest=str(e.get("spec_digest", "")),
        settings=dict(e.get("settings") or {}), state=str(e.get("state", "running")),
        deployed_at=e.get("deployed_at"), source=source,
        backup=dict(e["verified_backup"]) if isinstance(e.get("verified_backup"), dict) else None,
    )


def merge_observed(*sources: dict[str, dict[str, Any]],
                   memo: dict[str, tuple[dict[str, Any], str, ObservedEnv]] | None = None) -> dict[str, ObservedEnv]:
    """Latest entry per environment across the state file and notes; destroyed and blocked ones drop out.

    `memo` (owned by a long-lived caller whose entries are shared, unchanging objects: StateStore.rows()):
    the ObservedEnv made of each entry object, reused while the same entry object wins."""
    best: dict[str, tuple[float, dict[str, Any], str]] = {}
    for index, entries in enumerate(sources):
        for name, e in entries.items():
            stamp = float(e.get("updated_at") or 0)
            if name not in best or stamp > best[name][0]:
                best[name] = (stamp, e, "state" if index == 0 else "notes")
    out: dict[str, ObservedEnv] = {}
    used: dict[str, tuple[dict[str, Any], str, ObservedEnv]] = {}
    for name, (_, e, src) in sorted(best.items()):
        if e.get("state") in ("destroyed", "blocked"):
            continue
        hit = memo.get(name) if memo is not None else None
        if hit is None or hit[0] is not e or hit[1] != src:
            hit = (e, src, observed_from_entry(e, src))
        used[name] = hit
        out[name] = hit[2]
    if memo is not None:
        memo.clear()
        memo.update(used)
    return out
