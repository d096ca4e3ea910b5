"""`odooops secrets list|set|rotate`: secret names and new values; values come from stdin or a file, never argv."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

import click

from reconciler.cli.client import Client, ClientError, client_command, emit, env_path, resolve_env, table


def secrets_path(client: Client, env: str | None, *rest: str) -> str:
    if env is None:
        return "/api/v1/secrets" + "".join("/" + quote(p, safe="") for p in rest)
    return env_path(resolve_env(client, env), "secrets", *rest)


def read_value(from_file: Path | None) -> str:
    """The value from --from-file or stdin (a terminal gets a hidden prompt); one trailing newline,
    as `echo` and editors add, is dropped."""
    if from_file is not None:
        try:
            value = from_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ClientError("USAGE", f"cannot read {from_file}: {exc.strerror}",
                              "pass a readable --from-file") from exc
    elif sys.stdin.isatty():
        value = click.prompt("Value", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.read()
    value = value[:-1] if value.endswith("\n") else value
    if not value:
        raise ClientError("USAGE", "the secret value is empty",
                          "pipe the value in (`printf %s \"$VALUE\" | odooops secrets set NAME --env ENV`) "
                          "or pass --from-file PATH")
    return value


@click.group("secrets")
def secrets_group() -> None:
    """List, set (from stdin or a file) and rotate secrets; values are never printed."""


@secrets_group.command("list")
@click.argument("env", required=False)
@client_command
def secrets_list(env: str | None, server: str | None, as_json: bool) -> None:
    """Names of ENV's secrets, or the project-level ones (S3 keys, SMTP relay) without ENV."""
    client = Client.from_config(server)
    data = client.get(secrets_path(client, env))
    emit(data, as_json, lambda: table([{"name": n} for n in data.get("secrets") or []], [("name", "name")]))


@secrets_group.command("set")
@click.argument("name")
@click.option("--env", "env", metavar="ENV", help="The environment [default: project-level secret].")
@click.option("--from-file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Read the value from this file instead of stdin.")
@client_command
def secrets_set(name: str, env: str | None, from_file: Path | None, server: str | None, as_json: bool) -> None:
    """Set secret NAME to the value on stdin (or in --from-file); there is no argv option for the
    value, so it never shows in `ps` or shell history.

    \b
    printf %s "$SMTP_PASSWORD" | odooops secrets set SMTP_PASSWORD
    odooops secrets set ADMIN_PASSWORD --env staging --from-file ./pw.txt
    """
    value = read_value(from_file)
    client = Client.from_config(server)
    client.request("PUT", secrets_path(client, env, name), {"value": value})
    data = {"name": name, "env": env, "set": True}
    emit(data, as_json, lambda: click.echo(f"{name} set" + (f" for {env}" if env else " (project)")))


@secrets_group.command("rotate")
@click.argument("env")
@client_command
def secrets_rotate(env: str, server: str | None, as_json: bool) -> None:
    """Rotate ENV's platform-generated credentials (database password, Odoo admin password) without downtime."""
    client = Client.from_config(server)
    data = client.post(secrets_path(client, env, "rotate"))
    emit(data, as_json, lambda: click.echo("rotated: " + (", ".join(data.get("rotated") or []) or "nothing")))
