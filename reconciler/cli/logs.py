"""`odooops logs [ENV] [--follow] [--tail N]`: an environment's container logs, streamed when following."""

from __future__ import annotations

import json
import sys

import click

from reconciler.cli.client import Client, client_command, env_path, resolve_env


@click.command("logs")
@click.argument("env", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines until interrupted.")
@click.option("--tail", type=click.IntRange(min=0), default=200, show_default=True, help="Lines of history first.")
@click.option("--role", default="web", show_default=True, help="Container role: web, cron, ...")
@client_command
def logs_command(env: str | None, follow: bool, tail: int, role: str, server: str | None, as_json: bool) -> None:
    """Show ENV's logs (default: the env of the current git branch), e.g. `odooops logs --follow`.

    With --json each line is printed as {"env", "line"} (JSON lines).
    """
    client = Client.from_config(server)
    name = resolve_env(client, env)
    out = sys.stdout.buffer
    with client.stream(env_path(name, "logs"), tail=tail, follow=follow, role=role) as resp:
        # read1 returns what has arrived (at most one chunk): lines appear as the server sends them.
        pending = b""
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            if not as_json:
                out.write(chunk)
                out.flush()
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                out.write(json.dumps({"env": name, "line": line.decode("utf-8", "replace")}).encode() + b"\n")
            out.flush()
        if as_json and pending:
            out.write(json.dumps({"env": name, "line": pending.decode("utf-8", "replace")}).encode() + b"\n")
        out.flush()
