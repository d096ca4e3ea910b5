"""Fixtures for the git source tests: throwaway repositories and a git daemon on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._gitutil import GIT_ENV, commit_file, free_port, git, wait_for_port


@pytest.fixture
def work_repo(tmp_path: Path) -> Path:
    """A working repository on main with a README and an .odooops.yaml."""
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_file(repo, "README.md", "# project\n", "initial")
    commit_file(repo, ".odooops.yaml", "version: 1\n", "config")
    return repo


@pytest.fixture
def bare_remote(tmp_path: Path, work_repo: Path) -> Path:
    """A bare clone of work_repo, the "remote" the tests push to and mirror from."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work_repo), str(remote))
    git(work_repo, "remote", "add", "origin", str(remote))
    return remote


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """Serve tmp_path over git:// on loopback; returns path -> git:// URL."""
    base = tmp_path
    port = free_port()
    proc = subprocess.Popen(
        [
            "git", "daemon", "--export-all", "--enable=receive-pack", "--reuseaddr",
            "--informative-errors", f"--base-path={base}", "--listen=127.0.0.1",
            f"--port={port}", str(base),
        ],
        env=GIT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield lambda path: f"git://127.0.0.1:{port}/{path.relative_to(base)}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
