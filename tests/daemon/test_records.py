"""Records (the daemon's claims and closed requests): durable, atomic, and read from disk only when the
file changed, by this process or any other."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reconciler.controller.workqueue import Claims, Records


def test_reads_follow_every_writer_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "claims.json"
    mine = Claims(path)
    assert mine.all() == {}
    mine.claim({"feature-a": ("feature/a", "ephemeral")})
    assert mine.add({"feature-a": {"branch": "other"}}) is False  # kept: no rewrite
    stamp = path.stat().st_mtime_ns
    assert set(mine.all()) == {"feature-a"} and path.stat().st_mtime_ns == stamp

    # another process (or an operator) replaces the file: the next read sees it
    other = {"feature-a": {"branch": "feature/a"}, "pr-7": {"branch": "pull/7"}}
    tmp = tmp_path / "other.json"
    tmp.write_text(json.dumps(other))
    os.replace(tmp, path)
    assert set(mine.all()) == {"feature-a", "pr-7"}

    # what callers change in a result never reaches the cache or the file
    got = mine.all()
    got.pop("pr-7")
    assert set(mine.all()) == {"feature-a", "pr-7"}

    mine.release({"feature-a"})
    assert set(Records(path).all()) == {"pr-7"}  # a new instance (a restarted daemon) reads the same
    path.write_text("{not json")
    assert Records(path).all() == {} and mine.all() == {}
