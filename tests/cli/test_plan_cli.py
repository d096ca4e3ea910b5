"""`odooops plan` end to end on real Git repositories: golden output, JSON schema, exit codes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.resources import data_dir
from tests.example_repo import ROOT, build_example, commit_file, git

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    repo = tmp_path / "acme.git"
    build_example(repo, bare=True)
    return repo


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_example_plan_matches_golden_files(example: Path, tmp_path: Path) -> None:
    url = f"file://{example}"
    code, human = run("plan", "--repo", url, "--state-dir", str(tmp_path / "s"), "--now", "1800000000")
    assert code == 0
    check_golden("example-plan.txt", human.replace(url, "file://<REPO>"))
    code, out = run("plan", "--repo", url, "--state-dir", str(tmp_path / "s"), "--json", "--now", "1800000000")
    assert code == 0
    doc = json.loads(out)
    jsonschema.Draft202012Validator(json.loads((ROOT / "schemas" / "plan.schema.json").read_text())).validate(doc)
    doc["repo"] = "file://<REPO>"
    check_golden("example-plan.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    assert {e["name"] for e in doc["environments"]} >= {"production", "develop", "pr-7"}
    prod = next(e for e in doc["environments"] if e["name"] == "production")
    assert prod["workers"] == 12 and prod["origins"]["workers"].endswith("/environments/production/workers")


def test_same_inputs_same_digest_local_path_and_mirror(example: Path, tmp_path: Path) -> None:
    a = compute_plan(Project.open(f"file://{example}", state_dir=tmp_path / "a"), now=0)
    b = compute_plan(Project.open(str(example), state_dir=tmp_path / "b"), now=0)
    assert a.plan.plan_digest == b.plan.plan_digest


def test_detailed_exitcode_and_no_changes_after_recorded_apply(example: Path, tmp_path: Path) -> None:
    state = tmp_path / "s"
    code, _ = run("plan", "--repo", str(example), "--state-dir", str(state), "--detailed-exitcode")
    assert code == 2
    project = Project.open(str(example), state_dir=state)
    for spec in compute_plan(project).plan.environments:
        project.store.record(spec)
    code, out = run("plan", "--repo", str(example), "--state-dir", str(state), "--detailed-exitcode")
    assert code == 0, out
    assert out.startswith("Plan: 0 to create, 0 to update, 0 to redeploy, 0 to destroy, 0 blocked, 6 unchanged.")


def test_status_notes_count_as_observed_state(example: Path, tmp_path: Path) -> None:
    import pygit2

    from reconciler.platform.state_store import entry_for
    from reconciler.sources.notes import write_env_entry

    project = Project.open(str(example), state_dir=tmp_path / "s")
    spec = next(s for s in compute_plan(project).plan.environments if s.name == "develop")
    sig = pygit2.Signature("OdooOps", "odooops@localhost")
    assert write_env_entry(project.source.repo, spec.commit, spec.name, entry_for(spec, "running", time.time()), sig)
    actions = {a.env: a.action.value for a in compute_plan(Project.open(str(example), tmp_path / "s")).plan.actions}
    assert actions["develop"] == "noop" and actions["production"] == "create"


def test_new_user_walkthrough_typo_then_fix(tmp_path: Path) -> None:
    work = tmp_path / "shop"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    commit_file(work, "main", "README.md", "shop\n", "init")
    commit_file(work, "feature/new-report", ".odooops.yaml", 'version: 1\nodoo:\n  verison: "18.0"\n', "typo")
    state = str(tmp_path / "s")
    code, out = run("plan", "--repo", str(work), "--state-dir", state, "--detailed-exitcode")
    assert code == 2  # main still plans: a broken branch fails alone
    assert "feature/new-report: .odooops.yaml:3:3 /odoo/verison" in out
    assert 'did you mean "version"?' in out and 'fix: rename "verison" to "version"' in out
    assert "+ create   production" in out and "! blocked  feature-new-report--" in out
    code, out = run("plan", "--repo", str(work), "--state-dir", state, "--json")
    [err] = json.loads(out)["errors"]
    assert (err["branch"], err["line"], err["column"], err["pointer"]) == ("feature/new-report", 3, 3, "/odoo/verison")
    commit_file(work, "feature/new-report", ".odooops.yaml", 'version: 1\nodoo:\n  version: "18.0"\n', "fix")
    code, out = run("plan", "--repo", str(work), "--state-dir", state, "--json")
    doc = json.loads(out)
    assert doc["errors"] == []
    feature = next(e for e in doc["environments"] if e["branch"] == "feature/new-report")
    assert feature["odoo_version"] == "18.0" and feature["tier"] == "ephemeral"


def test_branch_filter_and_show_artifacts_hide_secrets(example: Path, tmp_path: Path) -> None:
    code, out = run("plan", "--repo", str(example), "--state-dir", str(tmp_path / "s"), "--branch", "develop",
                    "--show-artifacts")
    assert code == 0
    assert "+ create   develop" in out and "production" not in out.split("Plan digest")[0].split("--- ")[0]
    assert "--- develop/odoo.conf" in out and "admin_passwd = @@secret:admin_passwd@@" in out


def test_unreachable_repo_gives_error_object(tmp_path: Path) -> None:
    code, out = run("plan", "--repo", "git://127.0.0.1:9/nothing.git", "--state-dir", str(tmp_path / "s"), "--json")
    assert code == 1
    err = json.loads(out)
    assert set(err) >= {"error", "message", "remediation", "docs"}


def test_whole_process_exit_codes(example: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "reconciler", "plan", "--repo", str(example), "--state-dir", str(tmp_path / "s")]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert subprocess.run([*cmd, "--detailed-exitcode"], capture_output=True).returncode == 2
    bad = subprocess.run([*cmd[:5], str(tmp_path / "missing"), *cmd[6:]], capture_output=True, text=True)
    assert bad.returncode == 1 and "fix:" in bad.stderr


def test_warm_plan_comes_from_the_snapshot_and_any_input_change_invalidates_it(example: Path, tmp_path: Path) -> None:
    state = tmp_path / "s"
    args = ["plan", "--repo", str(example), "--state-dir", str(state), "--json"]
    _, first = run(*args)
    [snapshot] = list((state / "projects").glob("*/plan-snapshot.pickle"))
    stamp = snapshot.stat().st_mtime_ns
    _, second = run(*args)
    assert second == first and snapshot.stat().st_mtime_ns == stamp  # served, not recomputed
    policy = tmp_path / "policy.yaml"
    policy.write_text((ROOT / "policies" / "default.yaml").read_text().replace("  preview: 10\n", "  preview: 0\n"))
    _, third = run(*args, "--policy", str(policy))
    assert [a["action"] for a in json.loads(third)["actions"] if a["env"] == "pr-7"] == ["blocked"]
    git(example, "update-ref", "refs/heads/feature/new-one", "refs/heads/develop")
    _, fourth = run(*args)
    assert "feature/new-one" in fourth and "feature/new-one" not in first


def test_a_named_projects_plan_shows_its_keys_and_saves_the_project(example: Path, tmp_path: Path) -> None:
    state, out = tmp_path / "s", tmp_path / "plan.json"
    code, text = run("plan", "--repo", str(example), "--state-dir", str(state), "--project", "Acme Corp.",
                     "--json", "--out", str(out), "--now", "1800000000")
    assert code == 0, text
    doc = json.loads(text)
    envs = {e["name"]: e for e in doc["environments"]}
    assert envs["production"]["key"] == "acme-corp--production"
    assert envs["production"]["settings"]["domains"] == ["acme-corp--production.odooops.localhost"]
    assert all(e["key"].startswith("acme-corp--") for e in envs.values())
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["project"] == "acme-corp"
    jsonschema.validate(saved, json.loads((data_dir("schemas") / "plan.schema.json").read_text(encoding="utf-8")))
    # The same plan without --project is the unnamed project's: bare names, no key in the JSON.
    code, text = run("plan", "--repo", str(example), "--state-dir", str(tmp_path / "s2"), "--json",
                     "--now", "1800000000")
    assert code == 0 and all("key" not in e for e in json.loads(text)["environments"])


def test_bad_or_taken_project_names_are_refused_with_the_fix(example: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "s")
    code, text = run("plan", "--repo", str(example), "--state-dir", state, "--project", "x!", "--json")
    err = json.loads(text)
    assert code == 1 and err["error"] == "PROJECT_NAME_INVALID" and "x-odoo" in err["remediation"]
    assert run("plan", "--repo", str(example), "--state-dir", state, "--project", "acme", "--json")[0] == 0
    other = tmp_path / "other.git"
    build_example(other, bare=True)
    code, text = run("plan", "--repo", str(other), "--state-dir", state, "--project", "ACME", "--json")
    err = json.loads(text)
    assert code == 1 and err["error"] == "PROJECT_REPO_MISMATCH"
    assert str(example) in err["message"] and "--project acme" in err["remediation"]
