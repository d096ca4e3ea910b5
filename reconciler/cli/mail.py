"""`odooops mail [ENV]`: the messages the platform's mail catcher captured from an environment."""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli.client import Client, client_command, emit, env_path, resolve_env, table


def row(m: dict[str, Any]) -> dict[str, Any]:
    to = m.get("to") or m.get("recipients")
    return {**m, "to_": ", ".join(to) if isinstance(to, list) else to,
            "when": m.get("date") or m.get("received_at"), "from_": m.get("from") or m.get("sender")}


@click.command("mail")
@click.argument("env", required=False)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@client_command
def mail_command(env: str | None, limit: int, server: str | None, as_json: bool) -> None:
    """Mail captured from ENV (default: the env of the current git branch); none of it was delivered."""
    client = Client.from_config(server)
    data = client.get(env_path(resolve_env(client, env), "mail"), limit=limit)
    emit(data, as_json, lambda: table([row(m) for m in data.get("messages") or []],
                                      [("when", "received"), ("from_", "from"), ("to_", "to"),
                                       ("subject", "subject")], "(no captured mail)"))
