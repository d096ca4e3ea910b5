"""Benchmark: a daemon poll of a 1,000-branch remote (git daemon on loopback) with nothing changed,
against a plain `git ls-remote` of the same remote; and a poll after one branch moved."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pygit2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_git_refs import GIT_ENV, measure, prepare  # noqa: E402

from reconciler.controller.daemon import Daemon, DaemonConfig  # noqa: E402
from reconciler.sources.git import GitSource  # noqa: E402
from tests.daemon.gitserve import git_daemon  # noqa: E402


def move_one_branch(source: Path, n: int) -> None:
    """A new commit on one branch, written straight into the served bare repository."""
    ref = "refs/heads/feature/branch-0001"
    parent = subprocess.run(["git", "rev-parse", ref], cwd=source, env=GIT_ENV, check=True,
                            capture_output=True, text=True).stdout.strip()
    tree = subprocess.run(["git", "rev-parse", f"{parent}^{{tree}}"], cwd=source, env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout.strip()
    env = {**GIT_ENV, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}
    commit = subprocess.run(["git", "commit-tree", tree, "-p", parent, "-m", f"move {n}"], cwd=source, env=env,
                            check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "update-ref", ref, commit], cwd=source, env=GIT_ENV, check=True)


def summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"median_ms": round(times[len(times) // 2], 2), "p95_ms": round(times[-1], 2),
            "min_ms": round(times[0], 2), "runs": len(times)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--branches", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--work", type=Path, default=ROOT / ".work" / "bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    file_url, _state, _cache = prepare(args.work, args.branches)
    source = Path(file_url.removeprefix("file://"))
    # A copy the benchmark may move branches in, served by git daemon on loopback.
    served = Path(tempfile.mkdtemp(prefix="bench-poll-", dir=args.work))
    shutil.copytree(source, served / "source.git")
    with git_daemon(served) as root:
        url = f"{root}/source.git"
        state = served / "state"
        src = GitSource(url, served / "state-source")  # its own mirror: the daemon fetches separately
        src.refresh()
        assert src.refresh_if_changed() is None
        daemon = Daemon(DaemonConfig(repo=url, state_dir=state), None)
        first = time.perf_counter()
        outcome = daemon.poll_once()  # first poll: fetch + full plan of every branch
        first_ms = (time.perf_counter() - first) * 1000
        assert outcome is not None and outcome.heads == args.branches
        results = {
            "a_poll_unchanged": measure(lambda: int(daemon.poll_once() is None), args.runs),
            "a_refresh_if_changed": measure(lambda: int(src.refresh_if_changed() is None), args.runs),
            "remote_refs_only": measure(lambda: len(src.remote_refs()), args.runs),
            "b_git_ls_remote": measure(lambda: len(subprocess.run(
                ["git", "ls-remote", url], env=GIT_ENV, check=True, capture_output=True).stdout), args.runs),
        }
        fetches, polls = [], []
        for n in range(7):
            move_one_branch(served / "source.git", n)
            t0 = time.perf_counter()
            fetched = src.refresh_if_changed()
            fetches.append((time.perf_counter() - t0) * 1000)
            assert fetched is not None and fetched.updated == ("refs/heads/feature/branch-0001",)
            t0 = time.perf_counter()
            assert daemon.poll_once() is not None
            polls.append((time.perf_counter() - t0) * 1000)
        results["fetch_one_branch_moved"] = summary(fetches)
        results["poll_one_branch_moved"] = summary(polls)
    shutil.rmtree(served, ignore_errors=True)
    ratio = results["a_poll_unchanged"]["median_ms"] / results["b_git_ls_remote"]["median_ms"]
    report = {
        "branches": args.branches, "first_poll_ms": round(first_ms, 1), "results": results,
        "ratio_poll_over_ls_remote": round(ratio, 2),
        "machine": {"python": platform.python_version(), "pygit2": pygit2.__version__,
                    "libgit2": pygit2.LIBGIT2_VERSION, "cpus": os.cpu_count(),
                    "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    labels = {
        "a_poll_unchanged": "(a) Daemon.poll_once(), nothing changed",
        "a_refresh_if_changed": "    GitSource.refresh_if_changed() alone",
        "remote_refs_only": "    GitSource.remote_refs() alone (one ref advertisement)",
        "b_git_ls_remote": "(b) git ls-remote git://127.0.0.1/...",
        "fetch_one_branch_moved": "    refresh_if_changed(), one branch moved (refs + fetch)",
        "poll_one_branch_moved": "    Daemon.poll_once(), one branch moved (fetch + plan)",
    }
    print(f"{args.branches} branches on git daemon (loopback); first poll {first_ms:.0f} ms; {args.runs} runs")
    print(f"{'case':<58} {'median ms':>10} {'p95 ms':>8} {'min ms':>8}")
    for key, label in labels.items():
        r = results[key]
        print(f"{label:<58} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['min_ms']:>8.2f}")
    print(f"ratio (a)/(b) median: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
