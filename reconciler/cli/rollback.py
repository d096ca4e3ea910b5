"""`odooops rollback [ENV] [--to COMMIT | --clear]`: back to the last healthy deploy (and its data when a
deploy migrated it), or follow the branch head again."""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli.client import (
    ApiError,
    Client,
    ClientError,
    by_name,
    client_command,
    emit,
    env_path,
    fresh_record,
    git,
    list_envs,
    progress,
    resolve_env,
    show_fields,
    wait_env,
)

PIN_PREFIX = "refs/odooops/pins/"  # where the server keeps rollback pins (reconciler/sources/pins.py)


def clear_pin(client: Client, name: str, remote: str) -> dict[str, Any]:
    """DELETE the env's pin through the server; a server without that operation is bypassed from a
    checkout by deleting the pin ref in the remote (the next reconcile follows the branch again)."""
    try:
        return dict(client.request("DELETE", env_path(name, "pin")))
    except ApiError as exc:
        if exc.status not in (404, 405) or exc.code not in ("NOT_FOUND", "METHOD_NOT_ALLOWED"):
            raise
    try:
        git("rev-parse", "--git-dir")
    except ClientError as exc:
        raise ClientError("ROLLBACK_CLEAR_UNSUPPORTED", f"the server at {client.server} cannot clear pins and the "
                          "current directory is not a git checkout",
                          f"run it inside the project checkout, or: `git push {remote} :{PIN_PREFIX}{name}`") from exc
    ref = PIN_PREFIX + name
    if not git("ls-remote", remote, ref):
        return {"env": name, "cleared": False, "status": "not_pinned"}
    git("push", "-q", remote, f":{ref}")
    progress(f"deleted {ref} in {remote} (from this checkout)")
    return {"env": name, "cleared": True, "status": "cleared"}


@click.command("rollback")
@click.argument("env", required=False)
@click.option("--to", "to_commit", metavar="COMMIT", help="Roll back to this commit [default: the last healthy one].")
@click.option("--clear", is_flag=True, help="Remove the rollback pin: follow the branch head again.")
@click.option("--remote", default="origin", show_default=True, help="Git remote for --clear's fallback.")
@click.option("--confirm", is_flag=True,
              help="Accept that restoring the pre-deploy backup discards what was written since (the refusal "
                   "without it states that window).")
@click.option("--code-only", is_flag=True,
              help="Previous code, database kept as it is (refused when the deploy installed or updated modules).")
@click.option("--wait", is_flag=True, help="Wait until ENV runs the rolled-back commit; exit 2 on --timeout.")
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds for --wait.")
@client_command
def rollback_command(env: str | None, to_commit: str | None, clear: bool, remote: str, confirm: bool,
                     code_only: bool, wait: bool, timeout: float, server: str | None, as_json: bool) -> None:
    """Roll ENV (default: the env of the current git branch) back to its last healthy artifact.

    The rollback pins ENV to that commit (refs/odooops/pins/ENV) until its branch moves or
    `odooops rollback ENV --clear`. When the deploy migrated data, its pre-deploy backup is restored
    too, which discards what was written since: the server refuses (ROLLBACK_NEEDS_CONFIRMATION, naming
    the backup's time and the records created and changed since) until --confirm. --code-only keeps
    the database instead, when the deploy installed or updated no module.
    """
    if clear and (to_commit or confirm or code_only):
        raise click.UsageError("--clear excludes --to, --confirm and --code-only")
    if confirm and code_only:
        raise click.UsageError("--code-only keeps the data: it needs no --confirm")
    client = Client.from_config(server)
    name = resolve_env(client, env)
    if clear:
        data = clear_pin(client, name, remote)
        emit(data, as_json, lambda: click.echo(f"{name}: pin {data.get('status')}"))
        return
    body: dict[str, Any] = {"to": to_commit} if to_commit else {}
    if confirm:
        body["confirm"] = True
    if code_only:
        body["code_only"] = True
    before = by_name(name)(list_envs(client)) or {}
    data = client.run(env_path(name, "rollback"), body)
    if wait:
        fresh = fresh_record(data.get("commit") or to_commit, before.get("updated_at"))
        data = {**data, "environment": wait_env(client, by_name(name), fresh, timeout, f"rollback {name}")}
    emit(data, as_json, lambda: show_rollback(name, data))


def show_rollback(name: str, data: dict[str, Any]) -> None:
    click.echo(f"{name}: rolled back")
    show_fields(data, ["commit", "from_commit", "restored_backup", "seconds", "status"])
    discarded = data.get("discarded")
    if isinstance(discarded, dict) and discarded.get("text"):
        click.echo(f"data discarded: {discarded['text']}")
    elif data.get("data_kept"):
        click.echo("data kept: the database was not restored" + (" (--code-only)" if data.get("code_only") else ""))
