"""Benchmark masking + the whole-copy leak scan on a real Odoo 19 database grown to production size.

    python bench/bench_mask.py [--template oo_rt_tpl_...] [--partners 600000] [--messages 300000]
                               [--attachments 10000] [--json]

Needs `bash scripts/services.sh start` (.work/services.env) and a real Odoo database to grow from: by
default the largest real-Odoo test template (`oo_rt_tpl_*`, built by `pytest tests/realodoo`, e.g.
tests/realodoo/test_masking.py: contacts, mail, crm, sale, hr, calendar, website). It copies the template,
grows it set-based (INSERT ... SELECT from a real row x generate_series: partners with names, e-mails,
phones and addresses; messages whose bodies quote them; text attachments in the filestore quoting them,
plus binary ones), then times what a masked clone does after its FILE_COPY:
  filestore -- the copy of the filestore (reflink or plain copy: never a hardlink to the source)
  mask      -- apply_masking with the version's catalogue + text attachments replaced
  scan      -- scan_clone: every text column of every table and the filestore's text files
and reports seconds per GB of database (goal in issue 11: mask + scan <= 60 s per GB).
Everything it creates is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from reconciler.data.catalogue import load_catalogue, odoo_version  # noqa: E402
from reconciler.data.filestore import link_tree  # noqa: E402
from reconciler.data.leakscan import scan_clone  # noqa: E402
from reconciler.data.masking import apply_masking, replace_attachments  # noqa: E402
from reconciler.executors.postgres import Postgres  # noqa: E402
from tests.services import load_services_env  # noqa: E402

PERSONAL = {  # per generated row g
    "name": "'Customer ' || g || ' ' || (ARRAY['Smith','Dubois','Peeters','Rossi','Novak'])[1 + g %% 5]",
    "complete_name": "'Customer ' || g || ' ' || (ARRAY['Smith','Dubois','Peeters','Rossi','Novak'])[1 + g %% 5]",
    "email": "'customer' || g || '@mail' || (g %% 97) || '.example.com'",
    "email_normalized": "'customer' || g || '@mail' || (g %% 97) || '.example.com'",
    "phone": "'+32 47' || (g %% 10) || ' ' || lpad((g %% 1000000)::text, 6, '0')",
    "phone_sanitized": "'+3247' || (g %% 10) || lpad((g %% 1000000)::text, 6, '0')",
    "street": "(g %% 9999) || ' Rue du Commerce ' || g",
    "city": "(ARRAY['Brussels','Ghent','Namur','Liege','Bruges'])[1 + g %% 5]",
    "zip": "(1000 + g %% 8999)::text",
}


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
        "AND column_name <> 'id' AND is_generated = 'NEVER' ORDER BY ordinal_position", (table,)).fetchall()]


def grow(conn: psycopg.Connection[Any], table: str, base_id: int, n: int, overrides: dict[str, str]) -> None:
    """n copies of row `base_id` of `table` with `overrides` (SQL over g), in steps of 100,000 rows."""
    cols = _columns(conn, table)
    select = [sql.SQL(overrides[c]) if c in overrides else sql.SQL("r.{}").format(sql.Identifier(c)) for c in cols]
    step = 100_000
    for start in range(1, n + 1, step):
        conn.execute(sql.SQL("INSERT INTO {t} ({c}) SELECT {s} FROM {t} r, generate_series(%s::integer, %s::integer) g "
                             "WHERE r.id = %s").format(t=sql.Identifier(table),
                                                      c=sql.SQL(", ").join(map(sql.Identifier, cols)),
                                                      s=sql.SQL(", ").join(select)),
                     (start, min(n, start + step - 1), base_id))


def build(pg: Postgres, template: str, db: str, filestore: Path, args: argparse.Namespace) -> dict[str, Any]:
    t = time.monotonic()
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(db), sql.Identifier(template)))
    with pg.connect(db) as conn:
        base = conn.execute("SELECT min(id) FROM res_partner WHERE id NOT IN (SELECT partner_id FROM res_company) "
                            "AND active").fetchone()[0]
        grow(conn, "res_partner", base, args.partners, PERSONAL)
        if not conn.execute("SELECT 1 FROM mail_message LIMIT 1").fetchone():
            conn.execute("INSERT INTO mail_message (model, res_id, message_type, body, date) "
                         "VALUES ('res.partner', %s, 'comment', '<p>x</p>', now())", (base,))
        msg = conn.execute("SELECT min(id) FROM mail_message").fetchone()[0]
        grow(conn, "mail_message", msg, args.messages, {
            "body": "'<p>Dear Customer ' || g || ', call us back at +32 47' || (g %% 10) || ' ' || "
                    "lpad((g %% 1000000)::text, 6, '0') || ' or write to customer' || g || '@mail' || (g %% 97) || "
                    "'.example.com. ' || repeat('Kind regards from the sales team. ', 8) || '</p>'",
            "email_from": "'\"Customer ' || g || '\" <customer' || g || '@mail' || (g %% 97) || '.example.com>'",
            "model": "'res.partner'", "res_id": f"{base} + g", "subject": "'Quotation ' || g",
            "message_id": "'<' || md5(g::text) || '@bench>'"})
        # Attachments: half text files quoting a customer, half binary; each its own file in the filestore.
        att = conn.execute("SELECT min(id) FROM ir_attachment").fetchone()[0]
        rows = []
        for i in range(1, args.attachments + 1):
            text = i % 2 == 0
            data = (f"Customer {i} {['Smith', 'Dubois', 'Peeters', 'Rossi', 'Novak'][i % 5]}\n"
                    f"customer{i}@mail{i % 97}.example.com, +32 47{i % 10} {i % 1000000:06d}\n" * 40).encode() \
                if text else hashlib.sha512(str(i).encode()).digest() * 256
            sha1 = hashlib.sha1(data).hexdigest()  # Odoo's filestore naming
            fname = f"{sha1[:2]}/{sha1}"
            (filestore / sha1[:2]).mkdir(parents=True, exist_ok=True)
            (filestore / fname).write_bytes(data)
            rows.append((i, fname, sha1, len(data), "text/plain" if text else "application/octet-stream",
                         data.decode() if text else None))
        conn.execute("CREATE TEMP TABLE bench_att (g integer, fname text, sha1 text, size integer, mime text, "
                     "idx text)")
        with conn.cursor().copy("COPY bench_att FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        cols = _columns(conn, "ir_attachment")
        over = {"name": "'doc' || b.g || '.txt'", "res_model": "'res.partner'", "res_id": f"{base} + b.g",
                "type": "'binary'", "store_fname": "b.fname", "checksum": "b.sha1", "file_size": "b.size",
                "mimetype": "b.mime", "index_content": "b.idx", "db_datas": "NULL", "url": "NULL",
                "res_field": "NULL", "public": "false"}
        select = [sql.SQL(over[c]) if c in over else sql.SQL("r.{}").format(sql.Identifier(c)) for c in cols]
        conn.execute(sql.SQL("INSERT INTO ir_attachment ({c}) SELECT {s} FROM ir_attachment r, bench_att b "
                             "WHERE r.id = %s").format(c=sql.SQL(", ").join(map(sql.Identifier, cols)),
                                                      s=sql.SQL(", ").join(select)), (att,))
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    fs_bytes = sum(p.stat().st_size for p in filestore.rglob("*") if p.is_file())
    return {"build_s": round(time.monotonic() - t, 1), "db_bytes": size, "filestore_bytes": fs_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", help="a real Odoo database to grow from (default: largest oo_rt_tpl_*)")
    parser.add_argument("--partners", type=int, default=600_000)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--attachments", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = load_services_env()
    pg = Postgres(env["ODOOOPS_PG_HOST"], int(env["ODOOOPS_PG_PORT"]), env["ODOOOPS_PG_USER"],
                  env["ODOOOPS_PG_PASSWORD"])
    template = args.template
    if not template:
        with pg.connect() as conn:
            row = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'oo\\_rt\\_tpl\\_%%' "
                               "ORDER BY pg_database_size(datname) DESC LIMIT 1").fetchone()
        if not row:
            sys.exit("no real Odoo template database (oo_rt_tpl_*): run pytest tests/realodoo/test_masking.py "
                     "first, or pass --template DB")
        template = row[0]
    tag = uuid.uuid4().hex[:8]
    src, dst = f"bench_mask_src_{tag}", f"bench_mask_dst_{tag}"
    work = ROOT / ".work" / f"bench-mask-{tag}"
    src_fs, dst_fs = work / "src", work / "dst"
    src_fs.mkdir(parents=True)
    out: dict[str, Any] = {"template": template, "partners": args.partners, "messages": args.messages,
                           "attachments": args.attachments}
    try:
        out.update(build(pg, template, src, src_fs, args))
        t = time.monotonic()
        with pg.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(dst), sql.Identifier(src)))
        out["copy_db_s"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        stats = link_tree(src_fs, dst_fs, hardlink=False)
        out["filestore_s"] = round(time.monotonic() - t, 2)
        out["filestore"] = stats.as_dict()
        with pg.connect(dst) as conn, pg.connect(src) as source:
            catalogue = load_catalogue(odoo_version(conn))
            t = time.monotonic()
            with conn.transaction():
                report = apply_masking(conn, "bench-key", catalogue.rules, catalogue)
                attachments = replace_attachments(conn, dst_fs, "text")
            out["mask_s"] = round(time.monotonic() - t, 1)
            out["masked_rows"] = report["rows"]
            out["attachments_replaced"] = attachments
            t = time.monotonic()
            scan = scan_clone(conn, source, catalogue, filestore=dst_fs, source_filestore=src_fs)
            out["scan_s"] = round(time.monotonic() - t, 1)
            out["scan"] = {k: v for k, v in scan.items() if k not in ("examples", "chance_equal")}
        gb = out["db_bytes"] / 1024 ** 3
        out["db_gb"] = round(gb, 3)
        out["mask_plus_scan_s_per_gb"] = round((out["mask_s"] + out["scan_s"]) / gb, 1)
        out["goal_met"] = out["mask_plus_scan_s_per_gb"] <= 60 and scan["leaks"] == 0
    finally:
        for db in (dst, src):
            pg.drop(db)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
