"""The plan states where a new copy of production comes from: a verified backup and its age, or a new backup."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest

from reconciler.cli.plan_output import human
from reconciler.controller.plan_json import plan_json
from reconciler.controller.planning import Project, compute_plan
from tests.example_repo import ROOT, build_example

SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())


def staging_line(text: str) -> str:
    block = text.split("+ create   release-1-0")[1].split("\n\n")[0]
    return next(line.strip() for line in block.splitlines() if line.strip().startswith("copy "))


def test_plan_names_the_backup_of_production_a_new_staging_is_copied_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "acme.git"
    build_example(repo, bare=True)
    project = Project.open(str(repo), state_dir=tmp_path / "s")
    first = compute_plan(project)
    assert not first.data_copies  # no production runs yet: nothing is copied (staging is built fresh)
    prod = next(s for s in first.plan.environments if s.name == "production")
    project.store.record(prod, "running")

    monkeypatch.delenv("ODOOOPS_PRODUCTION_COPY_MAX_AGE_S", raising=False)
    no_backup = compute_plan(project)
    doc = plan_json(no_backup, "acme", "default")
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    staging = next(e for e in doc["data_copies"] if e.startswith("release-1-0"))
    assert doc["data_copies"][staging]["source"] == "new-backup"
    assert staging_line(human(no_backup, "acme", "default")).startswith(
        "copy      a new backup of production will be taken and verified")
    assert list(doc["data_copies"]) == [staging]  # dev and previews here are fresh_demo: not copies

    project.store.annotate("production", verified_backup={"id": "2027-01-15-06-00-00-ab12",
                                                          "created_at": time.time() - 2 * 3600, "verified_at": "x"})
    with_backup = compute_plan(project)
    assert staging_line(human(with_backup, "acme", "default")) == \
        "copy      copy from production backup 2027-01-15-06-00-00-ab12 (2 h old)"
    doc = plan_json(with_backup, "acme", "default")
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["data_copies"][staging]["backup"] == "2027-01-15-06-00-00-ab12"
    assert 7100 < doc["data_copies"][staging]["age_s"] < 7300
    # The age is not part of the plan: same inputs, same digest.
    assert with_backup.plan.plan_digest == no_backup.plan.plan_digest

    monkeypatch.setenv("ODOOOPS_PRODUCTION_COPY_MAX_AGE_S", "3600")  # the backup is now too old
    project.memo = None
    too_old = compute_plan(project)
    assert too_old.data_copies[staging]["source"] == "new-backup"  # type: ignore[index]
    assert "is 2 h old (limit 60 min)" in too_old.data_copies[staging]["reason"]  # type: ignore[index]
