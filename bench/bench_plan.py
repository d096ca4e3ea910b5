"""Benchmark the whole plan: 1,000 environments from 1,000 branches, and `odooops plan` as a process.

    python bench/bench_plan.py [--branches 1000] [--runs 10] [--json]

Cases (all warm: OS caches and the on-disk parse cache filled by a first run):
  full plan, new Project  -- refs + configs + desired + observed + plan + render, as after a restart
  full plan, long-lived   -- the same in a daemon whose memo was dropped (something changed)
  re-plan, nothing moved  -- a daemon re-planning with no ref changed (fetch + refs digest + memo)
  baseline                -- git for-each-ref | git cat-file --batch reading the same configs
  odooops plan (process)  -- the CLI on the example repository, whole process
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_git_refs import measure, prepare, run_git_cli  # noqa: E402

from reconciler.controller.planning import Project, compute_plan  # noqa: E402
from reconciler.core.resources import read_text  # noqa: E402
from reconciler.sources.git import GitSource  # noqa: E402


def bench_policy(work: Path) -> Path:
    """The default policy with quotas high enough for every branch to get an environment."""
    text = read_text("policies", "default.yaml")
    for tier in ("staging", "dev", "ephemeral", "preview"):
        text = text.replace(f"\n  {tier}: ", f"\n  {tier}_unused: ", 0)
    head, _, tail = text.partition("\nquotas:\n")
    rest = tail.split("\n\n", 1)[1]
    quotas = "\nquotas:\n  production: 1\n  staging: 5000\n  dev: 5000\n  ephemeral: 5000\n  preview: 5000\n\n"
    path = work / "bench-policy.yaml"
    path.write_text(head + quotas + rest, encoding="utf-8")
    return path


def process_times(args: list[str], runs: int) -> dict[str, float]:
    subprocess.run(args, capture_output=True, check=False)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, capture_output=True, check=False)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 1), "p95_ms": round(times[-1], 1), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--branches", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--work", type=Path, default=ROOT / ".work" / "bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    url, state, _cache = prepare(args.work, args.branches)
    policy = bench_policy(args.work)
    mirror = GitSource(url, state).path

    first = compute_plan(Project.open(url, state_dir=state, policy_file=policy))
    envs = len(first.plan.environments)
    assert envs == args.branches, f"expected {args.branches} environments, planned {envs}"

    def fresh() -> int:
        return len(compute_plan(Project.open(url, state_dir=state, policy_file=policy)).plan.environments)

    daemon = Project.open(url, state_dir=state, policy_file=policy)
    compute_plan(daemon)

    def long_lived_full() -> int:
        daemon.memo = None
        return len(compute_plan(daemon).plan.environments)

    def replan() -> int:
        outcome = compute_plan(daemon)
        assert outcome.cached
        return len(outcome.plan.environments)

    results = {
        "full_plan_new_project": measure(fresh, args.runs),
        "full_plan_long_lived": measure(long_lived_full, args.runs),
        "replan_nothing_changed": measure(replan, args.runs * 3),
        "baseline_git_cli_refs_and_configs": measure(lambda: run_git_cli(mirror), args.runs),
    }
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(ROOT / "tests"))
        from example_repo import build_example

        example = Path(tmp) / "acme.git"
        build_example(example, bare=True)
        odooops = str(Path(sys.executable).parent / "odooops")
        results["odooops_plan_example_process"] = process_times(
            [odooops, "plan", "--repo", str(example), "--state-dir", str(Path(tmp) / "s")], args.runs)
        results["python_startup_process"] = process_times([sys.executable, "-c", "pass"], args.runs)
    base = results["baseline_git_cli_refs_and_configs"]["median_ms"]
    report = {
        "branches": args.branches, "environments": envs, "results": results,
        "ratio_full_plan_over_git_cli": round(results["full_plan_long_lived"]["median_ms"] / base, 2),
        "ratio_replan_over_git_cli": round(results["replan_nothing_changed"]["median_ms"] / base, 2),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.branches} branches -> {envs} environments; warm; medians of {args.runs} runs")
    print(f"{'case':<40} {'median ms':>10} {'p95 ms':>8}")
    for key, r in results.items():
        print(f"{key:<40} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f}")
    print(f"full plan / git CLI baseline: {report['ratio_full_plan_over_git_cli']}x; "
          f"re-plan / baseline: {report['ratio_replan_over_git_cli']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
