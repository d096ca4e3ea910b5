"""One `odooops serve` reconciling several projects (--project NAME=URL, repeated): each project's API under
/api/v1/projects/NAME/..., its webhooks, status and readiness under /projects/NAME/..., one pool of workers
shared fairly (controller/daemon/shared_queue.py), and a request that names no project refused, never
answered for one of them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from reconciler.api.auth import KeyRing, issue_token
from reconciler.cli.main import main
from reconciler.cli.serve import served_projects
from reconciler.errors import OdooOpsError
from tests.api.conftest import ROOT
from tests.daemon.gitserve import free_port, git, git_daemon, wait_serve_ready
from tests.example_repo import build_example


def _repo(path: Path, oca: Path) -> None:
    """The example repository with only a branch the default policy maps to no environment."""
    refs = build_example(path, bare=True, oca_dest=oca)
    git(path, "branch", "base", "develop")
    git(path, "symbolic-ref", "HEAD", "refs/heads/base")
    for ref in refs:
        git(path, "update-ref", "-d", ref)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("one-serve")
    srv = base / "srv"
    _repo(srv / "acme.git", base / "oca-web.git")
    _repo(srv / "globex.git", base / "oca-web-2.git")
    key_file = base / "keys" / "api.key"
    keys = KeyRing.from_file(key_file, create=True)
    env = {**os.environ, **services_env, "ODOOOPS_SECRET_KEY_FILE": str(base / "secret.key"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("ODOOOPS_PROJECT", None)
    env.pop("ODOOOPS_REPO", None)
    with git_daemon(srv) as url, contextlib.ExitStack() as stack:
        port, log = free_port(), base / "serve.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "serve", "--project", f"alpha={url}/acme.git",
             "--project", f"Beta={url}/globex.git", "--listen", f"127.0.0.1:{port}", "--poll-interval", "3600",
             "--sweep-interval", "3600", "--state-dir", str(base / "state"), "--api-key-file", str(key_file),
             "--audit-log", str(base / "audit.jsonl"), "--max-concurrent", "4"],
            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
        stack.callback(_kill, proc)
        origin = f"http://127.0.0.1:{port}"
        for project in ("alpha", "beta"):
            wait_serve_ready(proc, f"{origin}/projects/{project}", log)
        yield {"url": origin, "keys": keys, "proc": proc, "log": log, "git": url}
        # SIGTERM stops every project's daemon: exit 0, the stop logged once for all of them.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
        assert log.read_text().count("stopped: work finished or parked") == 1


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """After a failed test: nothing of the serve outlives the module."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def _get(serve: dict[str, Any], path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(serve["url"] + path, headers=headers, timeout=60)


def test_each_project_is_reached_by_its_name(serve: dict[str, Any]) -> None:
    token = issue_token(serve["keys"], "dev@example.com", None, 600, role="developer")
    alpha = _get(serve, "/api/v1/projects/alpha/status", token).json()
    beta = _get(serve, "/api/v1/projects/beta/status", token).json()
    assert (alpha["project"], beta["project"]) == ("alpha", "beta")
    assert alpha["repo"].endswith("/acme.git") and beta["repo"].endswith("/globex.git")
    # The workers are one pool for both: each project's status shows the same pool size.
    assert alpha["queue"]["max_concurrent"] == beta["queue"]["max_concurrent"] == 4
    assert _get(serve, "/api/v1/projects/beta/environments", token).json() == {"environments": []}
    # Operator paths of a project, from this host.
    assert _get(serve, "/projects/beta/status").json()["project"] == "beta"
    assert _get(serve, "/projects/alpha/metrics").status_code == 200
    health = _get(serve, "/healthz")
    assert health.status_code == 200 and health.json()["projects"] == {"alpha": True, "beta": True}


def test_a_request_naming_no_or_another_project_is_refused(serve: dict[str, Any]) -> None:
    token = issue_token(serve["keys"], "dev@example.com", None, 600, role="developer")
    bare = _get(serve, "/api/v1/environments", token)
    assert bare.status_code == 404 and bare.json()["error"] == "PROJECT_REQUIRED"
    assert "alpha, beta" in bare.json()["message"] and "/api/v1/projects/NAME/" in bare.json()["remediation"]
    unknown = _get(serve, "/api/v1/projects/gamma/environments", token)
    assert unknown.status_code == 404 and unknown.json()["error"] == "PROJECT_NOT_FOUND"
    assert unknown.json()["served"] == ["alpha", "beta"]
    # A token limited to alpha reaches alpha's API only, on the same server.
    alpha_only = issue_token(serve["keys"], "dev@example.com", None, 600, role="developer", projects=["alpha"])
    assert _get(serve, "/api/v1/projects/alpha/environments", alpha_only).status_code == 200
    refused = _get(serve, "/api/v1/projects/beta/environments", alpha_only)
    assert refused.status_code == 403 and refused.json()["error"] == "TOKEN_PROJECT_REFUSED"
    # Webhooks are per project: routed to it (refused here for want of a secret, never PROJECT_REQUIRED).
    hook = httpx.post(serve["url"] + "/projects/alpha/webhooks/github", content=b"{}", timeout=60,
                      headers={"X-GitHub-Event": "push", "Content-Type": "application/json"})
    assert hook.status_code != 404 and hook.json()["error"].startswith("WEBHOOK"), hook.text


@pytest.mark.parametrize(("args", "code"), [
    (("--repo", "/srv/a.git", "--project", "a1=x"), "USAGE"),
    (("--repo", "/srv/a.git", "--project", "one", "--project", "two"), "USAGE"),
    ((), "USAGE"),
    (("--project", "acme"), "USAGE"),
    (("--project", "Acme=/srv/a.git", "--project", "acme=/srv/b.git"), "PROJECT_NAME_COLLISION"),
    (("--project", "a=/srv/a.git"), "PROJECT_NAME_INVALID"),
])
def test_bad_project_lists_are_refused_before_anything_starts(args: tuple[str, ...], code: str) -> None:
    with pytest.raises(OdooOpsError) as refused:
        served_projects(*_split(args))
    assert refused.value.code == code
    env = {k: v for k, v in os.environ.items() if k not in ("ODOOOPS_REPO", "ODOOOPS_PROJECT")}
    result = CliRunner().invoke(main, ["serve", *args], env=env)
    assert result.exit_code == 1 and code in result.output


def _split(args: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    repo = args[args.index("--repo") + 1] if "--repo" in args else None
    return repo, tuple(args[i + 1] for i, a in enumerate(args) if a == "--project")


def test_the_served_projects_are_named_in_their_normal_form() -> None:
    assert served_projects(None, ("Acme Corp=/srv/a.git", "globex=git://h/g.git")) == [
        ("acme-corp", "/srv/a.git"), ("globex", "git://h/g.git")]
    assert served_projects("/srv/a.git", ("Acme",)) == [("acme", "/srv/a.git")]
    assert served_projects("/srv/a.git", ()) == [(None, "/srv/a.git")]
