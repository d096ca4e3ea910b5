"""`odooops audit list|verify`: the append-only, hash-chained audit trail."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from reconciler.cli.client import Client, client_command, emit, table
from reconciler.errors import OdooOpsError


@click.group("audit")
def audit_group() -> None:
    """List and verify the audit trail."""


@audit_group.command("list")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@client_command
def audit_list(limit: int, server: str | None, as_json: bool) -> None:
    """The latest audit events: who did what to which target, and the result."""
    data = Client.from_config(server).get("/api/v1/audit", limit=limit)
    emit(data, as_json, lambda: table(data.get("events") or [], [
        ("time", "time"), ("actor", "actor"), ("action", "action"), ("target", "target"), ("result", "result")],
        "(no events)"))


EXIT_TAMPERED, EXIT_UNVERIFIABLE = 1, 2


@audit_group.command("verify")
@click.option("--log", "log_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Check this audit log file here, without a server (e.g. a copy taken off the host).")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="With --log: the audit HMAC key. Default: the host's keys.audit (odooops host show).")
@click.option("--repo", default=None, help="With --log: the project repository holding refs/odooops/audit-anchors.")
@client_command
def audit_verify(log_file: Path | None, key_file: Path | None, repo: str | None, server: str | None,
                 as_json: bool) -> None:
    """Check the keyed chain and the latest anchor; name the first bad entry.

    Exit 0: intact. Exit 1: tampered (an entry edited, deleted, inserted, reordered, the chain recomputed,
    or the log cut back behind its anchor). Exit 2: cannot verify (no key, wrong key, anchor unreadable).
    """
    if log_file is None:
        data = Client.from_config(server).get("/api/v1/audit/verify")
    else:
        data = _verify_local(log_file, key_file, repo)
    emit(data, as_json, lambda: click.echo(data.get("message") or (
        f"audit trail intact: {data.get('entries')} entries" if data.get("ok")
        else f"audit trail BROKEN at entry {data.get('first_bad')} of {data.get('entries')}")))
    if not data.get("ok"):
        sys.exit(EXIT_UNVERIFIABLE if data.get("status") == "unverifiable" else EXIT_TAMPERED)


def _verify_local(log_file: Path, key_file: Path | None, repo: str | None) -> dict[str, Any]:
    # Imported when used (startup time): only a local verification reads the log and its key.
    from reconciler.api.audit import AuditKey, AuditLog, default_audit_key_file
    from reconciler.sources.audit_anchors import GitAnchors

    if not log_file.is_file():
        raise OdooOpsError("AUDIT_LOG_MISSING", f"{log_file} does not exist", "pass the audit log's path to --log")
    path = key_file or default_audit_key_file()
    key: AuditKey | None = None
    missing = ""
    try:
        key = AuditKey.from_file(path, create=False)
    except OdooOpsError as exc:
        if exc.code == "AUDIT_KEY_MISSING":  # fine for a log with no keyed entry; verify() says otherwise
            missing = f" ({exc.message})"
        else:
            return {"ok": False, "status": "unverifiable", "entries": None, "first_bad": None,
                    "reason": exc.message,
                    "message": f"audit trail CANNOT BE VERIFIED: {exc.message} (fix: {exc.remediation})"}
    with tempfile.TemporaryDirectory(prefix="odooops-anchors-") as scratch:
        anchors = GitAnchors(repo, Path(scratch) / "anchors.git") if repo else None
        result = AuditLog(log_file, key, anchors).verify()
    if missing and result["status"] == "unverifiable":
        result["reason"] += missing
        result["message"] += missing
    return result
