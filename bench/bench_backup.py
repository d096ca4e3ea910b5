"""Backup, verify and restore times of a generated database, and the new bytes of a second backup (dedupe).

Usage (services up, venv active): python bench/bench_backup.py --mb 200 --files 200
It applies the example's feature env (stand-in Odoo), fills its database with --mb of incompressible rows
and its filestore with --files files of 64 KiB, then times create_backup, a second create_backup,
verify_backup and restore_to_scratch, and destroys everything."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.controller.apply import Applier
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.data.backup import create_backup
from reconciler.data.backup_check import verify_backup
from reconciler.data.context import DataContext
from reconciler.data.restore import restore_to_scratch
from reconciler.platform.host import HostSettings
from tests.example_repo import build_example, git
from tests.services import load_services_env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100, help="incompressible data added to the database (MiB)")
    ap.add_argument("--files", type=int, default=100, help="64 KiB filestore files added")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(tmp / "secret.key")
    env_vars = load_services_env()
    env_vars["ODOOOPS_IMAGE_OVERRIDES"] = f"odoo:19.0={env_vars['ODOOOPS_STANDIN_IMAGE']}"
    env_vars["ODOOOPS_GIT_MIRRORS"] = f"https://github.com/OCA/web.git={(tmp / 'oca.git').as_uri()}"
    work = tmp / "project"
    build_example(work, oca_dest=tmp / "oca.git")
    branch = f"feature/bench{uuid.uuid4().hex[:6]}"
    git(work, "checkout", "-q", "-b", branch, "develop")
    host = HostSettings.from_env(tmp / "state", env_vars)
    project = Project.open(str(work), state_dir=tmp / "state")
    report = Applier(project, host).apply(compute_plan(project, branches=[branch]))
    env = report.environments[0].env
    ctx = DataContext.for_project(project, host)
    out: dict[str, object] = {"mb": args.mb, "files": args.files, "cpus": os.cpu_count(),
                              "loadavg_before": os.getloadavg()}
    try:
        with ctx.pg.connect(env) as conn:
            conn.execute("CREATE TABLE bench_filler AS SELECT (SELECT decode(string_agg(md5(random()::text || r || g),"
                         " ''), 'hex') FROM generate_series(1, 64) g) AS b FROM generate_series(1, %s) r",
                         (args.mb * 1024,))
        fs = host.filestore_dir(env) / "bench"
        fs.mkdir(parents=True, exist_ok=True)
        for i in range(args.files):
            (fs / f"f{i:05d}").write_bytes(os.urandom(64 << 10))
        out["db_bytes"] = ctx.pg.size_bytes(env)
        t = time.monotonic()
        first = create_backup(ctx, env)
        out["backup_s"] = round(time.monotonic() - t, 2)
        out["backup_bytes"] = first.sizes["total"]
        t = time.monotonic()
        second = create_backup(ctx, env)
        out["second_backup_s"] = round(time.monotonic() - t, 2)
        out["second_new_bytes"] = second.sizes["new_bytes"]
        out["second_new_filestore_bytes"] = second.sizes["new_bytes"] - (
            second.dump["size"] if second.dump["sha256"] != first.dump["sha256"] else 0)
        t = time.monotonic()
        verify_backup(ctx, env, second.id)
        out["verify_s"] = round(time.monotonic() - t, 2)
        ctx.store.set_state(env, "running", tier="production")  # own backup into itself: no sanitize step
        t = time.monotonic()
        db, restored = restore_to_scratch(ctx, env, second.id, env)
        out["restore_to_scratch_s"] = round(time.monotonic() - t, 2)
        ctx.pg.drop(db)
        shutil.rmtree(restored, ignore_errors=True)
        out["loadavg_after"] = os.getloadavg()
    finally:
        applier = Applier(project, host)
        for name, entry in project.store.entries().items():
            applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                    tier=entry.get("tier"), reason="bench cleanup", old_commit=entry.get("commit")))
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
