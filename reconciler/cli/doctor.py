"""`odooops doctor`: is this host (and a project, with --repo) ready to run environments, and if not, the fix."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import EXIT_ERROR, EXIT_OK, handle_errors, project_option, state_dir_option

if TYPE_CHECKING:
    from reconciler.controller.outcome import PlanOutcome

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim"}


@click.command("doctor")
@click.option("--repo", default=None,
              help="Also check this project: local path or URL (file://, git://, http(s)://, ssh), as for `plan`.")
@click.option("--policy", "policy_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Platform policy file (default: the bundled policies/default.yaml).")
@click.option("--webhook-secret-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The file `odooops serve --webhook-secret-file` would get (checked with --repo).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.5, max=300), default=5.0, show_default=True,
              help="Seconds each check may take; one that has not answered by then fails.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list.")
@click.option("--serial", is_flag=True, hidden=True, help="Run the checks one after another (bench/bench_doctor.py).")
@project_option
@state_dir_option
@handle_errors
def doctor_command(repo: str | None, policy_file: Path | None, webhook_secret_file: Path | None, timeout_s: float,
                   as_json: bool, serial: bool, project_name: str | None, state_dir: Path | None) -> None:
    """Check the host's services (PostgreSQL, Docker, Caddy, DNS, Terraform, disk, backup store) and, with
    --repo, the project (remote, notes push, .odooops.yaml, webhook secret, what its plan needs).

    Each check is ok, warn, fail or skipped, with the fix when it is not ok; all run at once, each for at most
    --timeout seconds. Exit 0 when nothing failed (warnings allowed), 1 when a check failed.
    """
    # Imported when used (startup time): only doctor loads the adapters of every service.
    from reconciler.controller.plan_snapshot import default_state_dir
    from reconciler.errors import OdooOpsError
    from reconciler.platform.host import HostSettings
    from reconciler.service.doctor import failed
    from reconciler.service.doctor_project import Doctor, ProjectTarget

    state = state_dir or default_state_dir()
    host: HostSettings | OdooOpsError
    try:
        host = HostSettings.from_env(state)
    except OdooOpsError as exc:
        host = exc
    project = None
    if repo is not None:
        def plan() -> PlanOutcome:
            from reconciler.controller.planning import Project, compute_plan

            return compute_plan(Project.open(repo, state_dir=state, policy_file=policy_file, project=project_name))

        from reconciler.controller.plan_snapshot import naming
        from reconciler.core.projects import notes_ref

        project = ProjectTarget(repo, plan, webhook_secret_file,
                                notes_ref=notes_ref(naming(state, repo, project_name)))
    results = Doctor(host, project, timeout_s, serial).run()
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title="odooops doctor" + (f": {repo}" if repo else ""))
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        for r in results:
            # Text, not markup: details quote errors such as "[Errno 111]".
            table.add_row(r.id, Text(r.status, style=_STYLE[r.status]), Text(r.detail), Text(r.fix))
        Console(width=200 if not sys.stdout.isatty() else None).print(table)
    sys.exit(EXIT_ERROR if failed(results) else EXIT_OK)
