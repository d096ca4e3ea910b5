"""`odooops plan --infra`: Terraform's own change summary for environments that would change."""

from __future__ import annotations

from typing import Any

from reconciler.controller.infra_plan import terraform_summaries
from reconciler.controller.planning import compute_plan
from tests.controller.test_apply import apply, env_resources, project_of


def test_terraform_summary_before_and_after_apply(world: dict[str, Any]) -> None:
    project = project_of(world)
    outcome = compute_plan(project, branches=[world["branch"]])
    [env] = [a.env for a in outcome.plan.actions]
    summary = terraform_summaries(project, world["host"], outcome)[env]
    assert summary.get("add", 0) >= 3 and summary.get("destroy") == 0, summary
    assert any("role" in r["address"] for r in summary["resources"])
    assert not env_resources(world, env)["databases"]  # planning touched nothing
    _, report, _ = apply(world)
    assert report.ok
    # once applied, the same branch plans as unchanged
    project = project_of(world)
    from reconciler.core.model import ActionKind
    redeploy = compute_plan(project, branches=[world["branch"]])
    assert [a.action for a in redeploy.plan.actions] == [ActionKind.NOOP]
    from reconciler.controller.apply import Applier
    Applier(project, world["host"]).runtime.remove(env)
