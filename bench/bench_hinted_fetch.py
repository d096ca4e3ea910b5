"""Benchmark: fetching one moved branch of a 1,000-branch remote (git daemon on loopback), as a webhook
hint would: the poll's fetch (`GitSource.refresh_if_changed()`: libgit2, protocol v0, the listing and
the fetch over one connection) against a targeted `git fetch` of the hinted ref with protocol v2
(`ls-refs` with a ref prefix: one ref advertised instead of 1,002), and `git ls-remote` of that one ref
over v0 and v2 (the request without the fetch).

Each method is measured in two regimes: `short` history (every measured push replaces the branch with
one new commit on `base`, so the mirror's refs reach fewer than 20 commits) and `deep` history (the
branch grows by one commit per push on top of 30 earlier ones). libgit2 offers the commits it has in
batches of 20 "have" lines and waits for the server's acknowledgements after each batch; with fewer
than 20 commits it sends its haves and "done" at once."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pygit2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_webhooks import build_remote  # noqa: E402
from reconciler.sources.git import GitSource  # noqa: E402
from tests.daemon.gitserve import GIT_ENV, git, git_daemon  # noqa: E402

BRANCH = "feature/hinted"
CLI = ["git", "-c", "maintenance.auto=false", "-c", "gc.auto=0", "-c", "fetch.showForcedUpdates=false"]


def _pct(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {"median": round(statistics.median(ms), 1), "p95": round(ms[max(0, int(0.95 * len(ms)) - 1)], 1),
            "max": round(ms[-1], 1)}


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=GIT_ENV, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()}")


def measure(work: Path, branches: int, rounds: int) -> dict[str, Any]:
    served = Path(tempfile.mkdtemp(prefix="bench-hinted-", dir=work))
    build_remote(served / "acme.git", branches)
    out: dict[str, Any] = {"refs": branches + 2, "rounds": rounds}
    with git_daemon(served) as root:
        url = f"{root}/acme.git"
        clone = served / "work"
        git(served, "clone", "-q", url, str(clone))
        source = GitSource(url, served / "state")
        source.refresh()
        ref = f"refs/heads/{BRANCH}"

        def poll() -> None:
            if source.refresh_if_changed() is None:
                raise SystemExit("refresh_if_changed() saw no change")

        methods: dict[str, Callable[[], None]] = {
            "poll_fetch_libgit2_v0": poll,
            "targeted_git_fetch_v2": lambda: _run([*CLI, "-c", "protocol.version=2", "fetch", "--quiet",
                                                   "--no-tags", "--no-write-fetch-head", url, f"+{ref}:{ref}"],
                                                  source.path),
            "git_ls_remote_one_ref_v0": lambda: _run(["git", "-c", "protocol.version=0", "ls-remote", url, ref],
                                                     source.path),
            "git_ls_remote_one_ref_v2": lambda: _run(["git", "-c", "protocol.version=2", "ls-remote", url, ref],
                                                     source.path),
        }
        for regime in ("short", "deep"):
            git(clone, "checkout", "-q", "-B", BRANCH, "origin/base")
            if regime == "deep":
                for n in range(30):
                    git(clone, "commit", "-q", "--allow-empty", "-m", f"earlier {n}")
            git(clone, "push", "-q", "-f", "origin", f"HEAD:{ref}")
            source.refresh()
            _run(["git", "gc", "-q", "--prune=now"], source.path)  # the replaced commits are unreachable
            reachable = int(git(source.path, "rev-list", "--count", "--all"))
            timings: dict[str, list[float]] = {name: [] for name in methods}
            for n in range(rounds):
                for name, call in methods.items():
                    if regime == "short":
                        git(clone, "reset", "-q", "--hard", "origin/base")
                    git(clone, "commit", "-q", "--allow-empty", "-m", f"{regime} {name} {n}")
                    git(clone, "push", "-q", "-f", "origin", f"HEAD:{ref}")
                    started = time.perf_counter()
                    call()
                    timings[name].append(time.perf_counter() - started)
                    if "fetch" in name and git(source.path, "rev-parse", ref) != git(clone, "rev-parse", "HEAD"):
                        raise SystemExit(f"{name} did not bring {ref}'s new commit")
                    if "ls_remote" in name:
                        source.refresh()  # keep the mirror in step for the next method
            out[regime] = {"commits_reachable_in_mirror_at_start": reachable,
                           **{name: _pct(values) for name, values in timings.items()}}
    shutil.rmtree(served, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--extra-branches", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--work", type=Path, default=ROOT / ".work" / "bench")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    report = measure(args.work, args.extra_branches, args.rounds)
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    report["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "git": git_version,
                         "libgit2": pygit2.LIBGIT2_VERSION, "load_avg_1m_at_end": os.getloadavg()[0]}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
