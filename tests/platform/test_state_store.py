"""The per-environment state store: rows, generations, migration from state.json, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.platform.state_store import StateStore


def _old_file(path: Path, n: int) -> None:
    envs = {f"env-{i}": {"env": f"env-{i}", "state": "running", "updated_at": 1.0} for i in range(n)}
    path.write_text(json.dumps({"schema": "odooops/state/v1", "environments": envs}))


def _put(store: StateStore, name: str, doc: dict[str, Any]) -> None:
    store._update(name, lambda _prev: (doc, None))


def test_empty_store_reads_empty_without_creating_files(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    assert store.entries() == {} and store.stamp() == 0 and store.get("x") is None
    assert list(tmp_path.iterdir()) == []


def test_writes_bump_the_generation_and_incremental_reads_see_only_changes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    for name in ("c", "a", "b"):
        _put(store, name, {"env": name, "state": "running"})
    assert list(store.entries()) == ["a", "b", "c"]
    seen = store.stamp()
    store.set_state("b", "stopped")
    store.annotate("missing", x=1)  # no row: no write, no new generation
    store.forget("missing")
    generation, changed = store.changed_since(seen)
    assert generation == seen + 1 and list(changed) == ["b"] and changed["b"]["state"] == "stopped"
    store.forget("c")
    _, changed = store.changed_since(generation)
    assert changed == {"c": None}
    assert sorted(store.entries()) == ["a", "b"] and store.get("b") == store.entries()["b"]
    # another store object on the same file sees the same rows, and this one sees its writes
    other = StateStore(tmp_path / "state.json")
    assert other.entries() == store.entries()
    other.annotate("a", note="x")
    assert store.entries()["a"]["note"] == "x"


def test_entries_are_copies(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    _put(store, "a", {"env": "a", "settings": {"workers": 2}})
    store.entries()["a"]["settings"]["workers"] = 9
    assert store.entries()["a"]["settings"]["workers"] == 2


def test_files_are_private(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    _put(store, "a", {"env": "a"})
    files = list(tmp_path.glob("state.sqlite*"))
    assert files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_old_state_file_is_imported_once_and_renamed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _old_file(path, 5)
    store = StateStore(path)
    assert sorted(store.entries()) == [f"env-{i}" for i in range(5)]
    assert not path.exists() and (tmp_path / "state.json.migrated").exists()
    store.forget("env-0")
    # a state.json that shows up again later is not imported over newer rows
    _old_file(path, 5)
    assert "env-0" not in StateStore(path).entries()


class _FailingImport(StateStore):
    """Fails in the middle of the import transaction, after some rows went in."""

    def _import_rows(self, conn: sqlite3.Connection, envs: dict[str, Any], generation: int) -> None:
        super()._import_rows(conn, dict(list(envs.items())[:2]), generation)
        raise RuntimeError("crash during import")


class _KilledImport(StateStore):
    """The process dies after inserting the rows, before COMMIT."""

    def _import_rows(self, conn: sqlite3.Connection, envs: dict[str, Any], generation: int) -> None:
        super()._import_rows(conn, envs, generation)
        os._exit(3)


def _import_and_die(path: str) -> None:
    _KilledImport(Path(path)).entries()


def test_a_failed_import_leaves_a_state_the_next_open_repairs(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _old_file(path, 5)
    with pytest.raises(RuntimeError):
        _FailingImport(path).entries()
    assert path.exists()
    assert sorted(StateStore(path).entries()) == [f"env-{i}" for i in range(5)]
    assert not path.exists()


def test_a_killed_import_leaves_a_state_the_next_open_repairs(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _old_file(path, 50)
    child = multiprocessing.get_context("spawn").Process(target=_import_and_die, args=(str(path),))
    child.start()
    child.join(60)
    assert child.exitcode == 3 and path.exists()
    assert len(StateStore(path).entries()) == 50
    assert (tmp_path / "state.json.migrated").exists()


def test_a_corrupt_old_file_imports_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{torn")
    assert StateStore(path).entries() == {}


def _bump(prev: dict[str, Any] | None) -> tuple[dict[str, Any], None]:
    doc = prev or {"env": "counter", "n": 0}
    doc["n"] += 1
    return doc, None


def _writer(path: str, worker: int, rounds: int) -> None:
    store = StateStore(Path(path))

    errors: list[BaseException] = []

    def thread_body(t: int) -> None:
        try:
            for r in range(rounds):
                store._update("counter", _bump)
                store.annotate("counter", last=f"{worker}-{t}-{r}")
                _put(store, f"w{worker}-t{t}-{r}", {"env": "x"})
        except BaseException as exc:  # a thread's error must fail the process, not vanish
            errors.append(exc)

    threads = [threading.Thread(target=thread_body, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise SystemExit(f"writer {worker}: {errors[0]!r}")


def test_concurrent_writers_from_processes_and_threads_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    rounds = 25
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, rounds)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    entries = StateStore(path).entries()
    assert entries["counter"]["n"] == 4 * 2 * rounds
    assert len(entries) == 1 + 4 * 2 * rounds


def test_whole_store_read_and_write_keep_the_state_json_shape(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    _put(store, "a", {"env": "a"})
    _put(store, "b", {"env": "b"})
    data = store._read()
    assert data == {"schema": "odooops/state/v1", "environments": {"a": {"env": "a"}, "b": {"env": "b"}}}
    seen = store.stamp()
    del data["environments"]["a"]
    data["environments"]["c"] = {"env": "c"}
    store._write(data)
    assert sorted(store.entries()) == ["b", "c"]
    assert store.changed_since(seen)[1] == {"a": None, "c": {"env": "c"}}
    store._write(store._read())  # nothing differs: no new generation
    assert store.stamp() == seen + 1


def test_rows_parse_only_changed_rows_and_never_serve_a_stale_one(tmp_path: Path) -> None:
    """rows() keeps each parsed row until that row is written again, by anyone: a write through
    another StateStore (another thread's or process's) is seen at once, a forget drops the row."""
    store = StateStore(tmp_path / "state.json")
    other = StateStore(tmp_path / "state.json")
    for name in ("a", "b", "c"):
        _put(store, name, {"env": name, "state": "running", "commit": "1"})
    first = store.rows()[1]
    assert first == store.entries()
    _put(other, "a", {"env": "a", "state": "running", "commit": "2"})
    second = store.rows()[1]
    assert second["a"]["commit"] == "2" and second == store.entries()
    assert second["b"] is first["b"] and second["c"] is first["c"]  # unchanged rows: parsed once
    other.forget("b")
    other.set_state("c", "failed")
    third = store.rows()[1]
    assert set(third) == {"a", "c"} and third["c"]["state"] == "failed" and third == store.entries()
    _put(other, "b", {"env": "b", "state": "running", "commit": "3"})
    assert store.rows()[1]["b"]["commit"] == "3" and store.rows()[1] == other.entries()
