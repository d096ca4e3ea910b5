"""Entry point of the `odooops` command: a group that imports a command's module only when it runs."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

import reconciler

HOST_CONFIG_ENV = "ODOOOPS_HOST_CONFIG"  # as reconciler.platform.host, without importing it for every command
PROJECT_ENV = "ODOOOPS_PROJECT"  # read by the server's client (reconciler/cli/client.py) and by --project

# name -> "module:attribute"; importing every command up front would make `odooops plan` pay for
# Docker, PostgreSQL and Terraform clients it never uses, and `odooops env list` miss its 300 ms.
COMMANDS = {
    "plan": "reconciler.cli.plan:plan_command",
    "apply": "reconciler.cli.apply:apply_command",
    "status": "reconciler.cli.status:status_command",
    "serve": "reconciler.cli.serve:serve_command",
    "service": "reconciler.cli.service:service_group",
    "login": "reconciler.cli.env:login_command",
    "env": "reconciler.cli.env:env_group",
    "destroy": "reconciler.cli.env:destroy_command",
    "deploy": "reconciler.cli.deploy:deploy_command",
    "push": "reconciler.cli.deploy:push_command",
    "branch": "reconciler.cli.deploy:branch_command",
    "promote": "reconciler.cli.promote:promote_command",
    "rollback": "reconciler.cli.rollback:rollback_command",
    "logs": "reconciler.cli.logs:logs_command",
    "shell": "reconciler.cli.shell:shell_command",
    "db": "reconciler.cli.db:db_group",
    "mail": "reconciler.cli.mail:mail_command",
    "secrets": "reconciler.cli.secrets:secrets_group",
    "token": "reconciler.cli.token:token_group",
    "audit": "reconciler.cli.audit:audit_group",
    "jobs": "reconciler.cli.jobs:jobs_command",
    "image": "reconciler.cli.image:image_group",
    "completion": "reconciler.cli.completion:completion_command",
    "explain": "reconciler.cli.explain:explain_command",
    "host": "reconciler.cli.host:host_group",
    "doctor": "reconciler.cli.doctor:doctor_command",
}

# One-line help per command, so `odooops --help` and shell completion need not import every module.
SHORT_HELP = {
    "plan": "Show what would change (offline).",
    "apply": "Carry out the plan on this host (offline).",
    "status": "What runs and what the server is doing (--repo: this host's state, offline).",
    "serve": "Run the reconciler and the REST API.",
    "service": "Install `odooops serve` as a systemd service.",
    "login": "Save the server URL and a token (read from stdin) in the 0600 config file.",
    "env": "Environments: list, show, create, destroy, scale.",
    "destroy": "Destroy an environment (alias of `env destroy`).",
    "deploy": "Redeploy an environment (optionally waiting until it is healthy).",
    "push": "git push a branch (or onto an environment's branch) and wait for the deploy.",
    "branch": "Create a local branch at the commit an environment runs.",
    "promote": "Promote the tree healthy on SRC to DST (gated).",
    "rollback": "Roll an environment back to its last healthy deploy.",
    "logs": "Show or follow an environment's logs.",
    "shell": "Run a command in an environment (stdin passed through).",
    "db": "Backups, restores, clones and verification.",
    "mail": "Mail captured from an environment.",
    "secrets": "List, set (from stdin) and rotate secrets.",
    "token": "Create, list and revoke API tokens.",
    "audit": "List and verify the audit trail.",
    "jobs": "Long data operations: their phases, results and errors.",
    "image": "Build the odoo:<version> image from Odoo's source (no registry needed).",
    "completion": "Print the shell completion script (bash, zsh, fish).",
    "explain": "What an error code means and how to fix it (offline).",
    "host": "This host's settings and where each comes from (offline).",
    "doctor": "Check this host (and a project, with --repo) and say how to fix what fails.",
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
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        if incomplete.startswith("-"):
            return super().shell_complete(ctx, incomplete)
        return [CompletionItem(n, help=SHORT_HELP.get(n)) for n in self.list_commands(ctx) if n.startswith(incomplete)]

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Like click's, but a usage error exits 1: exit 2 means "changes pending / not yet healthy"."""
        # `python -m reconciler` is the same program: same usage lines and completion variable.
        prog_name = prog_name or "odooops"
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            exc.show()
            # A bare `odooops` (or group) asked for nothing wrong: it gets the help and 0.
            sys.exit(0 if type(exc).__name__ == "NoArgsIsHelpError" else 1)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        # click returns the exit code of ctx.exit()/--help/--version here; commands return None.
        sys.exit(rv if isinstance(rv, int) else 0)


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """`odooops --version`: the installed version, where the code runs from (a checkout or an install)
    and the Python running it: what a bug report needs."""
    if not value or ctx.resilient_parsing:
        return
    # Here, not at the top: only --version reads the package metadata (about 2 ms with its imports).
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("odooops")
    except PackageNotFoundError:  # run from a checkout without installing (PYTHONPATH)
        installed = f"{reconciler.__version__} (not installed)"
    click.echo(f"odooops {installed} from {Path(reconciler.__file__).parent} (Python {platform.python_version()})")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=print_version,
              help="Show the version, where it runs from and the Python version, and exit.")
@click.option("--host-config", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="The host file (host.yaml) [env ODOOOPS_HOST_CONFIG; default /etc/odooops/host.yaml].")
@click.option("--project", "project", envvar=PROJECT_ENV, default=None, metavar="NAME",
              help="The project to act on [env ODOOOPS_PROJECT]: client commands address the server's "
                   "/api/v1/projects/NAME/... (the server of another project refuses: PROJECT_NOT_FOUND); "
                   "plan, apply, status --repo, doctor and serve take it as their --project.")
def main(host_config: Path | None, project: str | None) -> None:
    """OdooOps: Odoo environments from Git.

    plan, apply, status and serve work on a repository directly; every other command is a client of
    the server (--server URL, ODOOOPS_SERVER or `odooops login`; token from ODOOOPS_TOKEN or the
    0600 config file ~/.config/odooops/config.json). Every client command takes --json.

    \b
    Exit codes:
      0  success
      1  error (the error object says what and how to fix it)
      2  changes pending (plan --detailed-exitcode) / --wait timed out before healthy
      3  refused by a gate, or needs --confirm
      4  authentication or authorization failed (HTTP 401/403)
    """
    if host_config is not None:
        # Settings are read from the process environment (reconciler/platform/host.py), and the processes an
        # apply starts must read the same file: the flag becomes the variable, as an absolute path.
        os.environ[HOST_CONFIG_ENV] = str(host_config.absolute())
    if project is not None:
        # The group's callback runs before the command's options are read: as the variable, the name
        # reaches both the client and the --project (envvar ODOOOPS_PROJECT) of the local commands, whose
        # own --project, when given too, wins.
        os.environ[PROJECT_ENV] = project
