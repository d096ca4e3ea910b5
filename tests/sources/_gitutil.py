"""Helpers for the git source tests: an isolated git CLI and loopback port polling."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

# The tests drive the real git CLI to build repositories; keep it away from user config.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.test",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.test",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    """Run git in cwd and return its stdout (raises with stderr on failure)."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=input, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode().strip()


def commit_file(repo: Path, path: str, content: str, message: str | None = None) -> str:
    """Write path in the work tree, commit it, return the new commit id."""
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", message or f"update {path}")
    return git(repo, "rev-parse", "HEAD")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)  # polling a condition with a deadline, not a fixed wait
    raise AssertionError(f"port {port} never accepted connections")
