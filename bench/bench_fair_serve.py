"""Benchmark: one `odooops serve` of two projects (api/projects_router.py over two daemons sharing one pool of
workers): project B's push -> apply started, p50/p95, with project A idle and with A flooding pushes, for
fair sharing (the default per-project cap) against round robin without a cap, in the same run.

Each push is a real `git push` to a git daemon plus a signed GitHub webhook to B's path of the serve's real
HTTP app; the daemons poll, plan and queue for real. The apply itself is not the subject: each one waits
--apply-s seconds (a stand-in for the minutes a real deploy takes) and records when it started, as
bench/bench_webhooks.py does.

    python bench/bench_fair_serve.py --rounds 20 --flood 40 --max-concurrent 4 --apply-s 2
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_plan import bench_policy  # noqa: E402
from bench.bench_webhooks import build_remote, sign  # noqa: E402
from reconciler.api.app import create_app  # noqa: E402
from reconciler.api.projects_router import ProjectsRouter  # noqa: E402
from reconciler.controller.daemon import Daemon, DaemonConfig  # noqa: E402
from reconciler.controller.daemon.shared import daemon_backoff  # noqa: E402
from reconciler.controller.daemon.shared_queue import SharedQueue  # noqa: E402
from reconciler.controller.planning import PlanOutcome, Project  # noqa: E402
from reconciler.controller.workqueue import merge_work  # noqa: E402
from tests.daemon.gitserve import free_port, git, git_daemon, wait_for  # noqa: E402


class Applies:
    """The applier seam of both daemons: records each apply's start (by commit), then takes --apply-s."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: dict[str, float] = {}
        self.cond = threading.Condition()

    def factory(self, project: Project) -> Any:
        applies = self

        class Bound:
            def apply(self, outcome: PlanOutcome) -> Any:
                now = time.time()
                with applies.cond:
                    for a in outcome.plan.actions:
                        applies.started.setdefault(a.commit or "", now)
                    applies.cond.notify_all()
                time.sleep(applies.seconds)  # the deploy this stands for
                for spec in outcome.plan.environments:
                    project.store.record(spec, state="running")
                return type("Report", (), {"environments": [], "ok": True})()

        return Bound()


def push(client: httpx.Client, clone: Path, project: str, branch: str, message: str) -> tuple[str, float]:
    git(clone, "commit", "-q", "--allow-empty", "-m", message)
    commit = git(clone, "rev-parse", "HEAD")
    git(clone, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    body = json.dumps({"ref": f"refs/heads/{branch}", "after": commit}).encode()
    sent = time.time()
    resp = client.post(f"/projects/{project}/webhooks/github", content=body, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sign(body),
        "Content-Type": "application/json"})
    assert resp.status_code == 202, resp.text
    return commit, sent


def run(work: Path, *, capped: bool, rounds: int, flood: int, max_concurrent: int, apply_s: float) -> dict[str, Any]:
    served = Path(tempfile.mkdtemp(prefix="bench-fair-", dir=work))
    for name in ("acme", "beta"):
        build_remote(served / f"{name}.git")
    secret = served / "secret"
    secret.write_bytes(b"bench-secret")
    applies = Applies(apply_s)
    shared = SharedQueue(max_concurrent, backoff=daemon_backoff(), merge=merge_work,
                         per_project_cap=None if capped else max_concurrent)
    out: dict[str, Any] = {"variant": "fair (default cap)" if capped else "round robin, no cap"}
    with git_daemon(served) as root:
        daemons: dict[str, Daemon] = {}
        apps: dict[str, Any] = {}
        clones: dict[str, Path] = {}
        for name in ("acme", "beta"):
            url = f"{root}/{name}.git"
            clones[name] = served / f"work-{name}"
            git(served, "clone", "-q", url, str(clones[name]))
            # Quotas raised: every flooded branch is an environment of its own.
            daemon = Daemon(DaemonConfig(repo=url, state_dir=served / "state", poll_interval=3600,
                                         sweep_interval=3600, policy_file=bench_policy(served), project=name,
                                         max_concurrent=max_concurrent),
                            None, applier_factory=applies.factory, shared_queue=shared)
            daemons[name], apps[name] = daemon, create_app(daemon, secret)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(ProjectsRouter(apps, lambda: {}), host="127.0.0.1", port=port,
                                               log_level="warning", access_log=False, lifespan="off"))
        threading.Thread(target=server.run, daemon=True).start()
        for daemon in daemons.values():
            daemon.start()
        wait_for(lambda: server.started and all(d.is_ready() for d in daemons.values()), 60, "serve ready")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

            def b_rounds(label: str) -> None:
                waits = []
                for n in range(rounds + 2):  # the first two warm caches up and are not counted
                    branch = f"feature/b-{label}-{n}-{uuid.uuid4().hex[:4]}"
                    git(clones["beta"], "checkout", "-q", "-B", branch, "origin/base")
                    commit, sent = push(client, clones["beta"], "beta", branch, f"b {label} {n}")
                    with applies.cond:
                        assert applies.cond.wait_for(partial(operator.contains, applies.started, commit), 600), \
                            "no apply of B"
                    if n >= 2:
                        waits.append((applies.started[commit] - sent) * 1000)
                    wait_for(lambda: daemons["beta"].queue.idle(), 600, "B's apply done")
                out[label] = _pct(waits)

            b_rounds("unloaded")
            # A floods: every push a new branch, far more than the pool holds, kept coming while B measures.
            stop = threading.Event()

            def flood_a() -> None:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as a_client:
                    n = 0
                    while not stop.is_set() and n < flood * 10:
                        branch = f"feature/a-{n:04d}"
                        git(clones["acme"], "checkout", "-q", "-B", branch, "origin/base")
                        push(a_client, clones["acme"], "acme", branch, f"a {n}")
                        n += 1
                        if daemons["acme"].queue.depth() >= flood:
                            time.sleep(0.05)  # enough queued: the flood is standing, keep it topped up
                out["a_pushes"] = n

            flooder = threading.Thread(target=flood_a, daemon=True)
            flooder.start()
            wait_for(lambda: daemons["acme"].queue.depth() >= flood // 2, 600, "A's flood queued")
            out["a_running_at_start"] = len(daemons["acme"].queue.running())
            b_rounds("a_flooding")
            stop.set()
            flooder.join(120)
        server.should_exit = True
        for daemon in daemons.values():
            daemon.request_stop()
        for daemon in daemons.values():
            daemon.stop(apply_s * 2 + 10)
    shutil.rmtree(served, ignore_errors=True)
    out["ratio_p95"] = round(out["a_flooding"]["p95"] / max(out["unloaded"]["p95"], 1e-6), 2)
    return out


def _pct(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50": round(statistics.median(values), 1),
            "p95": round(values[min(len(values) - 1, round(0.95 * (len(values) - 1)))], 1),
            "max": round(values[-1], 1), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20, help="B's measured pushes per phase")
    p.add_argument("--flood", type=int, default=40, help="how many of A's pushes stay queued")
    p.add_argument("--max-concurrent", type=int, default=4)
    p.add_argument("--apply-s", type=float, default=2.0, help="seconds each apply takes")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-fair-serve-"))
    try:
        results = [run(work, capped=capped, rounds=args.rounds, flood=args.flood,
                       max_concurrent=args.max_concurrent, apply_s=args.apply_s) for capped in (True, False)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                  "load": os.getloadavg()}, "args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
