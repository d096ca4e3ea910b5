"""`odooops promote SRC DST`: move the tree healthy on SRC to DST, allowed only when the policy's gates hold."""

from __future__ import annotations

import click

from reconciler.cli.client import (
    Client,
    by_name,
    client_command,
    emit,
    fresh_record,
    resolve_env,
    show_fields,
    wait_env,
)


@click.command("promote")
@click.argument("source")
@click.argument("target")
@click.option("--confirm", is_flag=True, help="Required when TARGET is production.")
@click.option("--wait", is_flag=True, help="Wait until TARGET runs the promoted commit; exit 2 on --timeout.")
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds for --wait.")
@client_command
def promote_command(source: str, target: str, confirm: bool, wait: bool, timeout: float, server: str | None,
                    as_json: bool) -> None:
    """Promote SOURCE to TARGET, e.g. `odooops promote staging production --confirm`.

    Refused (exit 3) with the failing gate and the command that fixes it unless the same tree was
    healthy on SOURCE, its tests passed and its migrations ran on a copy of production.
    """
    client = Client.from_config(server)
    src, dst = resolve_env(client, source), resolve_env(client, target)
    data = client.run("/api/v1/promotions", {"source": src, "target": dst, "confirm": confirm})
    if wait:
        data = {**data, "environment": wait_env(client, by_name(dst), fresh_record(data.get("commit")),
                                                timeout, f"promote {src} -> {dst}")}

    def human() -> None:
        click.echo(f"Promoted {src} -> {dst}")
        show_fields(data, ["commit", "gates", "backup", "status"])

    emit(data, as_json, human)
