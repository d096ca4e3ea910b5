"""A shutdown stops a deploy between two steps only while stopping cannot leave the old code on a new
schema (the Applier's `should_park`, asked before each step; real engine, PostgreSQL, Caddy, stand-in Odoo)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from reconciler.controller.apply import Applier
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import ActionKind
from reconciler.core.resources import data_dir
from tests.controller.test_apply import project_of
from tests.example_repo import commit_file


def _apply_parking_after(world: dict[str, Any], step: str) -> tuple[Any, list[str]]:
    """Apply the world's branch (with the world's policy file, if any); the shutdown begins once `step` has
    finished. Returns the report and the steps that ran."""
    finished: list[str] = []

    def progress(_env: str, name: str, status: str, _detail: str) -> None:
        if status not in ("start", "parked"):
            finished.append(name)

    project = Project.open(str(world["work"]), state_dir=world["state"], policy_file=world.get("policy"))
    outcome = compute_plan(project, branches=[world["branch"]])
    report = Applier(project, world["host"], progress, should_park=lambda: step in finished).apply(outcome)
    return report, finished


def _serving_commit(world: dict[str, Any], env: str) -> str:
    resp = httpx.get(f"{world['host'].router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"})
    assert resp.status_code == 200, resp.text
    entry = project_of(world).store.entries()[env]
    return str(entry["commit"])


def test_a_deploy_on_a_working_copy_parks_after_its_database_step(world: dict[str, Any]) -> None:
    first, _ = _apply_parking_after(world, "never")
    assert first.ok
    [env] = [e.env for e in first.environments]
    deployed = first.environments[0].commit
    new = commit_file(world["work"], world["branch"], "addons/acme_sale/data/parked.txt", "x\n", "change acme_sale")

    report, ran = _apply_parking_after(world, "database")
    [rep] = report.environments
    assert rep.result == "parked", rep
    assert ran[-1] == "database" and "runtime" not in ran  # stopped at the first boundary after it
    assert _serving_commit(world, env) == deployed  # the previous version still serves, state unchanged
    again = compute_plan(project_of(world), branches=[world["branch"]])
    [action] = again.plan.actions
    assert action.action is ActionKind.REDEPLOY and action.commit == new  # still to deploy at the next start


def test_a_deploy_that_changed_the_live_database_runs_to_its_end(world: dict[str, Any], tmp_path: Path) -> None:
    # A tier without tests updates the live database itself (no working copy to drop): the default
    # policy with the feature branches' tier (ephemeral) running no tests.
    policy = (data_dir("policies") / "default.yaml").read_text()
    block = re.search(r"^  ephemeral:\n(?:    .*\n)+", policy, re.M)
    assert block and "    run_tests: true\n" in block.group(0)
    policy = policy.replace(block.group(0), block.group(0).replace("    run_tests: true\n", "    run_tests: false\n"))
    policy = re.sub(r"^(  ephemeral: \{.*tests_required: )true", r"\1false", policy, flags=re.M)
    world["policy"] = tmp_path / "policy.yaml"
    world["policy"].write_text(policy)
    first, _ = _apply_parking_after(world, "never")
    assert first.ok, first.to_json()
    [env] = [e.env for e in first.environments]
    assert "tests" not in [s.name for s in first.environments[0].steps]
    new = commit_file(world["work"], world["branch"], "addons/acme_sale/data/parked.txt", "x\n", "change acme_sale")

    report, ran = _apply_parking_after(world, "database")
    [rep] = report.environments
    assert next(s for s in rep.steps if s.name == "database").result == "changed"
    assert rep.result == "ok", rep  # asked to park after the live database changed: it finished instead
    assert "health" in ran and _serving_commit(world, env) == new
