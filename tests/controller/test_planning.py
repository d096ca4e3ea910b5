"""compute_plan in a long-lived process (the daemon): an unchanged repository is the memoised plan, and
a push re-resolves only what it changed, with the same plan a new process makes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pygit2

from reconciler.controller.planning import Project, artifacts_plan_digest, compute_plan
from reconciler.core.model import digest
from reconciler.sources.notes import write_env_entry
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


def test_observed_state_of_a_long_lived_project_follows_every_store_write_and_note(tmp_path: Path) -> None:
    """The daemon's Project reads the store and the notes incrementally: after any write (here by
    another process's Project) it answers what a new Project reads, and reuses what did not change."""
    work = tmp_path / "acme"
    build_example(work, oca_dest=tmp_path / "oca-web.git")
    state = tmp_path / "state"
    project = Project.open(str(work), state_dir=state)
    writer = Project.open(str(work), state_dir=state)
    specs = list(compute_plan(project).plan.environments)
    assert len(specs) >= 3 and project.observed() == {}

    def fresh() -> dict[str, Any]:
        return Project.open(str(work), state_dir=state).observed()

    for spec in specs:
        writer.store.record(spec, state="running")
    first = project.observed()
    assert first == fresh() and set(first) == {s.name for s in specs}
    writer.store.set_state(specs[0].name, "failed")
    second = project.observed()
    assert second == fresh() and second[specs[0].name].state == "failed"
    assert all(second[s.name] is first[s.name] for s in specs[1:])  # unchanged entries are reused
    # a newer note wins over the store's entry, and a later store write wins over the note
    sig = pygit2.Signature("t", "t@example.test")
    note = {**writer.store.get(specs[1].name), "state": "failed", "updated_at": time.time() + 60}  # type: ignore[dict-item]
    write_env_entry(writer.source.repo, specs[1].commit, specs[1].name, note, sig)
    third = project.observed()
    assert third == fresh() and third[specs[1].name].state == "failed" and third[specs[1].name].source == "notes"
    writer.store.forget(specs[2].name)
    writer.store.record(specs[1], state="running", extra={"updated_at": time.time() + 120})
    fourth = project.observed()
    assert fourth == fresh() and specs[2].name not in fourth
    assert fourth[specs[1].name].state == "running" and fourth[specs[1].name].source == "state"
    # the notes move again: read again (the note of a commit already read is now newer than the store)
    note = {**note, "state": "failed", "updated_at": time.time() + 300}
    write_env_entry(writer.source.repo, specs[1].commit, specs[1].name, note, sig)
    fifth = project.observed()
    assert fifth == fresh() and fifth[specs[1].name].state == "failed" and fifth[specs[1].name].source == "notes"


def test_artifacts_plan_digest_is_the_digest_of_plan_and_artifacts_whatever_it_remembers() -> None:
    """The re-plan's digest keeps each environment's serialised digests between plans; every plan's
    digest must still be digest({"plan", "artifacts"}) of that plan (fails if a kept text is stale)."""
    texts: dict[str, tuple[dict[str, str], str]] = {}
    rendered = {f"env-{i}": {"odoo.conf": f"{i:064x}", "container.json": f"{i + 1:064x}"} for i in range(5)}
    for step in range(6):
        if step == 2:
            rendered = {**rendered, "env-1": {"odoo.conf": "f" * 64}}  # a new dict: one environment re-rendered
        if step == 3:
            rendered["env-2"]["odoo.conf"] = "e" * 64  # the same dict object, changed in place
        if step == 4:
            rendered = {k: v for k, v in rendered.items() if k != "env-3"} | {"prodüction": {"a": "b"}}
        plan = f"{step:064x}"
        assert artifacts_plan_digest(plan, rendered, texts) == digest({"plan": plan, "artifacts": rendered})
        assert artifacts_plan_digest(plan, rendered) == digest({"plan": plan, "artifacts": rendered})
