"""Benchmark: heads() + config blobs via BlobCache for 1,000 branches, against git for-each-ref | cat-file."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pygit2
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.sources.blob_cache import BlobCache  # noqa: E402
from reconciler.sources.git import GitSource  # noqa: E402

GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
LAYOUT_VERSION = 1  # bump when the generated repository changes


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n" % len(raw) + raw + b"\n"


def _config(i: int) -> str:
    return (
        "version: 1\nodoo:\n  version: \"19.0\"\naddons:\n  paths: [addons]\n"
        f"modules: [sale_management, acme_sale, feature_{i:04d}]\n"
        f"tests:\n  tags: \"/feature_{i:04d}\"\n"
        "environments:\n"
        f"  feature-{i:04d}:\n    workers: {i % 8 + 1}\n"
        f"    resource_limits: {{cpu: \"{500 + i}m\", memory: \"{1 + i % 4}Gi\"}}\n"
    )


def fast_import_stream(branches: int) -> bytes:
    """main with a small addon, then one commit per branch changing only .odooops.yaml."""
    when = 1_735_722_000
    who = b"committer Bench <bench@odooops.dev> %d +0000\n"
    out = [b"commit refs/heads/main\nmark :1\n", who % when, _data("initial"),
           b"M 100644 inline README.md\n", _data("# bench\n"),
           b"M 100644 inline addons/acme_sale/__manifest__.py\n",
           _data('{"name": "ACME", "version": "19.0.1.0.0", "depends": ["sale"]}\n'),
           b"M 100644 inline .odooops.yaml\n", _data(_config(0)), b"\n"]
    for i in range(1, branches):
        out += [b"commit refs/heads/feature/branch-%04d\n" % i, who % (when + i),
                _data(f"feature {i}"), b"from :1\n",
                b"M 100644 inline .odooops.yaml\n", _data(_config(i)), b"\n"]
    return b"".join(out)


def prepare(work: Path, branches: int) -> tuple[str, Path, Path]:
    """Build (once) the source repo, its mirror and a warm blob cache under work/."""
    base = work / f"git_refs-v{LAYOUT_VERSION}-{branches}"
    source, state, cache = base / "source.git", base / "state", base / "config-v1.sqlite"
    if not (base / "ready").exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", str(source)], check=True, env=GIT_ENV)
        subprocess.run(["git", "fast-import", "--quiet"], cwd=source, env=GIT_ENV, check=True,
                       input=fast_import_stream(branches))
        (base / "ready").write_text("ok\n")
    url = source.as_uri()
    src = GitSource(url, state)
    src.refresh()
    warm = BlobCache(cache, reader=src.read_blob)
    for head in src.heads():
        if head.config_blob:
            warm.get_or_compute(head.config_blob, parse)
    warm.close()
    return url, state, cache


def parse(data: bytes) -> dict:
    return yaml.safe_load(data)


def run_odooops(url: str, state: Path, cache_path: Path) -> int:
    """A fresh GitSource and BlobCache (as after a daemon restart), warm OS caches."""
    src = GitSource(url, state)
    cache = BlobCache(cache_path, reader=src.read_blob)
    configs = [cache.get_or_compute(h.config_blob, parse) for h in src.heads() if h.config_blob]
    assert cache.misses == 0, "the on-disk cache should be warm"
    cache.close()
    return len(configs)


def make_long_lived(url: str, state: Path, cache_path: Path) -> Callable[[], int]:
    """The daemon's steady state: the same GitSource and BlobCache polled again."""
    src = GitSource(url, state)
    cache = BlobCache(cache_path, reader=src.read_blob)

    def run() -> int:
        return len([cache.get_or_compute(h.config_blob, parse)
                    for h in src.heads() if h.config_blob])

    return run


def run_git_cli(repo: Path) -> int:
    """Baseline: git for-each-ref | git cat-file --batch, blobs read back into Python."""
    refs = subprocess.Popen(
        ["git", "for-each-ref", "--format=%(objectname):.odooops.yaml",
         "refs/heads", "refs/pull", "refs/merge-requests"],
        cwd=repo, env=GIT_ENV, stdout=subprocess.PIPE)
    cat = subprocess.Popen(["git", "cat-file", "--batch"], cwd=repo, env=GIT_ENV,
                           stdin=refs.stdout, stdout=subprocess.PIPE)
    assert refs.stdout is not None
    refs.stdout.close()
    out, _ = cat.communicate()
    refs.wait()
    blobs, pos = 0, 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if header[-1] == b"missing":
            continue
        pos += int(header[2]) + 1
        blobs += 1
    return blobs


def measure(fn: Callable[[], int], runs: int) -> dict[str, float]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[max(0, math.ceil(0.95 * runs) - 1)], 2),
        "min_ms": round(times[0], 2),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--branches", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", type=Path, default=ROOT / ".work" / "bench")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)

    url, state, cache = prepare(args.work, args.branches)
    mirror = GitSource(url, state).path
    counts = {run_odooops(url, state, cache), run_git_cli(mirror)}
    assert counts == {args.branches}, counts
    results = {
        "heads_only_fresh": measure(lambda: len(GitSource(url, state).heads()), args.runs),
        "a_odooops_fresh": measure(lambda: run_odooops(url, state, cache), args.runs),
        "a_odooops_long_lived": measure(make_long_lived(url, state, cache), args.runs),
        "b_git_cli": measure(lambda: run_git_cli(mirror), args.runs),
    }
    ratio = results["b_git_cli"]["median_ms"] / results["a_odooops_fresh"]["median_ms"]
    report = {
        "branches": args.branches,
        "results": results,
        "ratio_git_cli_over_odooops_fresh": round(ratio, 2),
        "machine": {"python": platform.python_version(), "pygit2": pygit2.__version__,
                    "libgit2": pygit2.LIBGIT2_VERSION, "cpus": os.cpu_count(),
                    "git": subprocess.run(["git", "--version"], capture_output=True,
                                          text=True).stdout.strip()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    labels = {
        "heads_only_fresh": "    GitSource().heads() alone, new instance",
        "a_odooops_fresh": "(a) GitSource().heads() + BlobCache, new instances",
        "a_odooops_long_lived": "(a') same, long-lived GitSource + BlobCache",
        "b_git_cli": "(b) git for-each-ref | git cat-file --batch",
    }
    print(f"{args.branches} branches, each with its own .odooops.yaml; warm; {args.runs} runs")
    print(f"{'case':<54} {'median ms':>10} {'p95 ms':>8} {'min ms':>8}")
    for key, label in labels.items():
        r = results[key]
        print(f"{label:<54} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['min_ms']:>8.2f}")
    print(f"ratio (b)/(a) median: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
