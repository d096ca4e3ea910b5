"""Access to the bundled example repository builder (examples/build_example_repo.py) from tests."""

import importlib.util
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_example(dest: Path, bare: bool = False, oca_dest: Path | None = None) -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("build_example_repo", ROOT / "examples" / "build_example_repo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(dest, bare=bare, oca_dest=oca_dest)


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "Test",
           "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def commit_file(work: Path, branch: str, path: str, text: str, message: str) -> str:
    """Check out (or create) branch in the work tree, write one file, commit; returns the commit id."""
    branches = git(work, "branch", "--list", branch).strip()
    git(work, "checkout", "-q", branch) if branches else git(work, "checkout", "-q", "-b", branch)
    target = work / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    git(work, "add", path)
    git(work, "commit", "-q", "-m", message)
    return git(work, "rev-parse", "HEAD").strip()
