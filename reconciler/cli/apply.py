"""`odooops apply`: carry out the plan on this host, with progress per environment and step."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from reconciler.cli.common import EXIT_ERROR, EXIT_OK, handle_errors, project_option, state_dir_option
from reconciler.cli.plan_output import human
from reconciler.controller.apply import Applier, ApplyReport, EnvReport
from reconciler.controller.planning import PlanOutcome, Project, compute_plan
from reconciler.core.model import ActionKind
from reconciler.errors import OdooOpsError
from reconciler.platform.host import HostSettings

_MARK = {"ok": "✓", "changed": "✓", "skipped": "-", "failed": "✗"}


def progress_printer(enabled: bool) -> Callable[[str, str, str, str], None]:
    started: dict[tuple[str, str], float] = {}

    def show(env: str, step: str, status: str, detail: str) -> None:
        if not enabled:
            return
        key = (env, step)
        if status == "start":
            started[key] = time.monotonic()
            return
        began = started.pop(key, None)
        took = f"{time.monotonic() - began:6.1f}s" if began is not None else "       "
        click.echo(f"  {env:<36} {step:<10} {_MARK.get(status, '?')} {status:<8} {took}  {detail}", err=True)

    return show


@click.command("apply")
@click.option("--repo", help="Local path or URL of the project (default: the repo of --plan-file).")
@click.option("--branch", "branches", multiple=True, help="Only apply these branches (repeatable).")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--plan-file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Apply a plan saved with `odooops plan --out`, only if it still matches.")
@click.option("--policy", "policy_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--retry-failed", is_flag=True, help="Also redeploy environments whose last deploy failed.")
@click.option("--json", "as_json", is_flag=True, help="Print the apply report as JSON.")
@project_option
@state_dir_option
@handle_errors
def apply_command(repo: str | None, branches: tuple[str, ...], auto_approve: bool, plan_file: Path | None,
                  policy_file: Path | None, retry_failed: bool, as_json: bool, project_name: str | None,
                  state_dir: Path | None) -> None:
    """Make the environments match the plan: infrastructure, database, runtime, route, status notes."""
    saved = None
    if plan_file is not None:
        saved = json.loads(plan_file.read_text(encoding="utf-8"))
        repo = repo or saved.get("repo")
    if not repo:
        raise OdooOpsError("USAGE", "no repository given", "pass --repo PATH_OR_URL (or --plan-file)")
    if saved is not None and project_name is None:
        project_name = saved.get("project")  # the saved plan was made for this project
    project = Project.open(repo, state_dir=state_dir, policy_file=policy_file, project=project_name)
    host = HostSettings.from_env(project.state_dir)
    outcome = compute_plan(project, branches=branches or None)
    if saved is not None:
        if saved.get("plan_digest") != outcome.plan.plan_digest:
            raise OdooOpsError(
                "PLAN_STALE", f"the saved plan {plan_file} no longer matches the repository and state "
                f"(saved {str(saved.get('plan_digest'))[:12]}, now {outcome.plan.plan_digest[:12]})",
                f"review a fresh plan: odooops plan --repo {repo} --out {plan_file}")
        auto_approve = True  # the saved plan is what was reviewed
    if not as_json:
        click.echo(human(outcome, repo, project.policy.name, color=sys.stdout.isatty()), nl=False)
        if retry_failed:
            click.echo(retry_line(outcome, project.store.entries()))
    if not auto_approve:
        if not sys.stdin.isatty():
            raise OdooOpsError("CONFIRMATION_REQUIRED", "apply needs confirmation and stdin is not a terminal",
                               "review the plan above and re-run with --auto-approve")
        if not click.confirm("Apply this plan?", default=False):
            click.echo("Nothing applied.")
            sys.exit(EXIT_OK)
    applier = Applier(project, host, progress_printer(not as_json), retry_failed=retry_failed)
    report = applier.apply(outcome)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        if not report.environments:
            click.echo("Nothing to do: every environment matches the plan.")
        for env in report.environments:
            if env.result == "ok":
                where = f" at {env.url}" if env.url else ""
                click.echo(f"{env.env}: {env.action} done{where}")
            else:
                click.echo(failure_line(env))
        click.echo(f"Apply finished in {report.seconds:.1f}s: {done_line(outcome, report)}")
    sys.exit(EXIT_OK if report.ok else EXIT_ERROR)


def failure_line(env: EnvReport) -> str:
    """`develop: create FAILED at tests: 1 failed: TestOrder.test_confirm — AssertionError: 2 != 3`."""
    err = env.error or {}
    failed = [s.name for s in env.steps if s.result == "failed"]
    at = f" at {failed[-1]}" if failed else ""
    return f"{env.env}: {env.action} FAILED{at}: {err.get('message')}\n  fix: {err.get('remediation')}"


def retry_line(outcome: PlanOutcome, entries: dict[str, dict[str, Any]]) -> str:
    """What --retry-failed adds to the plan above (which counts a failed, unchanged commit as unchanged)."""
    failed = [a.env for a in outcome.plan.actions
              if a.action is ActionKind.NOOP and entries.get(a.env, {}).get("state") == "failed"]
    if not failed:
        return "--retry-failed: no environment's last deploy failed; nothing more to redeploy."
    return f"--retry-failed: also redeploys {', '.join(failed)} (last deploy failed)."


def done_line(outcome: PlanOutcome, report: ApplyReport) -> str:
    """What the apply did, counted from what it ran rather than from the plan: an environment the
    apply redeployed on its own (--retry-failed, runtime drift, rotated secrets) counts as a
    redeploy, not as unchanged."""
    done = Counter(e.action for e in report.environments if e.result == "ok")
    touched = {e.env for e in report.environments}
    counts = outcome.plan.counts()
    unchanged = sum(1 for a in outcome.plan.actions if a.action is ActionKind.NOOP and a.env not in touched)
    failed = [f"{e.env} ({e.action})" for e in report.environments if e.result != "ok"]
    line = (f"{done['create']} created, {done['update']} updated, {done['redeploy']} redeployed, "
            f"{done['destroy']} destroyed, {counts['blocked']} blocked, {unchanged} unchanged")
    return line + (f"; {len(failed)} failed: {', '.join(failed)}." if failed else ".")
