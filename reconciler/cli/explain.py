"""`odooops explain CODE`: an error code's entry in the error table, offline (the same text as docs/errors.md)."""

from __future__ import annotations

import json
import sys

import click

from reconciler.core.error_codes import ERRORS, describe, suggestions
from reconciler.errors import docs_link

EXIT_UNKNOWN = 2


@click.command("explain")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
def explain_command(code: str, as_json: bool) -> None:
    """What an error code means, why it happens and how to fix it (no server needed)."""
    wanted = code.strip().upper().replace("-", "_")
    if wanted not in ERRORS:
        close = suggestions(code)
        if as_json:
            click.echo(json.dumps({"error": "ERROR_CODE_UNKNOWN", "code": code, "did_you_mean": close}, indent=2))
        else:
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            click.echo(f"Error: no error code {code!r}.{hint}\n  fix: see docs/errors.md for every code", err=True)
        sys.exit(EXIT_UNKNOWN)
    info = {**describe(wanted), "docs": docs_link(wanted)}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{wanted} ({info['kind']}: HTTP {info['http_status']}, audit {info['audit']}, CLI exit "
               f"{info['exit_code']}{', retried' if info['retry'] else ''})\n"
               f"  what happened: {info['what']}\n"
               f"  why:           {info['why']}\n"
               f"  how to fix:    {info['fix']}\n"
               f"  docs:          {info['docs']}")
