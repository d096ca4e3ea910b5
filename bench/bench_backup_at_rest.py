"""Cost of encrypting backups at rest: the sealed pg_dump path against the plain one, in the same run.

Usage (services up, venv active): python bench/bench_backup_at_rest.py --mb 300 --rounds 3
It applies the example's feature env (stand-in Odoo), adds --mb of incompressible rows to its database,
then alternates, --rounds times: the plain dump path of the releases before encryption (pg_dump -> SHA-256
-> staging file -> store) and the sealed one (data.backup._dump: pg_dump -> SHA-256 -> AES-256-GCM chunks
-> staging file -> store), and reading each back with its checksum (plain read vs authenticated decryption,
data.backup.read_part). The same comparison without pg_dump (whose compression dominates the dump path):
a file of the dump's size streamed plain (SHA-256 + copy) against sealed (SHA-256 + AES-256-GCM + copy).
Medians are printed with the sealed/plain ratios; then everything is destroyed.

`--cpu-only` skips the environment and measures CPU time (time.process_time, less sensitive to other load
on a shared machine) of SHA-256 alone vs SHA-256 + sealing, and of reading vs opening, over --mb of random
bytes in memory."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.controller.apply import Applier
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import Action, ActionKind
from reconciler.data import backup
from reconciler.data.backup_crypto import BackupKey, unseal
from reconciler.data.context import DataContext
from reconciler.executors.storage import LocalStore
from reconciler.platform.host import HostSettings
from tests.example_repo import build_example, git
from tests.services import load_services_env

CHUNK = 1 << 20


def plain_dump(ctx: DataContext, store: LocalStore, db: str) -> dict[str, Any]:
    """The dump step as it was before encryption (same streaming, same fsync, no sealing)."""
    cmd = [ctx.host.pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl", "--dbname", db]
    h, size = hashlib.sha256(), 0
    with store.staging_file(".dump") as tmp:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=backup.pg_environ(ctx))
        assert proc.stdout is not None
        with open(tmp, "wb") as out:
            for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if proc.wait() != 0:
            raise SystemExit(f"pg_dump failed: {proc.returncode}")
        key = backup.object_key(h.hexdigest())
        store.put_file(key, tmp, move=True)
    return {"sha256": h.hexdigest(), "size": size, "key": key}


def stream_file(src: Path, dest: Path, seal: BackupKey | None) -> str:
    """The pipeline without pg_dump: read, hash, (seal,) write, fsync."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "wb") as out:
        sink: Any = seal.sealer(out, b"bench") if seal is not None else out
        for chunk in iter(lambda: fin.read(CHUNK), b""):
            h.update(chunk)
            sink.write(chunk)
        if seal is not None:
            sink.close()
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


class _Null:
    def write(self, data: bytes) -> int:
        return len(data)


def cpu_only(mb: int, rounds: int) -> dict[str, Any]:
    data = os.urandom(mb << 20)
    key = BackupKey(os.urandom(32))
    runs: dict[str, list[float]] = {"hash_cpu_s": [], "hash_seal_cpu_s": [], "hash_open_cpu_s": []}
    sealed = io.BytesIO()
    for _ in range(rounds):
        t = time.process_time()
        h = hashlib.sha256()
        for i in range(0, len(data), CHUNK):
            h.update(data[i:i + CHUNK])
        runs["hash_cpu_s"].append(time.process_time() - t)
        sealed = io.BytesIO()
        t = time.process_time()
        h = hashlib.sha256()
        writer = key.sealer(sealed, b"bench")
        for i in range(0, len(data), CHUNK):
            h.update(data[i:i + CHUNK])
            writer.write(data[i:i + CHUNK])
        writer.close()
        runs["hash_seal_cpu_s"].append(time.process_time() - t)
        sealed.seek(0)
        t = time.process_time()
        h = hashlib.sha256()
        unseal(key, sealed.read, h.update, b"bench")
        runs["hash_open_cpu_s"].append(time.process_time() - t)
    out: dict[str, Any] = {"mb": mb, "rounds": rounds, "loadavg": os.getloadavg()}
    for name, values in runs.items():
        out[name] = round(statistics.median(values), 3)
        out[name[:-2] + "_all_s"] = [round(v, 3) for v in values]
    out["seal_ratio"] = round(out["hash_seal_cpu_s"] / out["hash_cpu_s"], 3)
    out["open_ratio"] = round(out["hash_open_cpu_s"] / out["hash_cpu_s"], 3)
    out["seal_mb_per_cpu_s"] = round(mb / (out["hash_seal_cpu_s"] - out["hash_cpu_s"]), 1)
    return out


def timed(fn: Any) -> tuple[float, Any]:
    t = time.monotonic()
    out = fn()
    return time.monotonic() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300, help="incompressible data added to the database (MiB)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU cost of sealing, no database")
    args = ap.parse_args()
    if args.cpu_only:
        print(json.dumps(cpu_only(args.mb, args.rounds), indent=1))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-at-rest-"))
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(tmp / "keys" / "secret.key")
    os.environ["ODOOOPS_BACKUP_KEY_FILE"] = str(tmp / "keys" / "backup.key")
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
    store = LocalStore(tmp / "store")
    key = backup.backup_key(host, store, create=True)
    out: dict[str, Any] = {"mb": args.mb, "rounds": args.rounds, "cpus": os.cpu_count(),
                           "loadavg_before": os.getloadavg()}
    runs: dict[str, list[float]] = {"plain_dump_s": [], "sealed_dump_s": [], "plain_read_s": [], "sealed_read_s": [],
                                    "plain_stream_s": [], "sealed_stream_s": []}
    try:
        with ctx.pg.connect(env) as conn:
            conn.execute("CREATE TABLE bench_filler AS SELECT (SELECT decode(string_agg(md5(random()::text || r || g),"
                         " ''), 'hex') FROM generate_series(1, 64) g) AS b FROM generate_series(1, %s) r",
                         (args.mb * 1024,))
        out["db_bytes"] = ctx.pg.size_bytes(env)
        for _ in range(args.rounds):
            s, plain = timed(lambda: plain_dump(ctx, store, env))
            runs["plain_dump_s"].append(s)
            s, sealed = timed(lambda: backup._dump(ctx, store, env, [], key))
            runs["sealed_dump_s"].append(s)
            plain_part = {"sha256": plain["sha256"], "key": plain["key"]}
            s, got = timed(lambda p=plain_part: backup.read_part(store, p, lambda _b: None, None))
            assert got == plain["sha256"]
            runs["plain_read_s"].append(s)
            s, got = timed(lambda p=sealed: backup.read_part(store, p, lambda _b: None, key))
            assert got == sealed["sha256"]
            runs["sealed_read_s"].append(s)
            out["dump_bytes"], out["sealed_bytes"] = sealed["size"], sealed["stored_size"]
            src = store.local_path(plain["key"])
            assert src is not None
            s, _ = timed(lambda src=src: stream_file(src, tmp / "plain.out", None))
            runs["plain_stream_s"].append(s)
            s, _ = timed(lambda src=src: stream_file(src, tmp / "sealed.out", key))
            runs["sealed_stream_s"].append(s)
            for k in (plain["key"], sealed["object"]):
                store.delete(k)
        for name, values in runs.items():
            out[name] = round(statistics.median(values), 2)
            out[name[:-2] + "_all_s"] = [round(v, 2) for v in values]
        out["dump_ratio"] = round(out["sealed_dump_s"] / out["plain_dump_s"], 3)
        out["read_ratio"] = round(out["sealed_read_s"] / out["plain_read_s"], 3)
        out["stream_ratio"] = round(out["sealed_stream_s"] / out["plain_stream_s"], 3)
        out["size_overhead_bytes"] = out["sealed_bytes"] - out["dump_bytes"]
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
