"""Promotion against a real remote: refused per failing gate, non-fast-forward and unconfirmed; allowed otherwise."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pygit2
import pytest

from reconciler.controller.planning import Project
from reconciler.core.naming import env_name_for_branch
from reconciler.errors import OdooOpsError
from reconciler.platform.host import HostSettings
from reconciler.service.promote import check_gates, promote
from reconciler.sources.notes import push_notes, write_env_entry
from tests.controller.conftest import world as world_fixture  # noqa: F401  (the apply tests' `world`)
from tests.example_repo import build_example, commit_file, git

STAGING = env_name_for_branch("release/1.0")
SIG = pygit2.Signature("Test", "t@example.com")


@pytest.fixture()
def remote(tmp_path: Path, services_env: dict[str, str]) -> dict[str, Any]:
    """The example project as a bare remote, and a project that mirrors it (apply=False: Git only)."""
    refs = build_example(tmp_path / "remote.git", bare=True, oca_dest=tmp_path / "oca.git")
    project = Project.open((tmp_path / "remote.git").as_uri(), state_dir=tmp_path / "state")
    project.source.refresh()
    host = HostSettings.from_env(tmp_path / "state", services_env)
    return {"path": tmp_path / "remote.git", "project": project, "host": host, "tmp": tmp_path,
            "release": refs["refs/heads/release/1.0"], "main": refs["refs/heads/main"],
            "develop": refs["refs/heads/develop"]}


def record(project: Project, env: str, commit: str, branch: str, tier: str, *, state: str = "running",
           tests: str | None = "passed", source: str = "production") -> None:
    """What apply writes for a deploy: the status entry on the deployed commit, pushed to the remote."""
    entry = {"schema": "odooops/status-entry/v1", "env": env, "branch": branch, "tier": tier, "commit": commit,
             "state": state, "updated_at": time.time(), "deployed_at": time.time(),
             "steps": [{"name": "health", "result": "ok" if state == "running" else "failed"}],
             "tests": {"result": tests} if tests else None, "data": {"source": source, "production_commit": "p" * 40}}
    write_env_entry(project.source.repo, commit, env, entry, SIG)
    push_notes(project.source.repo, project.location)


def remote_head(r: dict[str, Any], branch: str = "main") -> str:
    return git(r["path"], "rev-parse", f"refs/heads/{branch}").strip()


def refused(r: dict[str, Any], source: str = STAGING, target: str = "production", confirm: bool = True) -> OdooOpsError:
    with pytest.raises(OdooOpsError) as err:
        promote(r["project"], r["host"], source, target, confirm=confirm, actor="alice", apply=False)
    assert remote_head(r) == r["main"]  # nothing moved
    return err.value


def test_each_failing_gate_refuses_with_its_fix(remote: dict[str, Any]) -> None:
    r, p = remote, remote["project"]
    record(p, STAGING, r["release"], "release/1.0", "staging", state="failed")
    err = refused(r)
    assert err.code == "PROMOTION_GATE_FAILED" and "healthy_on_source" in err.message
    assert "odooops apply --branch release/1.0" in err.remediation
    assert err.details["failing"] == ["healthy_on_source", "migrated_on_production_copy"]

    record(p, STAGING, r["release"], "release/1.0", "staging", tests=None)
    err = refused(r)
    assert err.details["failing"] == ["tests_passed"] and "run_tests: true" in err.remediation

    record(p, STAGING, r["release"], "release/1.0", "staging", tests=None, source="fresh")
    err = refused(r)
    assert err.details["failing"] == ["tests_passed", "migrated_on_production_copy"]
    # the tests of the same tree on another environment count: the tree is what is promoted
    record(p, "some-dev", r["release"], "release/1.0", "dev", tests="passed", source="fresh_demo")
    err = refused(r)
    assert err.details["failing"] == ["migrated_on_production_copy"]
    assert f"odooops env destroy {STAGING} --confirm" in err.remediation

    # the policy allows dev -> staging and staging -> production only
    record(p, "develop", r["develop"], "develop", "dev")
    err = refused(r, source="develop")
    assert err.details["failing"] == ["promotion_rule"] and "dev to production" in err.message


def test_promotion_into_production_needs_confirmation_then_fast_forwards(remote: dict[str, Any]) -> None:
    r, p = remote, remote["project"]
    record(p, STAGING, r["release"], "release/1.0", "staging")
    assert all(g.ok for g in check_gates(p, STAGING, "production"))
    err = refused(r, confirm=False)
    assert err.code == "PROMOTION_NEEDS_CONFIRMATION"
    assert err.remediation == f"odooops promote {STAGING} production --confirm"

    report = promote(p, r["host"], STAGING, "production", confirm=True, actor="alice", apply=False)
    assert report["status"] == "pushed" and report["commit"] == r["release"] and report["from_commit"] == r["main"]
    assert remote_head(r) == r["release"]
    assert [g["name"] for g in report["gates"]] == ["promotion_rule", "healthy_on_source", "tests_passed",
                                                     "migrated_on_production_copy"]
    # the project's mirror sees the moved branch: production now plans the promoted commit
    assert next(h.commit for h in p.heads() if h.branch == "main") == r["release"]
    again = promote(p, r["host"], STAGING, "production", confirm=True, actor="alice", apply=False)
    assert again["status"] == "up_to_date" and not again["pushed"]


def test_non_fast_forward_is_refused_with_the_git_commands(remote: dict[str, Any], tmp_path: Path) -> None:
    r, p = remote, remote["project"]
    record(p, STAGING, r["release"], "release/1.0", "staging")
    # a hotfix landed on main meanwhile: release/1.0 does not contain it
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(r["path"]), str(work))
    (work / "HOTFIX").write_text("x\n")
    git(work, "add", "HOTFIX")
    git(work, "commit", "-q", "-m", "hotfix")
    git(work, "push", "-q", "origin", "main")
    hotfix = git(work, "rev-parse", "HEAD").strip()
    with pytest.raises(OdooOpsError) as err:
        promote(p, r["host"], STAGING, "production", confirm=True, actor="alice", apply=False)
    assert err.value.code == "PROMOTION_NOT_FAST_FORWARD"
    assert "git merge origin/main" in err.value.remediation and "git push origin release/1.0" in err.value.remediation
    assert remote_head(r) == hotfix


def test_promotion_deploys_the_promoted_commit_with_the_real_applier(world_fixture: dict[str, Any]) -> None:  # noqa: F811
    """ephemeral -> dev under a policy that maps a unique branch to dev (the shared server has one `develop`)."""
    from reconciler.controller.apply import Applier
    from reconciler.controller.planning import compute_plan
    from reconciler.core.resources import read_text

    world = world_fixture
    dev_branch = f"qa-{uuid.uuid4().hex[:8]}"
    text = read_text("policies", "default.yaml")
    text = text.replace("branch_rules:\n", f"branch_rules:\n  - id: qa\n    branch: {dev_branch}\n    tier: dev\n", 1)
    text = text.replace("promotion:\n", "promotion:\n  - from: ephemeral\n    to: dev\n"
                                        "    require: [healthy_on_source, tests_passed]\n", 1)
    policy = world["tmp"] / "policy.yaml"
    policy.write_text(text)
    git(world["work"], "branch", dev_branch, "develop")
    commit_file(world["work"], world["branch"], "addons/acme_sale/models/extra.py", "# feature\n", "feature")

    def project() -> Project:
        return Project.open(str(world["work"]), state_dir=world["state"], policy_file=policy)

    report = Applier(project(), world["host"]).apply(compute_plan(project(), branches=[world["branch"]]))
    assert report.ok and report.environments[0].tests["result"] == "passed"
    source, commit = report.environments[0].env, report.environments[0].commit
    target = env_name_for_branch(dev_branch)
    git(world["work"], "checkout", "-q", "develop")  # the promoted branch must not be checked out
    result = promote(project(), world["host"], source, target, confirm=False, actor="carol")
    assert result["status"] == "promoted" and result["commit"] == commit and result["pushed"]
    assert git(world["work"], "rev-parse", dev_branch).strip() == commit
    entry = project().store.entries()[target]
    assert entry["state"] == "running" and entry["commit"] == commit
    note = json.loads(git(world["work"], "notes", "--ref=odooops", "show", commit))["environments"][target]
    assert note["promotion"]["actor"] == "carol" and note["promotion"]["source"] == source
