"""The tests step: Odoo's tests of the project's addons, on the working copy when there is one."""

from __future__ import annotations

from reconciler.controller.modules import effective_test_tags, repo_modules
from reconciler.controller.planning import Project
from reconciler.controller.steps.context import DeployContext, StepFailed, StepResult, need
from reconciler.core import odoo_log
from reconciler.core.model import EnvSpec
from reconciler.data.odoo_cli import run_tests_command
from reconciler.data.working_copy import WorkingCopy
from reconciler.errors import OdooOpsError


def test_tags(project: Project, spec: EnvSpec) -> str | None:
    """What --test-tags gets: the project's tags, or its own addons' (`/mod_a,/mod_b`); None: all."""
    code = repo_modules(project.source, spec.commit, spec["addons_paths"])
    return effective_test_tags(spec["test_tags"], code)


def run(ctx: DeployContext) -> StepResult:
    p, spec, st, report = ctx.platform, ctx.spec, ctx.state, ctx.report
    container_spec = need(st.container_spec, "container_spec")
    web = container_spec["containers"][0]
    tags = test_tags(p.project, spec)
    if tags == "":
        report.tests = {"result": "skipped", "tags": "", "seconds": 0.0, "log_tail": "", "reason": None}
        return StepResult("skipped", "the repository has no addons to test (tests.tags: all runs Odoo's whole suite)")
    copy: WorkingCopy | None = st.working_copy
    # On the working copy when there is one: what tests write never reaches the live database.
    cmd = run_tests_command(copy.db if copy is not None else spec.key, tags)
    run = p.runtime.run_once(container_spec, web, cmd, timeout_s=3600, tail=5000)
    passed = run.ok
    # Why it failed, from Odoo's log: the failing test and its assertion, or the install error.
    why = "" if passed else (odoo_log.parse(run.logs).headline() or (
        "timed out" if run.timed_out else f"odoo exited with code {run.exit_code}"))
    report.tests = {"result": "passed" if passed else "failed", "tags": tags if tags is not None else "all",
                    "seconds": round(run.duration_s, 2), "log_tail": "\n".join(run.logs.splitlines()[-15:]),
                    "reason": why or None}
    required = p.project.policy.gates.get(str(spec.tier), {}).get("tests_required", False)
    if not passed and required:
        failed = StepFailed(OdooOpsError("TESTS_FAILED", why, f"fix the failing tests on {spec.branch} and push",
                                         {"test_tags": tags}), odoo_log.excerpt(run.logs))
        # Production tests run on the updated live database (no working copy there): a refused
        # update is undone by restoring the backup taken before it, like a failed migration.
        step = st.database_step
        backup = st.pre_deploy_backup
        if copy is None and step is not None and backup is not None and backup.get("to_commit") == spec.commit:
            step.restore_pre_deploy_backup(backup, failed)
        raise failed
    return StepResult("ok", "passed") if passed else StepResult("failed", why)
