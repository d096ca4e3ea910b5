"""Entry point of the `odooops` command: a group that loads one module per command group."""

from __future__ import annotations

import click

from reconciler import __version__
from reconciler.cli.plan import plan_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="odooops")
def main() -> None:
    """OdooOps: Odoo environments from Git.

    Exit codes: 0 success, 1 error, 2 changes pending (plan --detailed-exitcode).
    """


main.add_command(plan_command)
