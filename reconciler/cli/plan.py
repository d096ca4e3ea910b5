"""`odooops plan`: what the next apply would do, without touching anything."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from reconciler.cli.common import EXIT_CHANGES, EXIT_OK, handle_errors, project_option, state_dir_option
from reconciler.cli.plan_output import human
from reconciler.controller import plan_snapshot as snapshot
from reconciler.controller.plan_json import plan_json
from reconciler.controller.plan_snapshot import default_state_dir, naming, project_dir, snapshot_key
from reconciler.core.projects import ProjectName
from reconciler.core.resources import read_text
from reconciler.platform.host import HostSettings


@click.command("plan")
@click.option("--repo", required=True, help="Local path or URL (file://, git://, http(s)://, ssh) of the project.")
@click.option("--branch", "branches", multiple=True, help="Only plan these branches (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (schemas/plan.schema.json).")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 = no changes, 2 = changes, 1 = error.")
@click.option("--policy", "policy_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Platform policy file (default: the bundled policies/default.yaml).")
@click.option("--show-artifacts", is_flag=True, help="Also print every rendered artifact.")
@click.option("--infra", is_flag=True,
              help="Also run `terraform plan` for environments that would change (needs the host settings).")
@click.option("--out", "out_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Save the plan as JSON, for `odooops apply --plan-file`.")
@click.option("--now", "now", type=float, default=None, hidden=True, help="Evaluate TTLs at this epoch time.")
@project_option
@state_dir_option
@handle_errors
def plan_command(repo: str, branches: tuple[str, ...], as_json: bool, detailed_exitcode: bool,
                 policy_file: Path | None, show_artifacts: bool, infra: bool, out_file: Path | None, now: float | None,
                 project_name: str | None, state_dir: Path | None) -> None:
    """Show which environments would exist, why, with what settings, and what would change."""
    state = state_dir or default_state_dir()
    policy_text = policy_file.read_text(encoding="utf-8") if policy_file else read_text("policies", "default.yaml")
    key = None
    outcome = None
    named = naming(state, repo, project_name)  # registers a new project (and refuses a bad name) first
    if now is None and not infra:
        # Warm path: an unchanged repository on this disk is printed from the saved plan.
        key = snapshot_key(repo, state, policy_text, tuple(branches) or None, named)
        if key is not None:
            outcome = snapshot.load(project_dir(state, repo, named), key, time.time())
    opened = None
    if outcome is None:
        # Imported when used (startup time): a plan read from the snapshot never loads the planning pipeline.
        from reconciler.controller.planning import Project, compute_plan

        opened = Project.open(repo, state_dir=state, policy_file=policy_file, project=project_name)
        outcome = compute_plan(opened, branches=branches or None, now=now)
        if key is not None and opened.memo is not None:
            snapshot.save(opened.dir, key, opened.memo[1], outcome)
    policy_name = str(policy_file) if policy_file else "default"
    terraform: dict[str, Any] = {}
    if infra:
        # Imported when used (startup time): only --infra needs Terraform.
        from reconciler.controller.infra_plan import terraform_summaries

        assert opened is not None
        terraform = terraform_summaries(opened, HostSettings.from_env(opened.state_dir), outcome)
    doc = plan_json(outcome, repo, policy_name, show_artifacts=show_artifacts)
    for env in doc["environments"]:
        if env["name"] in terraform:
            env["terraform"] = terraform[env["name"]]
    if out_file is not None:
        saved = plan_json(outcome, repo, policy_name, show_artifacts=True)
        if project_name is not None:
            saved["project"] = ProjectName.parse(project_name).value  # apply --plan-file applies it to this project
        out_file.write_text(json.dumps(saved, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        click.echo(human(outcome, repo, policy_name, show_artifacts=show_artifacts,
                         color=sys.stdout.isatty(), terraform=terraform), nl=False)
    if detailed_exitcode and outcome.plan.has_changes:
        sys.exit(EXIT_CHANGES)
    sys.exit(EXIT_OK)
