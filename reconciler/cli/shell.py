"""`odooops shell ENV [-- CMD...]`: run a command in an environment's container (audited, time-limited)."""

from __future__ import annotations

import sys

import click

from reconciler.cli.client import Client, client_command, emit, env_path, resolve_env


@click.command("shell", context_settings={"ignore_unknown_options": True})
@click.argument("env")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--timeout", type=click.IntRange(1, 600), default=600, show_default=True,
              help="Seconds before the server stops the command.")
@client_command
def shell_command(env: str, command: tuple[str, ...], timeout: int, server: str | None, as_json: bool) -> None:
    """Run COMMAND in ENV with its image, config and credentials; stdin is passed through and the
    command's exit code is this command's exit code (124 when --timeout stopped it).

    \b
    Examples:
      odooops shell staging -- odoo shell -d staging < fix_partners.py
      echo 'print(env["res.partner"].search_count([]))' | odooops shell staging
      odooops shell staging -- ls /var/lib/odoo/filestore
    Without COMMAND it runs `odoo shell -d ENV` (Odoo's Python shell with the env loaded) on stdin.
    """
    client = Client.from_config(server)
    name = resolve_env(client, env)
    cmd = list(command) or ["odoo", "shell", "-d", name]
    body: dict[str, object] = {"command": cmd, "timeout_s": timeout}
    if not sys.stdin.isatty():
        body["stdin"] = sys.stdin.read()
    data = client.post(env_path(name, "exec"), body, timeout=timeout + 60)

    def human() -> None:
        sys.stdout.write(str(data.get("output") or ""))
        sys.stdout.flush()
    emit(data, as_json, human)
    if data.get("timed_out"):
        click.echo(f"odooops shell: the command was stopped after {timeout} s (--timeout)", err=True)
        sys.exit(124)  # what timeout(1) exits with
    code = data.get("exit_code")
    sys.exit(code if isinstance(code, int) and 0 <= code < 256 else 1)
