"""Checks that a database copy is safe to hand out: neutralized, no live mail or cron, no source personal data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from reconciler.data.masking import LOW_ENTROPY_KINDS, Column, MaskRule, applicable, install_functions, mask_expression

# Crons a neutralized copy may keep running (xml ids): Odoo's neutralize keeps the auto-vacuum only.
ALLOWED_CRONS = ("base.autovacuum_job",)


def _table_exists(conn: psycopg.Connection[Any], table: str) -> bool:
    return conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' AND table_name = %s",
                        (table,)).fetchone() is not None


def _param(conn: psycopg.Connection[Any], key: str) -> str | None:
    if not _table_exists(conn, "ir_config_parameter"):
        return None
    row = conn.execute("SELECT value FROM ir_config_parameter WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def check_neutralized(conn: psycopg.Connection[Any], mail_server: Mapping[str, Any] | None = None,
                      allowed_crons: Iterable[str] = ALLOWED_CRONS) -> dict[str, dict[str, Any]]:
    """database.is_neutralized, outgoing mail servers, crons, automation rules and queued jobs."""
    checks: dict[str, dict[str, Any]] = {}
    flag = _param(conn, "database.is_neutralized")
    checks["is_neutralized"] = {"ok": flag == "true", "value": flag}
    servers = conn.execute("SELECT name, smtp_host, smtp_port FROM ir_mail_server WHERE active ORDER BY id").fetchall()
    catcher = (str(mail_server["host"]), int(mail_server["port"])) if mail_server else None
    others = [name for name, host, port in servers if (host, port) != catcher]
    checks["mail_servers"] = {"ok": not others, "active_not_catcher": others,
                              "catcher_active": any((h, p) == catcher for _n, h, p in servers)}
    if catcher is not None and not checks["mail_servers"]["catcher_active"]:
        checks["mail_servers"]["ok"] = False
    allowed = [tuple(x.split(".", 1)) for x in allowed_crons]
    crons = conn.execute(
        "SELECT c.cron_name FROM ir_cron c WHERE c.active AND NOT EXISTS (SELECT 1 FROM ir_model_data d "
        "WHERE d.model = 'ir.cron' AND d.res_id = c.id AND (d.module, d.name) IN (SELECT * FROM unnest(%s::text[], "
        "%s::text[]))) ORDER BY c.id", ([a[0] for a in allowed], [a[1] for a in allowed])).fetchall()
    checks["crons"] = {"ok": not crons, "active_not_allowed": [c[0] for c in crons]}
    if _table_exists(conn, "base_automation"):
        n = conn.execute("SELECT count(*) FROM base_automation WHERE active").fetchone()[0]
        checks["automation_rules"] = {"ok": n == 0, "active": n}
    if _table_exists(conn, "queue_job"):
        n = conn.execute("SELECT count(*) FROM queue_job WHERE state IN ('pending', 'enqueued', 'started', "
                         "'wait_dependencies')").fetchone()[0]
        checks["queue_jobs"] = {"ok": n == 0, "pending": n}
    return checks


def check_identity(conn: psycopg.Connection[Any], source: psycopg.Connection[Any] | None) -> dict[str, Any]:
    """A copy must not share database.uuid / database.secret with its source (sessions, tokens, IAP)."""
    uuid, secret = _param(conn, "database.uuid"), _param(conn, "database.secret")
    out: dict[str, Any] = {"ok": bool(uuid) and bool(secret), "uuid": uuid}
    if source is not None:
        same = [k for k in ("database.uuid", "database.secret") if _param(source, k) == _param(conn, k)]
        out.update(ok=out["ok"] and not same, same_as_source=same)
    return out


def scan_masked(conn: psycopg.Connection[Any], source: psycopg.Connection[Any], key: str,
                rules: Iterable[MaskRule]) -> dict[str, Any]:
    """For every masked column, how many values of the source are still in the copy (compared by md5,
    streamed with COPY: memory stays flat on millions of rows). Values the rule keeps on purpose
    (logins without @) are not counted. Low-entropy kinds are compared row by row (same id)."""
    install_functions(conn)
    counts: dict[str, int] = {}
    methods: dict[str, str] = {}
    src_columns = {(c.rule.table, c.rule.column) for c in applicable(source, rules)}
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS oo_scan (oo_id bigint, oo_h text)")
    for col in applicable(conn, rules):
        table, column = col.rule.table, col.rule.column
        if (table, column) not in src_columns:
            continue
        by_row = col.rule.kind in LOW_ENTROPY_KINDS and _has_id(conn, table)
        methods[f"{table}.{column}"] = "rows" if by_row else "values"
        counts[f"{table}.{column}"] = _scan_one(conn, source, col, key, by_row)
    leaked = {k: v for k, v in counts.items() if v}
    return {"ok": not leaked, "present": counts, "leaked": leaked, "methods": methods}


def _has_id(conn: psycopg.Connection[Any], table: str) -> bool:
    return conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
                        "AND column_name = 'id'", (table,)).fetchone() is not None


def _scan_one(conn: psycopg.Connection[Any], source: psycopg.Connection[Any], col: Column, key: str,
              by_row: bool) -> int:
    t, c = sql.Identifier(col.rule.table), sql.Identifier(col.rule.column)
    present = sql.SQL("{c} IS NOT NULL AND {c}::text <> ''").format(c=c)
    conn.execute("TRUNCATE oo_scan")
    if by_row:
        out_q = sql.SQL("COPY (SELECT id, md5({c}::text) FROM {t} WHERE {p}) TO STDOUT").format(c=c, t=t, p=present)
        in_q = sql.SQL("COPY oo_scan (oo_id, oo_h) FROM STDIN")
    else:
        out_q = sql.SQL("COPY (SELECT DISTINCT md5({c}::text) FROM {t} WHERE {p}) TO STDOUT").format(
            c=c, t=t, p=present)
        in_q = sql.SQL("COPY oo_scan (oo_h) FROM STDIN")
    with source.cursor().copy(out_q) as out, conn.cursor().copy(in_q) as into:
        for chunk in out:
            into.write(chunk)
    kept_on_purpose = sql.SQL("({m}) IS NOT DISTINCT FROM {c}").format(m=mask_expression(col), c=c)
    if by_row:
        q = sql.SQL("SELECT count(*) FROM {t} JOIN oo_scan s ON s.oo_id = {t}.id WHERE {p} "
                    "AND md5({c}::text) = s.oo_h AND NOT {k}").format(t=t, p=present, c=c, k=kept_on_purpose)
    else:
        conn.execute("ANALYZE oo_scan")  # lets the planner hash the (possibly large) value set
        q = sql.SQL("SELECT count(*) FROM {t} WHERE {p} AND md5({c}::text) IN (SELECT oo_h FROM oo_scan) "
                    "AND NOT {k}").format(t=t, p=present, c=c, k=kept_on_purpose)
    return int(conn.execute(q, {"k": key}).fetchone()[0])


def summarize(checks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    failed = sorted(name for name, result in checks.items() if not result.get("ok"))
    return {"ok": not failed, "failed": failed, "checks": dict(checks)}
