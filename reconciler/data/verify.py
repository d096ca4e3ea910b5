"""Checks that a database copy is safe to hand out: neutralized, no live mail or cron, its own identity.

The scan for the source's personal data is leakscan.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from reconciler.executors.sql import Connection

# Crons a neutralized copy may keep running (xml ids): Odoo's neutralize keeps the auto-vacuum only.
ALLOWED_CRONS = ("base.autovacuum_job",)


def _table_exists(conn: Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' AND table_name = %s",
                        (table,)).fetchone() is not None


def _param(conn: Connection, key: str) -> str | None:
    if not _table_exists(conn, "ir_config_parameter"):
        return None
    row = conn.execute("SELECT value FROM ir_config_parameter WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def check_neutralized(conn: Connection, mail_server: Mapping[str, Any] | None = None,
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
        n = cast(tuple[Any, ...], conn.execute("SELECT count(*) FROM base_automation WHERE active").fetchone())[0]
        checks["automation_rules"] = {"ok": n == 0, "active": n}
    if _table_exists(conn, "queue_job"):
        n = cast(tuple[Any, ...], conn.execute("SELECT count(*) FROM queue_job WHERE state IN ('pending', 'enqueued', "
                                               "'started', 'wait_dependencies')").fetchone())[0]
        checks["queue_jobs"] = {"ok": n == 0, "pending": n}
    return checks


def check_identity(conn: Connection, source: Connection | None) -> dict[str, Any]:
    """A copy must not share database.uuid / database.secret with its source (sessions, tokens, IAP)."""
    uuid, secret = _param(conn, "database.uuid"), _param(conn, "database.secret")
    out: dict[str, Any] = {"ok": bool(uuid) and bool(secret), "uuid": uuid}
    if source is not None:
        same = [k for k in ("database.uuid", "database.secret") if _param(source, k) == _param(conn, k)]
        out.update(ok=out["ok"] and not same, same_as_source=same)
    return out


def summarize(checks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    failed = sorted(name for name, result in checks.items() if not result.get("ok"))
    return {"ok": not failed, "failed": failed, "checks": dict(checks)}
