"""Whole-process time of `odooops doctor` (checks run concurrently) against the same checks run one after
another (`--serial`), without and with --repo, on the embedded host.

Usage (needs `set -a; . .work/services.env; set +a`):
  python bench/bench_doctor.py [--runs 20]

--repo is the example project as a bare repository served by `git daemon` on loopback (ls-remote and the
push connection go over git://); warm-up runs fill the state directory's mirror, as on a host that has
run doctor or serve before. "hung" points PostgreSQL and the Caddy admin API at a loopback server that
accepts and never answers, with --timeout 1. Prints p50/p95/min/max per variant, the serial/concurrent
ratio, the statuses of the last run, and whether the concurrent p95 <= 2 s (issue 14).
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
TARGET_MS = 2000.0


def timed(cmd: list[str], env: dict[str, str], runs: int, warmup: int = 2) -> tuple[list[float], list[dict]]:
    last: list[dict] = []
    for _ in range(warmup):
        subprocess.run(cmd, env=env, capture_output=True, check=False)
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        out.append((time.perf_counter() - start) * 1000)
        last = json.loads(proc.stdout)
    return out, last


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered), "p95": ordered[max(0, int(len(ordered) * 0.95) - 1)],
            "min": ordered[0], "max": ordered[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--hung-runs", type=int, default=3,
                        help="Runs with PostgreSQL and the Caddy admin API pointed at a server that never answers "
                             "(--timeout 1).")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.daemon.gitserve import git_daemon
    from tests.example_repo import build_example
    from tests.service.test_doctor import silent_server

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-doctor-") as tmp_name:
        tmp = Path(tmp_name)
        build_example(tmp / "srv" / "acme.git", bare=True, oca_dest=tmp / "srv" / "oca-web.git")
        base = [sys.executable, "-m", "reconciler", "doctor", "--json", "--state-dir", str(tmp / "state")]
        results = {}
        with git_daemon(tmp / "srv") as url:
            repo = ["--repo", f"{url}/acme.git"]
            for name, extra in (("host", []), ("host --serial", ["--serial"]), ("--repo", repo),
                                ("--repo --serial", [*repo, "--serial"])):
                samples, last = timed(base + extra, env, args.runs)
                results[name] = (summary(samples), last)
        with silent_server() as port:
            hung_env = {**env, "ODOOOPS_PG_PORT": str(port), "ODOOOPS_CADDY_ADMIN": f"http://127.0.0.1:{port}"}
            for name, extra in (("hung", ["--timeout", "1"]), ("hung --serial", ["--timeout", "1", "--serial"])):
                samples, last = timed(base + extra, hung_env, args.hung_runs, warmup=0)
                results[name] = (summary(samples), last)
    for name, (stats, _) in results.items():
        print(f"{name:18s} " + "  ".join(f"{k} {v:7.0f} ms" for k, v in stats.items()))
    for plain, serial in (("host", "host --serial"), ("--repo", "--repo --serial"), ("hung", "hung --serial")):
        ratio = results[serial][0]["p50"] / results[plain][0]["p50"]
        print(f"serial/concurrent p50 ({plain}): {ratio:.2f}x")
    for name in ("host", "--repo"):
        statuses = {c["id"]: c["status"] for c in results[name][1]}
        print(f"statuses ({name}): " + ", ".join(f"{k}={v}" for k, v in statuses.items()))
        worst = max(results[name][1], key=lambda c: c["duration_ms"])
        print(f"slowest check ({name}): {worst['id']} {worst['duration_ms']} ms")
    if any(c["id"] == "host.settings" for c in results["host"][1]):
        print("the host settings are missing: load .work/services.env first")
        return 2
    ok = all(results[n][0]["p95"] <= TARGET_MS for n in ("host", "--repo"))
    print(f"concurrent p95 <= {TARGET_MS:.0f} ms: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
