"""The wheel as a user installs it: built from the sdist, installed outside the checkout, and run from
elsewhere: --version, plan, apply on the embedded host (stand-in Odoo), serve. Every data file the
program reads must come from the wheel; a file missing from it fails these tests."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import sysconfig
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import __version__
from reconciler.core.resources import KINDS
from reconciler.platform.host import HostSettings
from tests.daemon.gitserve import free_port, wait_serve_ready
from tests.example_repo import ROOT, build_example, git

DATA_DIRS = KINDS  # a kind setup.py or MANIFEST.in forgets fails the content check
# Test tooling that stays out of the wheel (the stand-in Odoo image and the script building it).
NOT_SHIPPED = ("infra/images/standin/", "infra/images/build.sh")
GOLDEN_NOW = "1800000000"  # the --now of tests/golden/example-plan.*


@dataclass(frozen=True)
class Build:
    sdist: Path
    wheel: Path
    log: str


@dataclass(frozen=True)
class Install:
    venv: Path
    site: Path  # the virtualenv's site-packages, where the wheel went
    odooops: Path  # its console script
    python: Path
    outside: Path  # a directory outside the checkout to run from

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment without PYTHONPATH (which names the checkout); the virtualenv's
        bin first, then the main one's (ansible-playbook: its dependencies are shared, see `installed`)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
        return {**env, **extra}

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.odooops), *args], cwd=self.outside, env=env or self.env(),
                              capture_output=True, text=True, timeout=timeout, check=False)


def source_files() -> list[str]:
    """The checkout's files as Git sees them (tracked or new, not ignored): what a clean clone builds from."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sorted(f for f in out.split("\0") if f and (ROOT / f).is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """sdist and wheel of a copy of the checkout (no build/ or egg-info left in the checkout), the wheel
    built from the sdist as `python -m build` does by default; offline, with this virtualenv's setuptools."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    for rel in source_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((ROOT / rel).read_bytes())
        (src / rel).chmod((ROOT / rel).stat().st_mode & 0o777)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check",
                           "--outdir", str(tmp / "dist"), str(src)], cwd=tmp, env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [sdist] = (tmp / "dist").glob("odooops-*.tar.gz")
    [wheel] = (tmp / "dist").glob("odooops-*.whl")
    return Build(sdist, wheel, proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def installed(built: Build, tmp_path_factory: pytest.TempPathFactory) -> Install:
    """A fresh virtualenv with only the wheel installed (--no-deps). Its dependencies are this
    virtualenv's, reached through a .pth line naming our site-packages: a plain path, so the .pth
    files there (among them the editable install pointing at a checkout) are not read."""
    tmp = tmp_path_factory.mktemp("install")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "odooops-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp / "elsewhere"
    outside.mkdir()
    inst = Install(venv, site, venv / "bin" / "odooops", python, outside)
    # pip comes from our site-packages too; --ignore-installed: the editable odooops seen there is
    # neither "already satisfied" nor uninstalled.
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                           "--disable-pip-version-check", "-q", str(built.wheel)], cwd=outside, env=inst.env(),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not outside.resolve().is_relative_to(ROOT.resolve())
    return inst


def test_wheel_built_from_the_sdist_carries_every_data_file(built: Build) -> None:
    assert "Building wheel from sdist" in built.log
    tracked = [f for f in source_files() if f.split("/")[0] in DATA_DIRS]
    shipped = [f for f in tracked if not f.startswith(NOT_SHIPPED)]
    assert "policies/default.yaml" in shipped and "infra/ansible/site.yml" in shipped
    with tarfile.open(built.sdist) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        in_sdist = {n.removeprefix(top + "/") for n in sdist.getnames()}
    assert {"setup.py", "pyproject.toml", "MANIFEST.in", *tracked} <= in_sdist, set(tracked) - in_sdist
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
    packaged = {n.removeprefix("reconciler/_data/") for n in names if n.startswith("reconciler/_data/")}
    assert packaged == set(shipped), (set(shipped) - packaged, packaged - set(shipped))
    catalogue = {f for f in source_files() if f.startswith("reconciler/data/masking_catalogue/")}
    assert catalogue and catalogue <= names


def test_version_and_code_come_from_the_virtualenv(installed: Install) -> None:
    out = installed.run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"odooops {__version__} from {installed.site / 'reconciler'} " \
                         f"(Python {platform.python_version()})\n"
    probe = subprocess.run([str(installed.python), "-c", "import reconciler, reconciler.core.resources as r; "
                            "print(reconciler.__file__); print(r.data_root()); print(r.code_root())"],
                           cwd=installed.outside, env=installed.env(), capture_output=True, text=True, check=True)
    assert probe.stdout.splitlines() == [str(installed.site / "reconciler" / "__init__.py"),
                                         str(installed.site / "reconciler" / "_data"), str(installed.site)]


def test_plan_from_the_wheel_matches_the_golden_plan(installed: Install, tmp_path: Path) -> None:
    build_example(tmp_path / "acme.git", bare=True)
    url = f"file://{tmp_path / 'acme.git'}"
    state = str(tmp_path / "state")
    human = installed.run("plan", "--repo", url, "--state-dir", state, "--now", GOLDEN_NOW)
    assert human.returncode == 0, human.stderr
    assert human.stdout.replace(url, "file://<REPO>") == (ROOT / "tests/golden/example-plan.txt").read_text()
    as_json = installed.run("plan", "--repo", url, "--state-dir", state, "--json", "--now", GOLDEN_NOW)
    assert as_json.returncode == 0, as_json.stderr
    doc = {**json.loads(as_json.stdout), "repo": "file://<REPO>"}
    assert json.dumps(doc, indent=2, ensure_ascii=False) + "\n" == (ROOT / "tests/golden/example-plan.json").read_text()
    artifacts = installed.run("plan", "--repo", url, "--state-dir", state, "--show-artifacts", "--now", GOLDEN_NOW)
    assert artifacts.returncode == 0 and "db_name = production" in artifacts.stdout, artifacts.stderr


def test_a_copy_without_its_data_files_says_so(tmp_path: Path) -> None:
    """The package alone, as a wheel built without setup.py's build step would install it."""
    site = tmp_path / "site"
    for rel in source_files():
        if rel.startswith("reconciler/"):
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_bytes((ROOT / rel).read_bytes())
    build_example(tmp_path / "acme.git", bare=True)
    out = subprocess.run([sys.executable, "-m", "reconciler", "plan", "--repo", str(tmp_path / "acme.git"),
                          "--state-dir", str(tmp_path / "state"), "--json"], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(site)}, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    error = json.loads(out.stdout or out.stderr)
    assert error["error"] == "DATA_FILES_MISSING", error
    assert error["path"].startswith(str(site / "reconciler" / "_data")), error
    assert "pip install --force-reinstall" in error["remediation"]


@pytest.fixture()
def project(tmp_path: Path, services_env: dict[str, str], standin_image: str,
            installed: Install) -> Iterator[dict[str, Any]]:
    """A work tree of the example project on a branch of its own, and the environment that runs it from
    the wheel on the embedded host (stand-in Odoo); whatever is left afterwards is destroyed."""
    work = tmp_path / "project"
    build_example(work, bare=False, oca_dest=tmp_path / "oca-web.git")
    branch = f"feature/w{uuid.uuid4().hex[:8]}"
    git(work, "checkout", "-q", "-b", branch, "develop")
    state = tmp_path / "state"
    env = installed.env(**services_env, ODOOOPS_STATE_DIR=str(state),
                        ODOOOPS_SECRET_KEY_FILE=str(tmp_path / "secret.key"),
                        ODOOOPS_IMAGE_OVERRIDES=f"odoo:19.0={standin_image}",
                        ODOOOPS_GIT_MIRRORS=f"https://github.com/OCA/web.git={(tmp_path / 'oca-web.git').as_uri()}")
    yield {"work": work, "branch": branch, "state": state, "env": env}
    # Leave the shared services as found, should the test stop before its destroy.
    from reconciler.controller.apply import Applier
    from reconciler.controller.planning import Project
    from reconciler.core.model import Action, ActionKind

    opened = Project.open(str(work), state_dir=state)
    applier = Applier(opened, HostSettings.from_env(state, env))
    for name, entry in opened.store.entries().items():
        applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))


def test_apply_from_the_wheel_on_the_embedded_host(installed: Install, project: dict[str, Any]) -> None:
    """Ansible's playbook, Terraform's module (and the child process running Terraform), the
    templates and the schemas all come from the installed wheel."""
    work, branch, env = str(project["work"]), project["branch"], project["env"]
    done = installed.run("apply", "--repo", work, "--branch", branch, "--auto-approve", "--json", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    [created] = report["environments"]
    assert report["ok"] and created["action"] == "create" and created["result"] == "ok", created
    health = httpx.get(f"{env['ODOOOPS_ROUTER_HTTP']}/web/health",
                       headers={"Host": f"{created['env']}.odooops.localhost"}, timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "pass"
    tf_root = project["state"] / "terraform" / created["env"]
    assert str(installed.site / "reconciler" / "_data" / "infra" / "terraform") in "".join(
        p.read_text() for p in tf_root.glob("*.tf.json"))
    git(project["work"], "checkout", "-q", "develop")
    git(project["work"], "branch", "-q", "-D", branch)
    gone = installed.run("apply", "--repo", work, "--branch", branch, "--auto-approve", "--json", env=env)
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    [destroyed] = json.loads(gone.stdout)["environments"]
    assert destroyed["action"] == "destroy" and destroyed["result"] == "ok", destroyed


def test_serve_from_the_wheel(installed: Install, tmp_path: Path, services_env: dict[str, str]) -> None:
    bare = tmp_path / "acme.git"
    refs = build_example(bare, bare=True, oca_dest=tmp_path / "oca-web.git")
    # One branch no policy rule maps: the daemon polls for real but has nothing to apply on the shared host.
    git(bare, "branch", "base", "develop")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/base")
    for ref in refs:
        git(bare, "update-ref", "-d", ref)
    port, log = free_port(), tmp_path / "serve.log"
    env = installed.env(**services_env, ODOOOPS_SECRET_KEY_FILE=str(tmp_path / "secret.key"))
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(installed.odooops), "serve", "--repo", str(bare), "--listen", f"127.0.0.1:{port}",
             "--poll-interval", "3600", "--sweep-interval", "3600", "--state-dir", str(tmp_path / "state"),
             "--api-key-file", str(tmp_path / "api.key"), "--audit-log", str(tmp_path / "audit.jsonl")],
            cwd=installed.outside, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_serve_ready(proc, f"http://127.0.0.1:{port}", log, request_timeout_s=10)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    finally:
        proc.terminate()
        proc.wait(60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
