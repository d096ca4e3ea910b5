"""Benchmark the state store: one SQLite row per environment against the former single JSON file.

    python bench/bench_state_store.py [--envs 1000] [--runs 50] [--plan-runs 5] [--json]

Cases, both stores measured in the same run (interleaved), 1,000 environments recorded:
  record one        -- an apply records one environment (the JSON file: read all, rewrite all, fsync)
  read all          -- every environment's entry, as a plan reads them (SQLite: incremental, cached)
  no-op plan        -- a plan over 1,000 branches whose environments all run as desired (nothing to
                       do), on a new Project, with either store behind it (--plan-runs 0 skips it)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from reconciler.core.model import EnvSpec  # noqa: E402
from reconciler.platform.state_store import SCHEMA, StateStore, entry_for, observed_from_entry  # noqa: E402


class JsonStateStore:
    """The former store, kept here only as the baseline: every environment in one state.json,
    read whole and rewritten whole (fsync) by every write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"schema": SCHEMA, "environments": {}}
        return data if isinstance(data, dict) else {"schema": SCHEMA, "environments": {}}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def entries(self) -> dict[str, dict[str, Any]]:
        return dict(self._read()["environments"])

    def stamp(self) -> int:
        """What the plan memo compared before: a stat of the file."""
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def load(self) -> dict[str, Any]:
        return {name: observed_from_entry(e, "state") for name, e in self.entries().items()
                if e.get("state") not in ("destroyed", "blocked")}

    def record(self, spec: EnvSpec, state: str = "running", deployed_at: float | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        data = self._read()
        previous = data["environments"].get(spec.name, {})
        if deployed_at is None:
            deployed_at = previous.get("deployed_at") if previous.get("commit") == spec.commit else time.time()
        entry = entry_for(spec, state, deployed_at)
        entry.update(extra or {})
        data["environments"][spec.name] = entry
        self._write(data)
        return entry


def _entry(i: int) -> dict[str, Any]:
    name = f"bench-{i:04d}"
    now = time.time()
    return {"env": name, "branch": f"feature/{name}", "tier": "dev", "commit": f"{i:040x}", "spec_digest": "d" * 64,
            "settings": {"workers": 2, "cron_workers": 1, "odoo_version": "19.0", "modules": ["sale_management"]},
            "state": "running", "deployed_at": now, "updated_at": now, "url": f"http://{name}.odooops.localhost"}


def _pct(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return {"median_ms": round(statistics.median(values), 2), "p95_ms": round(p95, 2), "runs": len(values)}


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def store_cases(work: Path, envs: int, runs: int, spec: EnvSpec) -> dict[str, Any]:
    data = {"schema": SCHEMA, "environments": {e["env"]: e for e in map(_entry, range(envs))}}
    old = JsonStateStore(work / "json" / "state.json")
    old._write(data)
    new = StateStore(work / "sqlite" / "state.json")
    new._write(data)
    times: dict[str, list[float]] = {"json_record": [], "sqlite_record": [], "json_read": [], "sqlite_read": []}
    for _ in range(runs):
        times["json_record"].append(_time(lambda: old.record(spec)))
        times["sqlite_record"].append(_time(lambda: new.record(spec)))
        times["json_read"].append(_time(old.entries))
        times["sqlite_read"].append(_time(new.entries))
    out = {k: _pct(v) for k, v in times.items()}
    for case in ("record", "read"):
        out[f"{case}_ratio_json_over_sqlite"] = round(
            out[f"json_{case}"]["median_ms"] / out[f"sqlite_{case}"]["median_ms"], 1)
    return out


def noop_plan(work: Path, branches: int, runs: int) -> dict[str, Any]:
    from bench_git_refs import prepare
    from bench_plan import bench_policy

    from reconciler.controller.planning import Project, compute_plan
    from reconciler.core.model import ActionKind

    url, state, _cache = prepare(work, branches)
    policy = bench_policy(work)
    stores: dict[str, Any] = {}
    for kind in ("json", "sqlite"):
        path = work / f"noop-{kind}" / "state.json"
        shutil.rmtree(path.parent, ignore_errors=True)
        stores[kind] = JsonStateStore(path) if kind == "json" else StateStore(path)

    def project(kind: str) -> Any:
        p = Project.open(url, state_dir=state, policy_file=policy)
        p.store = stores[kind]
        return p

    first = compute_plan(project("sqlite")).plan
    recorded = {spec.name: entry_for(spec, "running", time.time()) for spec in first.environments}
    for store in stores.values():
        store._write({"schema": SCHEMA, "environments": recorded})
    times: dict[str, list[float]] = {"json": [], "sqlite": []}
    actions: dict[str, int] = {}
    for _ in range(runs):
        for kind in ("json", "sqlite"):
            p = project(kind)
            t0 = time.perf_counter()
            plan = compute_plan(p).plan
            times[kind].append((time.perf_counter() - t0) * 1000)
            actions[kind] = sum(a.action != ActionKind.NOOP for a in plan.actions)
    return {"environments": len(first.environments), "actions_other_than_noop": actions,
            "json": _pct(times["json"]), "sqlite": _pct(times["sqlite"]),
            "ratio_json_over_sqlite": round(statistics.median(times["json"]) / statistics.median(times["sqlite"]), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--plan-runs", type=int, default=5)
    ap.add_argument("--work", type=Path, default=ROOT / ".work" / "bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-state-", dir=args.work))
    from reconciler.core.model import Tier

    spec = EnvSpec(name="bench-0007", branch="feature/bench-0007", ref="refs/heads/feature/bench-0007", kind="branch",
                   number=None, commit="f" * 40, commit_time=0, tier=Tier.DEV, rule="bench", origins={},
                   settings={"workers": 2}, spec_digest="e" * 64)
    report: dict[str, Any] = {"store": store_cases(tmp, args.envs, args.runs, spec)}
    if args.plan_runs:
        report["noop_plan"] = noop_plan(args.work, args.envs, args.plan_runs)
    shutil.rmtree(tmp, ignore_errors=True)
    report["machine"] = {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(report, indent=2 if not args.json else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
