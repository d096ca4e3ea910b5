"""Benchmark: another project's push -> run started while one project floods the work queue, with the slots
shared across projects (docs/adr/0037, "Fair sharing") against today's single FIFO, in the same run.

Usage:
  python bench/bench_fairshare.py [--slots 10] [--flood 200] [--pushes 40] [--interval-ms 100] [--rounds 2]

A real `WorkQueue` whose run function takes 50-200 ms (uniform, the same duration per key in every
variant; waiting on an event with a timeout stands in for the work). Project A submits `--flood` branches
at once; project B pushes one new branch every `--interval-ms`, `--pushes` times, starting right after A's
flood. B's latency is from `submit` to its run function starting. "Unloaded" is the same B pushes with
nothing else queued. Variants, interleaved in each round so that they see the same machine load:
  fifo         every item without a project: today's queue, one FIFO for everything;
  round-robin  projects, round robin, no cap (per_project_cap = slots): B waits for the next freed slot;
  fair         projects, round robin, the default cap (ceil(slots / 2) with two projects).
Prints p50/p95 per variant, the ratio of B's p95 under the flood to its unloaded p95 (issue 14's figure:
within 2x), the ratio to the FIFO's p95, and how long A's flood took to drain.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.controller.workqueue import Item, Result, WorkQueue  # noqa: E402

VARIANTS = ("fifo", "round-robin", "fair")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


class Runs:
    """The run function: records when each key started, works for the key's duration, counts what finished."""

    def __init__(self, durations: dict[str, float]) -> None:
        self.durations = durations
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.cond = threading.Condition()
        self.never = threading.Event()

    def __call__(self, item: Item) -> Result:
        now = time.perf_counter()
        with self.cond:
            self.started[item.key] = now
        self.never.wait(self.durations[item.key])
        with self.cond:
            self.finished[item.key] = time.perf_counter()
            self.cond.notify_all()
        return Result("ok")

    def wait_finished(self, keys: list[str], timeout: float) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: all(k in self.finished for k in keys), timeout):
                raise SystemExit(f"{sum(k in self.finished for k in keys)} of {len(keys)} runs finished "
                                 f"in {timeout} s")


def one_run(variant: str, slots: int, flood: int, pushes: int, interval: float,
            durations: dict[str, float]) -> dict[str, Any]:
    """B's latencies (ms) with A's flood (flood > 0) or without it, and A's drain time (s)."""
    runs = Runs(durations)
    queue = WorkQueue(runs, slots, per_project_cap=slots if variant == "round-robin" else None,
                      name=f"bench-{variant}")

    def project(name: str) -> str | None:
        return None if variant == "fifo" else name

    queue.start()
    submitted: dict[str, float] = {}
    a_keys = [f"a--branch-{i:03d}" for i in range(flood)]
    b_keys = [f"b--branch-{i:03d}" for i in range(pushes)]
    t0 = time.perf_counter()
    for key in a_keys:
        submitted[key] = time.perf_counter()
        queue.submit(key, "push", project=project("a"))
    pace = threading.Event()  # never set: waits for the next push's time
    b_start = time.perf_counter()
    for n, key in enumerate(b_keys):
        pace.wait(max(0.0, b_start + n * interval - time.perf_counter()))
        submitted[key] = time.perf_counter()
        queue.submit(key, "push", project=project("b"))
    runs.wait_finished(a_keys + b_keys, 120.0)
    queue.stop(5)
    latencies = [(runs.started[k] - submitted[k]) * 1000 for k in b_keys]
    drained = max((runs.finished[k] for k in a_keys), default=t0) - t0
    return {"b_ms": latencies, "a_drain_s": drained}


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3),
            "max": round(max(values), 3), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slots", type=int, default=10, help="max_concurrent (serve's --max-concurrent default)")
    ap.add_argument("--flood", type=int, default=200, help="branches project A submits at once")
    ap.add_argument("--pushes", type=int, default=40, help="branches project B pushes, one per interval")
    ap.add_argument("--interval-ms", type=float, default=100.0)
    ap.add_argument("--min-ms", type=float, default=50.0, help="shortest run")
    ap.add_argument("--max-ms", type=float, default=200.0, help="longest run")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every variant, interleaved")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    keys = [f"a--branch-{i:03d}" for i in range(args.flood)] + [f"b--branch-{i:03d}" for i in range(args.pushes)]
    durations = {k: rng.uniform(args.min_ms, args.max_ms) / 1000 for k in keys}
    interval = args.interval_ms / 1000
    samples: dict[str, dict[str, list[float]]] = {v: {"unloaded": [], "flood": [], "drain": []} for v in VARIANTS}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for variant in VARIANTS:
            alone = one_run(variant, args.slots, 0, args.pushes, interval, durations)
            flooded = one_run(variant, args.slots, args.flood, args.pushes, interval, durations)
            samples[variant]["unloaded"] += alone["b_ms"]
            samples[variant]["flood"] += flooded["b_ms"]
            samples[variant]["drain"].append(flooded["a_drain_s"])
    fifo_p95 = percentile(samples["fifo"]["flood"], 95)
    out: dict[str, Any] = {"args": vars(args), "loadavg_before": [round(x, 2) for x in load_before],
                           "loadavg_after": [round(x, 2) for x in os.getloadavg()], "variants": {}}
    for variant in VARIANTS:
        s = samples[variant]
        unloaded, flood = summary(s["unloaded"]), summary(s["flood"])
        out["variants"][variant] = {
            "b_unloaded_ms": unloaded, "b_flood_ms": flood,
            "flood_over_unloaded_p95": round(flood["p95"] / unloaded["p95"], 2),
            "fifo_over_this_p95": round(fifo_p95 / flood["p95"], 1),
            "a_drain_s": [round(d, 2) for d in s["drain"]]}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"slots {args.slots}, A floods {args.flood}, B pushes {args.pushes} every {args.interval_ms:g} ms, "
          f"runs {args.min_ms:g}-{args.max_ms:g} ms, {args.rounds} round(s), load {out['loadavg_before']} -> "
          f"{out['loadavg_after']}")
    print(f"{'variant':<12} {'B unloaded p50/p95 ms':>22} {'B under flood p50/p95 ms':>25} "
          f"{'flood/unloaded p95':>19} {'FIFO/this p95':>14} {'A drained in s':>15}")
    for variant, r in out["variants"].items():
        u, f = r["b_unloaded_ms"], r["b_flood_ms"]
        print(f"{variant:<12} {u['p50']:>10.2f} / {u['p95']:<9.2f} {f['p50']:>12.2f} / {f['p95']:<10.2f} "
              f"{r['flood_over_unloaded_p95']:>18.2f}x {r['fifo_over_this_p95']:>13.1f}x "
              f"{', '.join(f'{d:.2f}' for d in r['a_drain_s']):>15}")
    fair = out["variants"]["fair"]["flood_over_unloaded_p95"]
    print(f"issue 14: B's p95 under the flood within 2x unloaded with fair sharing: "
          f"{'met' if fair <= 2 else 'NOT met'} ({fair}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
