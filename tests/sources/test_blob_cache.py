"""BlobCache: one computation per blob id across instances, corrupt files, fresh results."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.sources.blob_cache import BlobCache
from reconciler.sources.git import GitSource

from ._gitutil import commit_file, git


def test_computes_once_per_blob_across_instances(work_repo: Path, tmp_path: Path) -> None:
    git(work_repo, "checkout", "-q", "-b", "other")
    commit_file(work_repo, ".odooops.yaml", "version: 1\nodoo: {version: '18.0'}\n")
    git(work_repo, "checkout", "-q", "-b", "same-config-as-main", "main")
    source = GitSource(str(work_repo), tmp_path / "state")
    blobs = [h.config_blob for h in source.heads()]
    assert len(blobs) == 3 and len(set(blobs)) == 2  # two branches share one blob
    calls: list[bytes] = []

    def parse(data: bytes) -> dict:
        calls.append(data)
        return yaml.safe_load(data)

    path = tmp_path / "cache" / "config-v1.sqlite"
    first = BlobCache(path, reader=source.read_blob)
    second = BlobCache(path, reader=source.read_blob)
    # second computes main's config; first, already open, then finds it on disk.
    assert second.get_or_compute(blobs[0], parse)["version"] == 1
    values = [first.get_or_compute(b, parse) for b in blobs]
    assert values[1] == {"version": 1, "odoo": {"version": "18.0"}}
    assert len(calls) == 2 and (first.misses, first.hits) == (1, 2)
    # second sees what first stored, without computing again.
    assert [second.get_or_compute(b, parse) for b in blobs] == values
    assert len(calls) == 2
    third = BlobCache(path, reader=source.read_blob)
    assert [third.get_or_compute(b, parse) for b in blobs] == values
    assert (third.hits, third.misses, len(calls)) == (3, 0, 2)


def test_results_are_fresh_and_json_shaped(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "c.sqlite", reader=lambda oid: oid.encode())
    value = cache.get_or_compute("a" * 40, lambda data: {"t": (1, 2), "k": data.decode()})
    assert value == {"t": [1, 2], "k": "a" * 40}  # the same shape a later hit returns
    value["t"].append(3)
    assert cache.get_or_compute("a" * 40, lambda _: {}) == {"t": [1, 2], "k": "a" * 40}
    with pytest.raises(TypeError):
        cache.get_or_compute("b" * 40, lambda _: {"bad": object()})
    with pytest.raises(TypeError):
        cache.get_or_compute("c" * 40, lambda _: ["not", "a", "dict"])  # type: ignore[arg-type,return-value]
    assert "b" * 40 not in cache and len(cache) == 1


def test_memory_only_cache(tmp_path: Path) -> None:
    cache = BlobCache(None, reader=lambda oid: b"x")
    assert cache.get_or_compute("1" * 40, lambda d: {"d": d.decode()}) == {"d": "x"}
    assert cache.get_or_compute("1" * 40, lambda d: {}) == {"d": "x"}
    assert (cache.hits, cache.misses) == (1, 1)
    with pytest.raises(TypeError):
        BlobCache(None).get_or_compute("1" * 40, lambda d: {})


def test_corrupt_cache_file_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a sqlite database at all" * 100)
    cache = BlobCache(path, reader=lambda oid: b"")
    assert cache.get_or_compute("1" * 40, lambda _: {"ok": True}) == {"ok": True}
    cache.close()
    again = BlobCache(path, reader=lambda oid: b"")
    assert again.get_or_compute("1" * 40, lambda _: {"ok": False}) == {"ok": True}
    assert again.hits == 1
