"""`odooops plan --project`: a named project's plan, its saved plan file, and the names it refuses."""

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.core.resources import data_dir
from tests.example_repo import build_example


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    repo = tmp_path / "acme.git"
    build_example(repo, bare=True)
    return repo


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


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
