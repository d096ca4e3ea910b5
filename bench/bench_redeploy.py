"""Benchmark: what users see of a redeploy and of a credential rotation (needs the services running).

    python bench/bench_redeploy.py [--runs 5] [--json]

One environment of the example repository answers `/web/health?db_server_status=1` through the router
(which needs a new PostgreSQL connection on every request with the stand-in) while, in one run:
  redeploy  -- a new commit on its branch is applied: blue/green (the platform) vs stop-then-start
               (Applier.handover = False, what the platform did before and what most tools do)
  rotation  -- `secrets rotate` + apply: two logins (the platform: SecretStore.rotate(keep_previous=True))
               vs changing the one login's password (keep_previous=False)
For each: requests that failed (502 from the router, 500 when Odoo cannot reach PostgreSQL), the
longest stretch of failures, and how long the apply took.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.bench_plan import bench_policy  # noqa: E402
from bench.harness import example_host  # noqa: E402
from reconciler.controller.apply import Applier  # noqa: E402
from reconciler.controller.planning import Project, compute_plan  # noqa: E402
from reconciler.secrets import SecretStore  # noqa: E402
from tests.example_repo import commit_file, git  # noqa: E402


class Probe:
    """Asks the router without pause; records each answer's time and whether it passed."""

    def __init__(self, url: str, host_header: str) -> None:
        self.url, self.host_header = url, host_header
        self.answers: list[tuple[float, bool]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(trust_env=False) as client:
            while not self._done.is_set():
                t = time.perf_counter()
                try:
                    r = client.get(self.url, headers={"Host": self.host_header}, timeout=10)
                    ok = r.status_code == 200 and r.json().get("status") == "pass"
                except (httpx.HTTPError, ValueError):
                    ok = False
                self.answers.append((t, ok))

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(30)

    def summary(self) -> dict[str, Any]:
        failed = [t for t, ok in self.answers if not ok]
        longest, start, prev_ok = 0.0, None, True
        for t, ok in self.answers:
            if not ok and prev_ok:
                start = t
            if ok and not prev_ok and start is not None:
                longest = max(longest, t - start)
            prev_ok = ok
        if not prev_ok and start is not None:
            longest = max(longest, self.answers[-1][0] - start)
        return {"requests": len(self.answers), "failed": len(failed), "longest_outage_s": round(longest, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tmp, host, work = example_host("bench-redeploy-")
    branch = f"feature/redeploy-{os.urandom(3).hex()}"
    git(work, "branch", branch, "develop")
    policy = bench_policy(tmp)

    def apply(handover: bool = True) -> tuple[float, Any]:
        project = Project.open(str(work), state_dir=tmp / "state", policy_file=policy)
        applier = Applier(project, host)
        applier.handover = handover
        t = time.perf_counter()
        report = applier.apply(compute_plan(project, branches=[branch]))
        assert report.ok, json.dumps(report.to_json())[:2000]
        return time.perf_counter() - t, report

    _, first = apply()
    name = first.environments[0].env
    url = f"{host.router_http}/web/health?db_server_status=1"
    store = SecretStore(tmp / "state" / "secrets")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {"redeploy": {}, "rotation": {}}
    for run in range(args.runs):
        for mode, handover in (("blue_green", True), ("stop_then_start", False)):
            commit_file(work, branch, "docs/bench.txt", f"{mode} {run}\n", f"bench {mode} {run}")
            with Probe(url, f"{name}.{host.base_domain}") as probe:
                seconds, _ = apply(handover)
            results["redeploy"].setdefault(mode, []).append({**probe.summary(), "apply_s": round(seconds, 2)})
        for mode, keep in (("two_logins", True), ("one_login", False)):
            store.rotate(name, "db_password", keep_previous=keep)
            with Probe(url, f"{name}.{host.base_domain}") as probe:
                seconds, _ = apply()
            results["rotation"].setdefault(mode, []).append({**probe.summary(), "apply_s": round(seconds, 2)})

    git(work, "checkout", "-q", "main")
    git(work, "branch", "-q", "-D", branch)
    project = Project.open(str(work), state_dir=tmp / "state", policy_file=policy)
    Applier(project, host).apply(compute_plan(project, branches=[branch]))

    def agg(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"requests": sum(r["requests"] for r in rows), "failed": sum(r["failed"] for r in rows),
                "longest_outage_s": max(r["longest_outage_s"] for r in rows),
                "apply_s_median": round(statistics.median(r["apply_s"] for r in rows), 2), "runs": len(rows)}

    out = {kind: {mode: agg(rows) for mode, rows in modes.items()} for kind, modes in results.items()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for kind, modes in out.items():
            for mode, r in modes.items():
                print(f"{kind:9} {mode:16} failed {r['failed']:4}/{r['requests']:<5} longest outage "
                      f"{r['longest_outage_s']:5.2f}s  apply {r['apply_s_median']:.2f}s (median of {r['runs']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
