"""`odooops token create|list|revoke`: API tokens from the server (or offline from its key file), their ids
and revocation."""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from reconciler.cli.client import Client, ClientError, client_command, emit, parse_duration, table
from reconciler.core.projects import ProjectName


@click.group("token")
def token_group() -> None:
    """Create, list and revoke API tokens."""


@token_group.command("create")
@click.option("--scope", "scopes", multiple=True, metavar="SCOPE",
              help="Repeatable: env:read env:write logs:read shell db:read db:backup db:restore db:clone "
                   "mail:read secrets:read secrets:write promote audit:read tokens:write credentials:read "
                   "production admin.")
@click.option("--role", type=click.Choice(["admin", "operator", "developer", "tester"]),
              help="A bundle of scopes (docs/api.md#roles): operator and admin reach production.")
@click.option("--ttl", default=None, help="Lifetime: 3600, 30m, 12h, 7d [default: 12h, or less: never beyond the "
                                          "server's --max-token-ttl nor the calling token's own expiry].")
@click.option("--subject", help="Who the token acts as (audit trail, commit author) [default: $USER].")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Sign offline with the server's key file instead of asking the server.")
@click.option("--algorithm", type=click.Choice(["HS256", "RS256"]), default="HS256", show_default=True,
              help="Key type of --key-file.")
@click.option("--project", "projects", multiple=True, metavar="NAME",
              help="Repeatable: limit the token to these projects; the servers of other projects refuse it "
                   "[default: no limit from an admin or with --key-file; else the project of the server asked].")
@client_command
def token_create(scopes: tuple[str, ...], role: str | None, ttl: str | None, subject: str | None,
                 key_file: Path | None, algorithm: str, projects: tuple[str, ...], server: str | None,
                 as_json: bool) -> None:
    """Create a token and print it (only the token, on stdout, unless --json).

    \b
    odooops token create --role developer --subject alice --ttl 12h            # needs tokens:write
    odooops token create --key-file /etc/odooops/api.key --role admin --subject ops
    odooops token create --key-file /etc/odooops/api.key --role developer --project acme --subject bob
    odooops token create --role tester | odooops login --server URL --token-stdin

    (`odooops --project NAME token ...` picks the server's project; `token create --project` limits the token.)
    """
    if not scopes and not role:
        raise ClientError("USAGE", "a token needs --scope (repeatable) or --role", "pass e.g. --role developer")
    ttl_s = parse_duration(ttl) if ttl else None
    subject = subject or getpass.getuser()
    data: dict[str, Any]
    if key_file is not None:
        # Imported only here: PyJWT and cryptography are not needed by any other client command.
        from reconciler.api.auth import KeyRing, issue_claims

        token, claims = issue_claims(KeyRing.from_file(key_file, algorithm), subject, list(scopes),
                                     ttl_s or 12 * 3600, role=role, projects=list(projects) or None)
        data = {"id": claims["jti"], "token": token, "expires_at": claims["exp"], "scopes": claims["scope"].split(),
                "subject": subject, "projects": claims.get("projects")}
    else:
        # The API takes project names in their normal form ("Acme Corp" -> acme-corp): normalised here.
        body = {"subject": subject, "scopes": list(scopes) or None, "role": role, "ttl_s": ttl_s,
                "projects": [ProjectName.parse(p).value for p in projects] or None}
        data = Client.from_config(server).post("/api/v1/tokens", body)
    emit(data, as_json, lambda: click.echo(data["token"]))


def _when(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else None


@token_group.command("list")
@client_command
def token_list(server: str | None, as_json: bool) -> None:
    """The tokens the server knows that have not expired, revoked ones too, with the projects each is
    limited to ("(all)": no limit) (needs tokens:write; an admin sees all, others the tokens they hold or
    minted; the servers of one host share one list).

    \b
    odooops token list
    odooops token list --json | jq -r '.tokens[] | select(.state == "active") | .id'
    """
    data = Client.from_config(server).get("/api/v1/tokens")

    def human() -> None:
        rows = [{**t, "scopes": " ".join(t["scopes"]), "expires": _when(t["expires_at"]),
                 "by": t.get("created_by") or t.get("origin"),
                 "projects": " ".join(t["projects"]) if t.get("projects") is not None else "(all)"}
                for t in data["tokens"]]
        table(rows, [("id", "id"), ("subject", "subject"), ("state", "state"), ("expires", "expires"),
                     ("by", "created by"), ("projects", "projects"), ("scopes", "scopes")], empty="(no tokens)")

    emit(data, as_json, human)


@token_group.command("revoke")
@click.argument("token_id", metavar="ID")
@client_command
def token_revoke(token_id: str, server: str | None, as_json: bool) -> None:
    """Revoke the token ID and every token minted from it: the server refuses them (401 TOKEN_REVOKED)
    from the next request on. Exit codes: 0 revoked, 1 no such token (404), 4 not allowed (401/403).

    \b
    odooops token revoke 3f9c0e...     # ids: odooops token list
    """
    data = Client.from_config(server).request("DELETE", f"/api/v1/tokens/{quote(token_id, safe='')}")

    def human() -> None:
        others = [t for t in data["revoked"] if t != data["id"]]
        tail = f" and {len(others)} token(s) minted from it: {' '.join(others)}" if others else ""
        click.echo(f"revoked {data['id']}{tail}")

    emit(data, as_json, human)
