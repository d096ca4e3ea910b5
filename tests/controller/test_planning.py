"""compute_plan in a long-lived process (the daemon): an unchanged repository is the memoised plan, and
a push re-resolves only what it changed, with the same plan a new process makes."""

from __future__ import annotations

from pathlib import Path

from reconciler.controller.planning import Project, compute_plan
from tests.example_repo import build_example, commit_file


def test_replanning_reuses_what_did_not_change(tmp_path: Path) -> None:
    work = tmp_path / "acme"
    build_example(work, oca_dest=tmp_path / "oca-web.git")
    project = Project.open(str(work), state_dir=tmp_path / "state")
    first = compute_plan(project)
    again = compute_plan(project)
    assert not first.cached and again.cached and again.plan.plan_digest == first.plan.plan_digest
    specs_before = {s.name: s for s in first.plan.environments}

    commit_file(work, "develop", "addons/acme_sale/models/extra.py", "# change\n", "touch develop")
    moved = compute_plan(project)
    assert not moved.cached
    fresh = compute_plan(Project.open(str(work), state_dir=tmp_path / "state2"))
    assert moved.plan.plan_digest == fresh.plan.plan_digest != first.plan.plan_digest
    # only develop's spec was resolved again; every other environment is the same object as before
    changed = [s.name for s in moved.plan.environments if s is not specs_before.get(s.name)]
    assert changed == ["develop"]
