"""`odooops audit list|verify`: the append-only, hash-chained audit trail."""

from __future__ import annotations

import sys

import click

from reconciler.cli.client import Client, client_command, emit, table


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


@audit_group.command("verify")
@client_command
def audit_verify(server: str | None, as_json: bool) -> None:
    """Check the hash chain; exit 1 and name the first bad entry when any was edited or deleted."""
    data = Client.from_config(server).get("/api/v1/audit/verify")
    emit(data, as_json, lambda: click.echo(
        f"audit trail intact: {data.get('entries')} entries" if data.get("ok")
        else f"audit trail BROKEN at entry {data.get('first_bad')} of {data.get('entries')}"))
    if not data.get("ok"):
        sys.exit(1)
