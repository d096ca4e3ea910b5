"""`odooops token create`: an API token from the server (admin token) or offline from the server's key file."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import click

from reconciler.cli.client import Client, ClientError, client_command, emit, parse_duration


@click.group("token")
def token_group() -> None:
    """Create API tokens."""


@token_group.command("create")
@click.option("--scope", "scopes", multiple=True, metavar="SCOPE",
              help="Repeatable: env:read env:write logs:read shell db:read db:backup db:restore db:clone "
                   "mail:read secrets:read secrets:write promote audit:read tokens:write credentials:read admin.")
@click.option("--role", type=click.Choice(["admin", "developer", "tester"]), help="A bundle of scopes.")
@click.option("--ttl", default="12h", show_default=True, help="Lifetime: 3600, 30m, 12h, 7d.")
@click.option("--subject", help="Who the token acts as (audit trail, commit author) [default: $USER].")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Sign offline with the server's key file instead of asking the server.")
@click.option("--algorithm", type=click.Choice(["HS256", "RS256"]), default="HS256", show_default=True,
              help="Key type of --key-file.")
@client_command
def token_create(scopes: tuple[str, ...], role: str | None, ttl: str, subject: str | None, key_file: Path | None,
                 algorithm: str, server: str | None, as_json: bool) -> None:
    """Create a token and print it (only the token, on stdout, unless --json).

    \b
    odooops token create --role developer --subject alice --ttl 12h            # needs tokens:write
    odooops token create --key-file /etc/odooops/api.key --role admin --subject ops
    odooops token create --role tester | odooops login --server URL --token-stdin
    """
    if not scopes and not role:
        raise ClientError("USAGE", "a token needs --scope (repeatable) or --role", "pass e.g. --role developer")
    ttl_s = parse_duration(ttl)
    subject = subject or getpass.getuser()
    data: dict[str, Any]
    if key_file is not None:
        # Imported only here: PyJWT and cryptography are not needed by any other client command.
        from reconciler.api.auth import KeyRing, issue_claims

        token, claims = issue_claims(KeyRing.from_file(key_file, algorithm), subject, list(scopes), ttl_s, role=role)
        data = {"token": token, "expires_at": claims["exp"], "scopes": claims["scope"].split(), "subject": subject}
    else:
        body = {"subject": subject, "scopes": list(scopes) or None, "role": role, "ttl_s": ttl_s}
        data = Client.from_config(server).post("/api/v1/tokens", body)
    emit(data, as_json, lambda: click.echo(data["token"]))
