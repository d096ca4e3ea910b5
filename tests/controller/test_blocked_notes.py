"""An environment blocked by quota gets a status note with the reason, written once."""

from __future__ import annotations

from typing import Any

import pygit2

from reconciler.controller.apply import Applier
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import ActionKind
from reconciler.sources.notes import read_note
from tests.example_repo import ROOT


def test_quota_block_is_noted_once(world: dict[str, Any]) -> None:
    policy = world["tmp"] / "policy.yaml"
    policy.write_text((ROOT / "policies" / "default.yaml").read_text().replace("  ephemeral: 10\n", "  ephemeral: 0\n"))

    def run() -> Any:
        project = Project.open(str(world["work"]), state_dir=world["state"], policy_file=policy)
        outcome = compute_plan(project, branches=[world["branch"]])
        report = Applier(project, world["host"]).apply(outcome)
        return outcome, report

    outcome, report = run()
    [action] = outcome.plan.actions
    assert action.action is ActionKind.BLOCKED and "quota" in action.reason
    assert report.environments == []
    repo = pygit2.Repository(str(world["work"]))
    note = read_note(repo, action.commit)
    assert note is not None
    entry = note["environments"][action.env]
    assert entry["state"] == "blocked" and "quota" in entry["reason"] and "quotas.ephemeral" in entry["remediation"]
    notes_tip = repo.references["refs/notes/odooops"].target
    outcome2, _ = run()
    assert [a.action for a in outcome2.plan.actions] == [ActionKind.BLOCKED]  # a note is not a running env
    assert repo.references["refs/notes/odooops"].target == notes_tip  # nothing written again
    from reconciler.cli.status import collect

    [row] = [r for r in collect(Project.open(str(world["work"]), state_dir=world["state"])) if r["env"] == action.env]
    assert row["state"] == "blocked" and "quota" in row["last_result"]
