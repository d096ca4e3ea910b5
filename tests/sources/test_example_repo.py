"""The example project repository: deterministic, realistic, and readable by GitSource."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pygit2
import pytest
import yaml

from reconciler.sources.git import GitSource

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "build_example_repo.py"
REFS = {
    "refs/heads/main", "refs/heads/release/1.0", "refs/heads/develop",
    "refs/heads/feature/crm-dashboard", "refs/heads/feature/Invoice-Layout", "refs/pull/7/head",
}


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_example_repo", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_cli(dest: Path, home: Path, *flags: str) -> dict[str, str]:
    # A hostile user config must not change anything: the ids come from the script alone.
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Somebody Else\n\temail = else@example.test\n"
        "[init]\n\tdefaultBranch = trunk\n")
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
           "TZ": "Pacific/Auckland"}
    out = subprocess.run([sys.executable, str(SCRIPT), str(dest), *flags], env=env,
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def test_builds_are_identical(builder: ModuleType, tmp_path: Path) -> None:
    work = builder.build(tmp_path / "work")
    bare = _run_cli(tmp_path / "bare.git", tmp_path / "home", "--bare")
    assert set(work) == REFS
    assert work == bare
    assert _run_cli(tmp_path / "again", tmp_path / "home2") == work
    repo = pygit2.Repository(str(tmp_path / "bare.git"))
    assert repo.is_bare and repo.head.name == "refs/heads/main"
    checkout = pygit2.Repository(str(tmp_path / "work"))
    assert not checkout.status()  # work tree and index match main
    assert (tmp_path / "work" / "addons" / "acme_sale" / "__manifest__.py").is_file()
    commit = repo[work["refs/heads/main"]]
    assert (commit.author.name, commit.author.email) == ("OdooOps Example", "example@odooops.dev")
    assert commit.committer == commit.author


def _blob(repo: pygit2.Repository, commit: str, path: str) -> str:
    return repo[commit].tree[path].data.decode()


def _manifest(repo: pygit2.Repository, commit: str, addon: str) -> dict:
    return ast.literal_eval(_blob(repo, commit, f"addons/{addon}/__manifest__.py"))


def test_contents(builder: ModuleType, tmp_path: Path) -> None:
    refs = builder.build(tmp_path / "r.git", bare=True)
    source = GitSource(str(tmp_path / "r.git"), tmp_path / "state")
    heads = {h.ref: h for h in source.heads()}
    assert set(heads) == REFS and all(h.config_blob for h in heads.values())
    pr = heads["refs/pull/7/head"]
    assert (pr.kind, pr.number, pr.branch) == ("pull_request", 7, "pull/7")
    repo = source.repo
    main = refs["refs/heads/main"]
    config = source.read_blob(heads["refs/heads/main"].config_blob).decode()
    pinned = config.split("commit: ")[1].split()[0]
    assert config == builder.CONFIG.replace("@OCA_WEB_COMMIT@", pinned)
    with tempfile.TemporaryDirectory() as tmp:  # the pin is the real commit of the OCA stand-in
        assert builder.build_oca_web(Path(tmp) / "oca.git") == pinned
    assert builder.CONFIG.startswith("# yaml-language-server: $schema=")

    sale = _manifest(repo, main, "acme_sale")
    assert (sale["name"], sale["version"], sale["depends"]) == (
        "ACME Sales Customisations", "19.0.1.0.0", ["sale_management"])
    for data_file in sale["data"]:
        repo[main].tree[f"addons/acme_sale/{data_file}"]  # raises KeyError when missing
    web = _manifest(repo, main, "acme_website")
    assert (web["version"], web["depends"]) == ("19.0.1.0.0", ["website"])
    versions = {ref: _manifest(repo, refs[ref], "acme_sale")["version"] for ref in
                ("refs/heads/release/1.0", "refs/heads/develop", "refs/pull/7/head")}
    assert versions == {"refs/heads/release/1.0": "19.0.1.1.0",
                        "refs/heads/develop": "19.0.1.2.0", "refs/pull/7/head": "19.0.1.2.0"}

    develop = yaml.safe_load(_blob(repo, refs["refs/heads/develop"], ".odooops.yaml"))
    assert develop["environments"]["develop"] == {"workers": 3}
    assert develop["environments"]["production"]["workers"] == 12
    crm = yaml.safe_load(_blob(repo, refs["refs/heads/feature/crm-dashboard"], ".odooops.yaml"))
    assert crm["modules"][-1] == "acme_crm_dashboard"
    assert _manifest(repo, refs["refs/heads/feature/crm-dashboard"],
                     "acme_crm_dashboard")["depends"] == ["crm"]
    invoice = repo.diff(main, refs["refs/heads/feature/Invoice-Layout"])
    assert [p.delta.new_file.path for p in invoice] == [
        "addons/acme_sale/views/report_invoice_templates.xml"]
    assert repo[refs["refs/pull/7/head"]].parents[0].id == repo[refs["refs/heads/develop"]].id

    # Every Python file compiles and every XML file parses, on every head.
    for commit in refs.values():
        for path in _files(repo[commit].tree):
            text = _blob(repo, commit, path)
            if path.endswith(".py"):
                compile(text, path, "exec")
            elif path.endswith(".xml"):
                ET.fromstring(text.encode())


def _files(tree: pygit2.Tree, prefix: str = "") -> list[str]:
    out: list[str] = []
    for entry in tree:
        if entry.type_str == "tree":
            out += _files(entry, f"{prefix}{entry.name}/")
        else:
            out.append(prefix + entry.name)
    return out
