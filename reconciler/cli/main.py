"""Entry point of the `odooops` command: a group that imports a command's module only when it runs."""

from __future__ import annotations

import importlib
from typing import Any

import click

from reconciler import __version__

# name -> "module:attribute"; importing every command up front would make `odooops plan` pay for
# Docker, PostgreSQL and Terraform clients it never uses.
COMMANDS = {
    "plan": "reconciler.cli.plan:plan_command",
    "apply": "reconciler.cli.apply:apply_command",
    "status": "reconciler.cli.status:status_command",
    "serve": "reconciler.cli.serve:serve_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module), attr)
        return command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="odooops")
def main() -> None:
    """OdooOps: Odoo environments from Git.

    Exit codes: 0 success, 1 error, 2 changes pending (plan --detailed-exitcode).
    """
