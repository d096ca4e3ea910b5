"""Fixtures for the daemon tests: example remotes on loopback, daemons, the HTTP API in a thread."""

from __future__ import annotations

import importlib.util
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from reconciler.api.app import create_app
from reconciler.controller.daemon import Daemon, DaemonConfig
from reconciler.controller.planning import Project
from reconciler.core.model import Action, ActionKind, Plan
from reconciler.platform.host import HostSettings
from tests.daemon.gitserve import free_port, git, git_daemon, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _builder() -> Any:
    spec = importlib.util.spec_from_file_location("build_example_repo", ROOT / "examples" / "build_example_repo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def daemon_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state dir per pytest worker: the host is prepared (Ansible) once, artifacts are reused.
    Projects (and so state files, claims and daemon locks) stay separate per remote URL."""
    state = tmp_path_factory.getbasetemp() / "daemon-state"
    state.mkdir(exist_ok=True)
    os.environ.setdefault("ODOOOPS_SECRET_KEY_FILE", str(tmp_path_factory.getbasetemp() / "secret.key"))
    return state


@pytest.fixture(scope="session")
def oca_web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.getbasetemp() / "oca-web.git"
    if not dest.exists():
        _builder().build_oca_web(dest)
    return dest


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served by `git daemon` on loopback: (directory, git://127.0.0.1:PORT)."""
    base = tmp_path / "srv"
    base.mkdir()
    with git_daemon(base) as url:
        yield base, url


@pytest.fixture
def remote(served: tuple[Path, str], tmp_path: Path) -> dict[str, Any]:
    """The example project behind git://, reduced to one branch `base` (develop's tree) that no
    policy rule maps: environment names are global on the host, so every test pushes its own
    uniquely named branches and pull request numbers. Also a clone to push from."""
    base, url = served
    bare = base / "acme.git"
    refs = _builder().build(bare, bare=True)
    git(bare, "branch", "base", "develop")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/base")
    for ref in refs:
        git(bare, "update-ref", "-d", ref)
    repo_url = f"{url}/acme.git"
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", repo_url, str(work))
    return {"bare": base / "acme.git", "url": repo_url, "work": work, "tmp": tmp_path}


@pytest.fixture
def host(daemon_state: Path, services_env: dict[str, str], standin_image: str, oca_web: Path) -> HostSettings:
    env = dict(services_env)
    env["ODOOOPS_IMAGE_OVERRIDES"] = f"odoo:19.0={standin_image}"
    env["ODOOOPS_GIT_MIRRORS"] = f"https://github.com/OCA/web.git={oca_web.as_uri()}"
    return HostSettings.from_env(daemon_state, env)


def unique_branch(prefix: str = "feature/d") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def push_branch(work: Path, branch: str, start: str = "origin/base", files: dict[str, str] | None = None) -> str:
    """Commit (optionally) on branch in the clone and push it; returns the pushed commit."""
    git(work, "checkout", "-q", "-B", branch, start)
    for path, text in (files or {}).items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        git(work, "add", path)
    if files:
        git(work, "commit", "-q", "-m", f"change {', '.join(files)}")
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    return git(work, "rev-parse", "HEAD")


class DaemonFactory:
    def __init__(self, daemon_state: Path) -> None:
        self.state = daemon_state
        self.made: list[Daemon] = []

    def __call__(self, repo: str, host: HostSettings | None, *, state_dir: Path | None = None,
                 start: bool = True, **kw: Any) -> Daemon:
        options = {k: kw.pop(k) for k in list(kw) if k in DaemonConfig.__dataclass_fields__}
        config = DaemonConfig(repo=repo, state_dir=state_dir or self.state, **options)
        daemon = Daemon(config, host, **kw)
        self.made.append(daemon)
        if start:
            daemon.start()
        return daemon


@pytest.fixture
def make_daemon(daemon_state: Path) -> Iterator[DaemonFactory]:
    factory = DaemonFactory(daemon_state)
    yield factory
    for d in factory.made:
        d.stop(120)


@contextmanager
def serve_api(daemon: Any, secret_file: Path | None, **kw: Any) -> Iterator[str]:
    """The daemon's HTTP API on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    app = create_app(daemon, secret_file, **kw)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, "uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def destroy_leftovers(daemon: Daemon) -> None:
    """Test teardown: destroy whatever this daemon's project still has (failed tests leave envs)."""
    from reconciler.controller.apply import Applier
    from reconciler.controller.planning import PlanOutcome

    assert daemon.host is not None
    project = Project.open(daemon.config.repo, daemon.config.state_dir, daemon.config.policy_file)
    envs = {n: e.get("branch", n) for n, e in project.store.entries().items()}
    envs.update({n: c.get("branch", n) for n, c in daemon.claims.all().items()})
    if not envs:
        return
    actions = tuple(Action(env=n, action=ActionKind.DESTROY, branch=str(b), tier=None, reason="test teardown")
                    for n, b in sorted(envs.items()))
    outcome = PlanOutcome(Plan(environments=(), actions=actions, errors=(), ignored=()), {}, 0, 0.0)
    Applier(project, daemon.host).apply(outcome)
    daemon.claims.release(set(envs))


AppliedHook = Callable[[str, Action, Any], None]
