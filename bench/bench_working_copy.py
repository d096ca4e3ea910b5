"""What a deploy's working copy costs: FILE_COPY clone time of a database by size (docs/adr/0019).

    python -m bench.bench_working_copy [--gb 1.0] [--runs 3]

Builds a throwaway database of about `--gb` GB on the embedded host's PostgreSQL (`bash
scripts/services.sh start`), copies it `--runs` times the way a deploy does (the platform's
Postgres.clone: connections refused, `CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY`), prints
seconds per copy and per GB as JSON, and drops everything it made.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from reconciler.executors.postgres import Postgres
from tests.services import load_services_env

ROW_BYTES = 300  # one generated row below, with its tuple header, on disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = load_services_env()
    pg = Postgres(env["ODOOOPS_PG_HOST"], int(env["ODOOOPS_PG_PORT"]), env["ODOOOPS_PG_USER"],
                  env["ODOOOPS_PG_PASSWORD"])
    src = f"bench_wc_{uuid.uuid4().hex[:10]}"
    copies: list[str] = []
    try:
        with pg.connect() as conn:
            conn.execute(f'CREATE DATABASE "{src}"')
        t = time.monotonic()
        rows = int(args.gb * 2**30 / ROW_BYTES)
        with pg.connect(src) as conn:
            conn.execute("CREATE TABLE filler (id bigint, payload text)")
            step = 500_000
            for start in range(0, rows, step):
                conn.execute("INSERT INTO filler SELECT g, repeat(md5(g::text), 8) FROM generate_series(%s, %s) g",
                             (start, min(rows, start + step) - 1))
            conn.execute("CHECKPOINT")
        build_s = time.monotonic() - t
        size = pg.size_bytes(src)
        runs = []
        for _ in range(args.runs):
            dst = f"bench_wc_copy_{uuid.uuid4().hex[:10]}"
            copies.append(dst)
            runs.append(round(pg.clone(src, dst), 3))
            pg.drop(dst)
        gb = size / 2**30
        print(json.dumps({"database_bytes": size, "database_gb": round(gb, 3), "build_s": round(build_s, 1),
                          "file_copy_s": runs, "file_copy_s_per_gb": round(min(runs) / gb, 3) if gb else None},
                         indent=1))
    finally:
        for db in (*copies, src):
            pg.drop(db)


if __name__ == "__main__":
    main()
