"""`odooops completion bash|zsh|fish`: print click's completion script for the shell."""

from __future__ import annotations

import click


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash: odooops completion bash > ~/.local/share/bash-completion/completions/odooops
    zsh:  odooops completion zsh > "${fpath[1]}/_odooops"
    fish: odooops completion fish > ~/.config/fish/completions/odooops.fish
    """
    from click.shell_completion import get_completion_class

    # Imported when used: main loads this module lazily by name (cli.main's command table).
    from reconciler.cli.main import main

    cls = get_completion_class(shell)
    assert cls is not None  # click ships bash, zsh and fish
    click.echo(cls(main, {}, "odooops", "_ODOOOPS_COMPLETE").source())
