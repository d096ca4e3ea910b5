"""Benchmark database + filestore clones (needs `bash scripts/services.sh start` and .work/services.env).

    python bench/bench_clone.py [--size-mb 1024] [--clones 10] [--mask-rows 200000] [--json]

Builds a source of --size-mb of table rows (generate_series, with a primary key) plus a quarter of that
in filestore files, then times side by side in one run:
  platform   -- Postgres.clone (quiesced CREATE DATABASE ... STRATEGY FILE_COPY) + filestore.link_tree
  dump       -- pg_dump -Fc | pg_restore into a new database + cp -a of the filestore (what most tools do)
  raw        -- cp -a of the database's directory under the PostgreSQL data dir + cp -a of the filestore
Targets: platform >= 10x faster than dump; platform within 1.5x of raw.
Then: --clones filestore copies of one production -> bytes shared by inode (target >= 90 %),
and masking throughput on --mask-rows partner rows. Everything it creates is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from psycopg import sql  # noqa: E402

from reconciler.data.filestore import link_tree, shared_bytes  # noqa: E402
from reconciler.data.masking import DEFAULT_RULES, apply_masking  # noqa: E402
from reconciler.executors.postgres import Postgres  # noqa: E402
from reconciler.platform.host import HostSettings  # noqa: E402
from tests.services import load_services_env  # noqa: E402

ROW_BYTES = 210  # on-disk size of one generated row (tuple header + bigint + 3 x md5 text + numeric + ts)


def build_source(pg: Postgres, db: str, size_mb: int, filestore: Path) -> dict[str, Any]:
    t = time.monotonic()
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    rows = size_mb * 1024 * 1024 // ROW_BYTES
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, a text, b text, c text, n numeric, ts timestamptz)")
        step = 500_000
        for start in range(1, rows + 1, step):
            conn.execute("INSERT INTO big SELECT g, md5(random()::text), md5(random()::text), md5(g::text), "
                         "random() * 1e6, now() - g * interval '1 second' FROM generate_series(%s, %s) g",
                         (start, min(rows, start + step - 1)))
        conn.execute("VACUUM ANALYZE big")
        conn.execute("CHECKPOINT")
    fs_bytes = size_mb * 1024 * 1024 // 4
    files = 0
    written = 0
    while written < fs_bytes:
        size = 16 * 1024 + (files * 7919) % (112 * 1024)  # 16..128 KB, like scanned documents and photos
        data = os.urandom(size)
        name = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        path = filestore / name[:2] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files += 1
        written += size
    subprocess.run(["sync"], check=False)
    return {"db_bytes": pg.size_bytes(db), "filestore_bytes": written, "filestore_files": files, "rows": rows,
            "build_s": round(time.monotonic() - t, 1)}


def timed(fn: Any) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = load_services_env()
    work = ROOT / ".work" / f"bench-clone-{uuid.uuid4().hex[:8]}"
    host = HostSettings.from_env(work / "state", env)
    pg = Postgres.from_host(host)
    tag = uuid.uuid4().hex[:8]
    src, dst_platform, dst_dump = f"bench-src-{tag}", f"oo_clone_{tag}a", f"oo_clone_{tag}b"
    src_fs = work / "fs" / "src"
    out: dict[str, Any] = {"size_mb": args.size_mb, "load_before": os.getloadavg(), "cpus": os.cpu_count()}
    try:
        src_fs.mkdir(parents=True)
        out["source"] = build_source(pg, src, args.size_mb, src_fs)
        subprocess.run(["sync"], check=False)

        # (a) the platform's clone
        t_db = pg.clone(src, dst_platform)
        t_fs = timed(lambda: link_tree(src_fs, work / "fs" / "platform"))
        out["platform"] = {"db_s": round(t_db, 3), "filestore_s": round(t_fs, 3), "total_s": round(t_db + t_fs, 3)}

        # (b) pg_dump | pg_restore + cp -a
        dsn_env = {**os.environ, "PGPASSWORD": host.pg_admin_password}
        common = ["-h", host.pg_host, "-p", str(host.pg_port), "-U", host.pg_admin_user]

        def dump_restore() -> None:
            with pg.connect() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dst_dump)))
            dump = subprocess.Popen([host.pg_tool("pg_dump"), *common, "-Fc", src], stdout=subprocess.PIPE,
                                    env=dsn_env)
            restore = subprocess.run([host.pg_tool("pg_restore"), *common, "--no-owner", "-d", dst_dump],
                                     stdin=dump.stdout, env=dsn_env, check=True)
            assert dump.stdout is not None
            dump.stdout.close()
            if dump.wait() != 0 or restore.returncode != 0:
                raise RuntimeError("pg_dump | pg_restore failed")

        t_db = timed(dump_restore)
        t_fs = timed(lambda: subprocess.run(["cp", "-a", str(src_fs), str(work / "fs" / "dump")], check=True))
        out["dump"] = {"db_s": round(t_db, 3), "filestore_s": round(t_fs, 3), "total_s": round(t_db + t_fs, 3)}

        # (c) raw copy of the same bytes
        with pg.connect() as conn:
            oid = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (src,)).fetchone()[0]
            data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        t_db = timed(lambda: subprocess.run(["cp", "-a", str(data_dir / "base" / str(oid)), str(work / "raw-db")],
                                            check=True))
        t_fs = timed(lambda: subprocess.run(["cp", "-a", str(src_fs), str(work / "fs" / "raw")], check=True))
        out["raw"] = {"db_s": round(t_db, 3), "filestore_s": round(t_fs, 3), "total_s": round(t_db + t_fs, 3)}
        # FILE_COPY fsyncs every file it writes; the same for the raw copy, for a like-for-like figure.
        t_db = timed(lambda: subprocess.run(["cp", "-a", str(data_dir / "base" / str(oid)), str(work / "raw-db2")],
                                            check=True))
        t_sync = timed(lambda: subprocess.run(["sync", *[str(p) for p in (work / "raw-db2").iterdir()]],
                                              check=True))
        out["raw_fsynced"] = {"db_s": round(t_db + t_sync, 3), "filestore_s": round(t_fs, 3),
                              "total_s": round(t_db + t_sync + t_fs, 3)}
        out["speedup_vs_dump"] = round(out["dump"]["total_s"] / out["platform"]["total_s"], 1)
        out["ratio_to_raw"] = round(out["platform"]["total_s"] / out["raw"]["total_s"], 2)
        out["ratio_to_raw_fsynced"] = round(out["platform"]["total_s"] / out["raw_fsynced"]["total_s"], 2)

        # Dedup: N environments cloned from one production.
        clones = [work / "fs" / f"env{i}" for i in range(args.clones)]
        t = time.monotonic()
        for c in clones:
            link_tree(src_fs, c)
        out["dedup"] = {"clones": args.clones, "link_s": round(time.monotonic() - t, 3),
                        "with_production": shared_bytes([src_fs, *clones]).as_dict(),
                        "clones_only": shared_bytes(clones).as_dict()}

        # Masking throughput (set-based SQL) on a partner-shaped table.
        if args.mask_rows:
            with pg.connect(dst_platform) as conn:
                conn.execute("CREATE TABLE res_partner (id serial PRIMARY KEY, name varchar, email varchar, "
                             "phone varchar, street varchar, zip varchar, city varchar, vat varchar, comment text)")
                conn.execute("INSERT INTO res_partner (name, email, phone, street, zip, city, vat, comment) "
                             "SELECT 'Person ' || g, 'person' || g || '@corp.example.com', '+32 470 ' || "
                             "lpad(g::text, 6, '0'), g || ' Main Street', lpad((g %% 9999)::text, 4, '0'), "
                             "'City ' || (g %% 500), 'BE0' || lpad(g::text, 9, '0'), 'Notes about ' || g "
                             "FROM generate_series(1, %s) g", (args.mask_rows,))
                t = time.monotonic()
                with conn.transaction():
                    report = apply_masking(conn, "bench-key", DEFAULT_RULES)
                secs = time.monotonic() - t
            out["masking"] = {"rows": args.mask_rows, "columns": len(report["columns"]), "seconds": round(secs, 2),
                              "rows_per_s": round(args.mask_rows / secs)}
    finally:
        for db in (src, dst_platform, dst_dump):
            pg.drop(db)
        shutil.rmtree(work, ignore_errors=True)
    out["load_after"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--clones", type=int, default=10)
    ap.add_argument("--mask-rows", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = run(args)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    s = out["source"]
    print(f"source: {s['db_bytes'] / 2**20:.0f} MiB database ({s['rows']} rows) + {s['filestore_bytes'] / 2**20:.0f} "
          f"MiB filestore ({s['filestore_files']} files), built in {s['build_s']} s")
    for key in ("platform", "dump", "raw", "raw_fsynced"):
        r = out[key]
        print(f"{key:11} db {r['db_s']:8.2f} s  filestore {r['filestore_s']:7.2f} s  total {r['total_s']:8.2f} s")
    print(f"platform vs dump: {out['speedup_vs_dump']}x faster (target >= 10x); "
          f"platform / raw: {out['ratio_to_raw']}, / raw fsynced: {out['ratio_to_raw_fsynced']} (target <= 1.5)")
    d = out["dedup"]
    print(f"dedup over {d['clones']} clones + production: shared {d['with_production']['shared_fraction']:.1%} "
          f"of bytes, saved {d['with_production']['saved_fraction']:.1%} (target >= 90 %)")
    if "masking" in out:
        m = out["masking"]
        print(f"masking: {m['rows']} rows x {m['columns']} columns in {m['seconds']} s ({m['rows_per_s']} rows/s)")
    print(f"load average before {out['load_before']}, after {out['load_after']}, cpus {out['cpus']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
