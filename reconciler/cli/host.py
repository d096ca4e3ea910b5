"""`odooops host show`: every host setting, its effective value (secrets redacted) and where it came from."""

from __future__ import annotations

import json

import click

from reconciler.cli.common import handle_errors
from reconciler.platform.host import REQUIRED, Resolved, resolve_host


@click.group("host")
def host_group() -> None:
    """This host's settings: PostgreSQL, the container engine, the router, state, keys, backups, limits.

    Each setting comes from its ODOOOPS_* variable, else the host file (--host-config,
    ODOOOPS_HOST_CONFIG, default /etc/odooops/host.yaml), else its default.
    """


def _text(r: Resolved) -> str:
    if r.source == "error":
        return "(cannot be read)"
    if r.value is None:
        return "(not set: required)" if r.setting.default is REQUIRED else "-"
    shown = r.shown()
    if isinstance(shown, dict):
        return json.dumps(shown, sort_keys=True, separators=(", ", ": ")) if shown else "{}"
    if isinstance(shown, bool):
        return "true" if shown else "false"
    return str(shown)


@host_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@handle_errors
def host_show(as_json: bool) -> None:
    """Each effective setting, its value and where it came from: the host file's path:line, the variable,
    or the default. Secrets (the PostgreSQL password) are redacted."""
    path, file, resolved = resolve_host(lenient=True)
    missing = [r.setting.key for r in resolved if r.source == "missing"]
    broken = [r.setting.key for r in resolved if r.source == "error"]
    if as_json:
        click.echo(json.dumps({
            "host_file": {"path": str(path), "read": file is not None},
            "settings": [{"setting": r.setting.key, "variable": r.setting.variable, "value": r.shown(),
                          "source": r.source, "origin": r.origin if r.source != "missing" else None}
                         for r in resolved],
            "missing": missing, "errors": broken,
        }, indent=2))
        return
    click.echo(f"host file: {path}" + ("" if file is not None else " (absent: variables and defaults only)"))
    rows = [(r.setting.key, _text(r), r.origin if r.source != "missing" else f"set {r.setting.variable} or the "
             "host file") for r in resolved]
    # a long value (a backup store) overflows its column rather than pushing every origin off the screen
    widths = [max(len(row[0]) for row in rows), min(max(len(row[1]) for row in rows), 40)]
    click.echo(f"{'SETTING':<{widths[0]}}  {'VALUE':<{widths[1]}}  FROM")
    for key, value, origin in rows:
        click.echo(f"{key:<{widths[0]}}  {value:<{widths[1]}}  {origin}")
    if missing or broken:
        click.echo(f"\n{'missing required settings: ' + ', '.join(missing) if missing else ''}"
                   f"{'; ' if missing and broken else ''}"
                   f"{'settings that cannot be read: ' + ', '.join(broken) if broken else ''}"
                   " (odooops serve and apply refuse to start)")
