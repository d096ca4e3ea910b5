"""Benchmark a rollback of a deploy that migrated data: pin + old artifact + pre-deploy backup restored and swapped in.

    python bench/bench_rollback.py [--db-mb 1024] [--filestore-mb 100] [--json]

Needs `bash scripts/services.sh start` and .work/services.env. One run:
  1. deploy commit A of the example project (a feature branch, stand-in Odoo 19), grow its database to
     --db-mb of incompressible rows (plus an index) and its filestore to --filestore-mb of random files;
  2. take the pre-deploy backup (timed, reported apart: it belongs to the deploy, not to the rollback);
  3. deploy commit B (a module update) and leave a table behind as B's "migration";
  4. record the pre-deploy backup in B's state entry exactly as the apply's database step does for
     production (tier production), then time `reconciler.service.rollback.rollback` end to end.
The environment is a uniquely named one with the production tier recorded, not the `production`
database itself: the shared PostgreSQL of these machines holds other helpers' `production`.
Target (issue 5): <= 60 s for a 1 GB database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import example_host  # noqa: E402
from reconciler.controller.apply import Applier  # noqa: E402
from reconciler.controller.planning import Project, compute_plan  # noqa: E402
from reconciler.core.model import Action, ActionKind  # noqa: E402
from reconciler.data.backup import create_backup  # noqa: E402
from reconciler.data.context import DataContext  # noqa: E402
from reconciler.service.rollback import rollback  # noqa: E402
from tests.example_repo import commit_file, git  # noqa: E402

ROW_BYTES = 270  # one row of 224 characters of md5 text plus tuple overhead, as stored (not TOASTed)


def grow_database(ctx: DataContext, env: str, mb: int) -> int:
    rows = mb * 1024 * 1024 // ROW_BYTES
    with ctx.pg.connect(env) as conn:
        # Owned by the environment's role, like every table Odoo creates.
        conn.execute(f'SET ROLE "{env}"')
        conn.execute("CREATE TABLE bench_payload (id bigint, body text)")
        conn.execute("INSERT INTO bench_payload SELECT g, repeat(md5(g::text), 7) FROM generate_series(1, %s) g",
                     (rows,))
        conn.execute("CREATE INDEX bench_payload_id ON bench_payload (id)")
    return ctx.pg.size_bytes(env)


def grow_filestore(ctx: DataContext, env: str, mb: int) -> int:
    root = ctx.host.filestore_dir(env)
    owner = os.stat(root)
    total = 0
    for _ in range(mb):
        data = os.urandom(1024 * 1024)
        name = uuid.uuid4().hex
        path = root / name[:2] / name
        path.parent.mkdir(exist_ok=True)
        os.chown(path.parent, owner.st_uid, owner.st_gid)
        path.write_bytes(data)
        os.chown(path, owner.st_uid, owner.st_gid)
        total += len(data)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-mb", type=int, default=1024)
    ap.add_argument("--filestore-mb", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tmp, host, work = example_host("bench-rollback-")
    branch = f"feature/rb{uuid.uuid4().hex[:8]}"
    git(work, "checkout", "-q", "-b", branch, "develop")
    out: dict[str, Any] = {"db_mb_requested": args.db_mb, "filestore_mb": args.filestore_mb,
                           "load_before": os.getloadavg()}

    def project() -> Project:
        return Project.open(str(work), state_dir=tmp / "state")

    env = None
    try:
        report = Applier(project(), host).apply(compute_plan(project(), branches=[branch]))
        assert report.ok, report.to_json()
        env, a = report.environments[0].env, str(report.environments[0].commit)
        ctx = DataContext.for_project(project(), host)
        t = time.perf_counter()
        out["db_bytes"] = grow_database(ctx, env, args.db_mb)
        out["filestore_bytes"] = grow_filestore(ctx, env, args.filestore_mb)
        out["grow_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        backup = create_backup(ctx, env, reason="pre-deploy", commit=a)
        out["pre_deploy_backup_s"] = round(time.perf_counter() - t, 1)
        b = commit_file(work, branch, "addons/acme_sale/models/extra.py", "# migrates\n", "acme_sale: migrate")
        report = Applier(project(), host).apply(compute_plan(project(), branches=[branch]))
        assert report.ok, report.to_json()
        with ctx.pg.connect(env) as conn:
            conn.execute("CREATE TABLE b_migrated (id int)")
        ctx.store.set_state(env, "running", tier="production",
                            pre_deploy_backup={"id": backup.id, "from_commit": a, "to_commit": b})
        out["load_at_rollback"] = os.getloadavg()
        t = time.perf_counter()
        result = rollback(project(), host, env, actor="bench", confirm=True)  # discards what came after
        out["rollback_s"] = round(time.perf_counter() - t, 1)
        out["phases"] = result["phases"]
        out["swap_phases"] = (result.get("data") or {}).get("swap", {}).get("phases")
        with ctx.pg.connect(env) as conn:
            out["b_migration_gone"] = conn.execute("SELECT to_regclass('b_migrated')").fetchone() == (None,)
            out["rows_back"] = conn.execute("SELECT count(*) FROM bench_payload").fetchone()[0]
        out["target_s"] = 60 * max(1.0, out["db_bytes"] / 2**30)
    finally:
        if env is not None:
            p = project()
            entry = p.store.entries().get(env, {})
            Applier(p, host)._destroy(Action(env=env, action=ActionKind.DESTROY, branch=branch, tier=entry.get("tier"),
                                             reason="bench cleanup", old_commit=entry.get("commit")))
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"database {out['db_bytes'] / 2**20:.0f} MiB + filestore {out['filestore_bytes'] / 2**20:.0f} MiB: "
              f"rollback with data restore {out['rollback_s']} s (phases {out['phases']}); "
              f"pre-deploy backup {out['pre_deploy_backup_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
