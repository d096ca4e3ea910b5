"""`odooops db backup|backups|restore|clone|verify|prune`: the data operations of an environment."""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli.client import LONG_S, Client, client_command, emit, env_path, resolve_env, show_fields, table

RESULT_KEYS = ["id", "backup", "database", "db", "verification", "seconds", "swapped", "status", "size_bytes"]


@click.group("db")
def db_group() -> None:
    """Backups, restores, clones and verification."""


@db_group.command("backup")
@click.argument("env")
@click.option("--verify", is_flag=True, help="Restore the backup into a scratch database and check it.")
@client_command
def db_backup(env: str, verify: bool, server: str | None, as_json: bool) -> None:
    """Back up ENV now: database dump plus filestore, with a checksummed manifest."""
    client = Client.from_config(server)
    name = resolve_env(client, env)
    data = client.run(env_path(name, "backups"), {"verify": verify})

    def human() -> None:
        click.echo(f"{name}: backup {data.get('id')}")
        click.echo(f"verification  {verification_text(name, data)}")
        show_fields(data, RESULT_KEYS[5:])

    emit(data, as_json, human)


def verification_text(env: str, data: dict[str, Any]) -> str:
    """`ok (312 modules, restored in 4.1 s, at ...)`, or how to verify a backup that was not."""
    check = data.get("verification")
    if not isinstance(check, dict):
        return f"not verified (odooops db verify {env} --backup {data.get('id')})"
    seconds = check.get("seconds")
    restore = seconds.get("restore") if isinstance(seconds, dict) else None
    detail = [f"{check['modules']} modules" if check.get("modules") is not None else "",
              f"restored in {restore} s" if restore is not None else "",
              f"at {data['verified_at']}" if data.get("verified_at") else ""]
    return ("ok" if check.get("ok") else "FAILED") + (f" ({', '.join(d for d in detail if d)})" if any(detail) else "")


@db_group.command("backups")
@click.argument("env")
@client_command
def db_backups(env: str, server: str | None, as_json: bool) -> None:
    """List ENV's backups, newest first."""
    client = Client.from_config(server)
    data = client.get(env_path(resolve_env(client, env), "backups"))
    emit(data, as_json, lambda: table(data.get("backups") or [], [
        ("id", "id"), ("created_at", "created"), ("reason", "reason"), ("commit", "commit"),
        ("odoo_version", "odoo"), ("size_bytes", "bytes")], "(no backups)"))


@db_group.command("restore")
@click.argument("env")
@click.option("--backup", "backup_id", required=True, metavar="ID", help="Backup id (`odooops db backups ENV`).")
@click.option("--to", "to_env", metavar="ENV", help="Restore into this environment instead of ENV.")
@click.option("--confirm", is_flag=True, help="Required when the target is production.")
@client_command
def db_restore(env: str, backup_id: str, to_env: str | None, confirm: bool, server: str | None,
               as_json: bool) -> None:
    """Restore ENV's backup ID into ENV, or into --to ENV.

    e.g. `odooops db restore production --backup=2026-02-12-03-00 --to=staging`.

    The backup goes to a new database, is verified, then swapped in; the live one is kept until then.
    """
    client = Client.from_config(server)
    name = resolve_env(client, env)
    body = {"backup": backup_id, "to": resolve_env(client, to_env) if to_env else None, "confirm": confirm}
    data = client.run(env_path(name, "restore"), body)

    def human() -> None:
        click.echo(f"Restored {name} backup {backup_id} into {body['to'] or name}")
        show_fields(data, RESULT_KEYS)

    emit(data, as_json, human)


@db_group.command("clone")
@click.argument("source")
@click.argument("target")
@click.option("--neutralize/--no-neutralize", default=True, show_default=True,
              help="Run `odoo neutralize` (mail, crons, payments off) on the copy.")
@click.option("--mask/--no-mask", default=True, show_default=True, help="Replace personal data with fake values.")
@client_command
def db_clone(source: str, target: str, neutralize: bool, mask: bool, server: str | None, as_json: bool) -> None:
    """Clone SOURCE's database and filestore into TARGET, neutralized and masked, verified before use."""
    client = Client.from_config(server)
    body: dict[str, Any] = {"source": resolve_env(client, source), "target": resolve_env(client, target),
                            "neutralize": neutralize, "mask": mask}
    data = client.run("/api/v1/clones", body)

    def human() -> None:
        click.echo(f"Cloned {body['source']} -> {body['target']}")
        click.echo(source_text(body["source"], data))
        show_fields(data, RESULT_KEYS)

    emit(data, as_json, human)


def source_text(source: str, data: dict[str, Any]) -> str:
    """Where the copy's data came from: production's backup (and its age), or the live source."""
    backup = data.get("source_backup")
    if not isinstance(backup, dict):
        return f"source  {source}'s database"
    taken = ", taken for this copy" if backup.get("taken_now") else ""
    return f"source  backup {backup.get('id')} of {source} ({float(backup.get('age_s') or 0):.0f} s old{taken})"


@db_group.command("verify")
@click.argument("env")
@click.option("--backup", "backup_id", required=True, metavar="ID", help="Backup id (`odooops db backups ENV`).")
@client_command
def db_verify(env: str, backup_id: str, server: str | None, as_json: bool) -> None:
    """Restore ENV's backup ID into a scratch database and check checksums, tables and filestore."""
    from urllib.parse import quote

    client = Client.from_config(server)
    name = resolve_env(client, env)
    data = client.run(env_path(name, "backups") + f"/{quote(backup_id, safe='')}/verify")
    emit(data, as_json, lambda: show_fields(data, sorted(data)))
    if data.get("ok") is False:
        raise SystemExit(1)


@db_group.command("prune")
@click.argument("env")
@client_command
def db_prune(env: str, server: str | None, as_json: bool) -> None:
    """Delete ENV's backups that its retention policy does not keep (the daemon also does this on schedule)."""
    client = Client.from_config(server)
    name = resolve_env(client, env)
    data = client.post(env_path(name, "backups") + "/prune", {}, timeout=LONG_S)
    emit(data, as_json, lambda: click.echo(f"{name}: pruned {len(data.get('pruned') or [])} backups, "
                                           f"kept {len(data.get('kept') or [])} ({data.get('retention')})"))
