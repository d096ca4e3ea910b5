"""Benchmark apply on the embedded host (needs `bash scripts/services.sh start` and .work/services.env).

    python bench/bench_apply.py [--envs 20] [--runs 5] [--json]

Measures, in one run:
  noop_apply          -- a second apply with nothing changed, over N environments (target <= 1 s),
                         and the number of container restarts it caused (target 0)
  baseline            -- what a Terraform-per-environment tool pays to find out nothing changed:
                         `terraform plan` of one environment's root module, times N
  new_branch          -- a new feature branch pushed -> its environment healthy, per step; platform
                         overhead = total minus Odoo's own work (database init, tests) and the health wait
  artifact            -- a rebuild of an unchanged artifact (0 work) and two builds of the same inputs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from bench.bench_plan import bench_policy  # noqa: E402
from bench.harness import example_host  # noqa: E402
from reconciler.controller.apply import Applier  # noqa: E402
from reconciler.controller.planning import Project, compute_plan  # noqa: E402
from reconciler.executors.artifacts import ArtifactInputs, ArtifactStore  # noqa: E402
from reconciler.sources.objects import export_tree  # noqa: E402
from tests.example_repo import git  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tmp, host, work = example_host("bench-apply-")
    tag = os.urandom(3).hex()
    branches = [f"feature/b{tag}-{i:02d}" for i in range(args.envs)]
    for b in branches:
        git(work, "branch", b, "develop")
    policy = bench_policy(tmp)

    def project() -> Project:
        return Project.open(str(work), state_dir=tmp / "state", policy_file=policy)

    t0 = time.perf_counter()
    first = Applier(project(), host).apply(compute_plan(project(), branches=branches))
    first_s = time.perf_counter() - t0
    assert first.ok, json.dumps(first.to_json())[:2000]
    client = docker.DockerClient(base_url=host.docker_host)
    envs = [e.env for e in first.environments]

    def started() -> dict[str, str]:
        out = {}
        for name in envs:
            for c in client.containers.list(filters={"label": f"odooops.env={name}"}):
                out[c.name] = c.attrs["State"]["StartedAt"]
        return out

    before = started()
    noop = []
    for _ in range(args.runs):
        t = time.perf_counter()
        p = project()
        report = Applier(p, host).apply(compute_plan(p, branches=branches))
        noop.append((time.perf_counter() - t) * 1000)
        assert report.environments == []
    restarts = sum(1 for k, v in started().items() if before.get(k) != v)

    from reconciler.executors.terraform import PG_ADMIN_PASSWORD_ENV, TerraformRunner
    from reconciler.secrets import SecretStore
    runner = TerraformRunner(tmp / "state" / "terraform", secret_env={PG_ADMIN_PASSWORD_ENV: host.pg_admin_password})
    root = json.loads((tmp / "state" / "terraform" / envs[0] / "main.tf.json").read_text())
    password = SecretStore(tmp / "state" / "secrets").get(envs[0], "db_password") or ""
    runner.write_root(envs[0], root, {"role_password": password})
    t = time.perf_counter()
    runner.plan(envs[0])
    tf_plan_ms = (time.perf_counter() - t) * 1000

    new = f"feature/b{tag}-new"
    git(work, "branch", new, "develop")
    p = project()
    t = time.perf_counter()
    report = Applier(p, host).apply(compute_plan(p, branches=[new]))
    new_total = time.perf_counter() - t
    [rep] = report.environments
    steps = {s.name: round(s.seconds, 3) for s in rep.steps}
    odoo_own = steps.get("database", 0) + steps.get("tests", 0) + steps.get("health", 0)

    repo = p.source.repo
    tree = p.source.tree_id(rep.commit, "addons")
    store = ArtifactStore(tmp / "artifacts-bench")
    inputs = ArtifactInputs(base_image="sha256:" + "0" * 64, addons=(("addons", tree),))
    built = store.ensure(inputs, lambda d: export_tree(repo, tree, d / "repo" / "addons"))
    t = time.perf_counter()
    again = store.ensure(inputs, lambda d: export_tree(repo, tree, d / "repo" / "addons"))
    rebuild_ms = (time.perf_counter() - t) * 1000
    store2 = ArtifactStore(tmp / "artifacts-bench-2")
    other = store2.ensure(inputs, lambda d: export_tree(repo, tree, d / "repo" / "addons"))

    # clean up everything this benchmark created
    git(work, "checkout", "-q", "main")
    for b in [*branches, new]:
        git(work, "branch", "-q", "-D", b)
    cleanup = Applier(project(), host).apply(compute_plan(project(), branches=[*branches, new]))

    results = {
        "envs": args.envs,
        "first_apply_s": round(first_s, 1),
        "noop_apply_ms": {"median": round(statistics.median(noop), 1), "max": round(max(noop), 1), "runs": args.runs},
        "noop_restarts": restarts,
        "baseline_terraform_plan_per_env_ms": round(tf_plan_ms, 1),
        "baseline_terraform_plan_all_envs_ms": round(tf_plan_ms * args.envs, 1),
        "ratio_baseline_over_noop": round(tf_plan_ms * args.envs / statistics.median(noop), 1),
        "new_branch": {"total_s": round(new_total, 2), "steps_s": steps,
                       "platform_overhead_s": round(new_total - odoo_own, 2)},
        "artifact": {"rebuild_unchanged_ms": round(rebuild_ms, 3), "rebuild_created": again.created,
                     "first_build_created": built.created, "same_id_two_stores": built.id == other.id,
                     "same_content_digest": built.content_digest == other.content_digest},
        "cleanup_ok": cleanup.ok,
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print(f"{k:<40} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
