"""Entry point of the `odooops` command."""

import click

from reconciler import __version__


@click.group()
@click.version_option(__version__, prog_name="odooops")
def main() -> None:
    """OdooOps: Odoo environments from Git."""
