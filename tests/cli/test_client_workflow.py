"""The seed's feature workflow end to end with real processes: `odooops serve` over a git remote,
then `odooops push --wait` from a checkout, `logs`, `shell` with stdin and exit codes, and
`destroy --wait` (Docker, PostgreSQL, Terraform and Caddy are the real ones)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.core.naming import env_name_for_branch
from tests.cli.test_client_offline import cli_env
from tests.daemon import conftest as daemon_conftest
from tests.daemon.gitserve import free_port, git, wait_for

# The daemon tests' remote: the example project behind `git daemon`, one unmapped branch `base`.
served, remote, oca_web = daemon_conftest.served, daemon_conftest.remote, daemon_conftest.oca_web
daemon_state = daemon_conftest.daemon_state

DEADLINE = 240.0  # one create is ~10-20 s here, but other helpers' suites share the two cores


@pytest.fixture
def server(remote: dict[str, Any], services_env: dict[str, str], standin_image: str, oca_web: Path,
           tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`odooops serve` as its own process on a free loopback port; an admin token for it."""
    from reconciler.api.auth import KeyRing, issue_token

    state = tmp_path / "state"
    key = tmp_path / "api.key"
    keys = KeyRing.from_file(key, create=True)
    env = {**os.environ, **services_env, "ODOOOPS_IMAGE_OVERRIDES": f"odoo:19.0={standin_image}",
           "ODOOOPS_GIT_MIRRORS": f"https://github.com/OCA/web.git={oca_web.as_uri()}",
           "ODOOOPS_SECRET_KEY_FILE": str(tmp_path / "secret.key")}
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "serve", "--repo", remote["url"],
                             "--listen", f"127.0.0.1:{port}", "--state-dir", str(state), "--api-key-file", str(key),
                             "--poll-interval", "0.5", "--log-level", "warning"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 120, "odooops serve")
        yield {"url": url, "token": issue_token(keys, "dev@example.com", role="admin"), "state": state,
               "log": tmp_path / "serve.log", "env": env}
    finally:
        proc.terminate()
        proc.wait(120)
        log.close()
        destroy_everything(remote["url"], state, env)


def destroy_everything(repo: str, state: Path, env: dict[str, str]) -> None:
    """Whatever a test left running is destroyed with the real applier; production (which Terraform
    refuses to destroy, by design) and the platform's scratch and template databases by hand."""
    from reconciler.controller.apply import Applier
    from reconciler.controller.planning import Project
    from reconciler.core.model import Action, ActionKind
    from reconciler.data.templates import TemplateRegistry
    from reconciler.executors.postgres import Postgres
    from reconciler.platform.host import HostSettings

    host = HostSettings.from_env(state, env)
    pg = Postgres.from_host(host)
    project = Project.open(repo, state_dir=state)
    applier = Applier(project, host)
    entries = project.store.entries()
    # Scratch and template databases first: an env's role cannot be dropped while it owns one.
    for t in TemplateRegistry(state).all():
        pg.drop(t.db)
    for db in pg.list_databases("oo_"):
        with pg.connect() as conn:
            owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                 (db,)).fetchone()
        if owner and owner[0] in entries:
            pg.drop(db)
    for name, entry in entries.items():
        if entry.get("state") in ("destroyed", "expired"):
            continue
        if name == "production":
            applier.runtime.remove(name)
            applier.router.remove_route(name)
            pg.drop(name)
            with pg.connect() as conn:
                if pg.role_exists(name):
                    conn.execute("DROP OWNED BY production")
                    conn.execute("DROP ROLE production")
            continue
        applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))


def cli(server: dict[str, Any], tmp_path: Path, *args: str, stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = cli_env(tmp_path, ODOOOPS_SERVER=server["url"], ODOOOPS_TOKEN=server["token"])
    return subprocess.run([sys.executable, "-m", "reconciler", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=DEADLINE + 60)


def first_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first line a streaming process prints, within timeout."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf and time.monotonic() < deadline:
        if sel.select(deadline - time.monotonic()):
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
    return buf


def test_push_wait_logs_shell_destroy(server: dict[str, Any], remote: dict[str, Any], tmp_path: Path) -> None:
    work: Path = remote["work"]
    branch = f"feature/cli{uuid.uuid4().hex[:8]}"
    env = env_name_for_branch(branch)
    git(work, "config", "user.email", "dev@example.com")
    git(work, "config", "user.name", "Dev")
    git(work, "checkout", "-q", "-b", branch, "origin/base")
    (work / "CHANGELOG.cli").write_text("feature\n")
    git(work, "add", "CHANGELOG.cli")
    git(work, "commit", "-q", "-m", "feature work")
    commit = git(work, "rev-parse", "HEAD")

    # `odooops push --wait` on the current branch: git push, then wait until it runs healthy.
    pushed = cli(server, tmp_path, "push", "--wait", "--timeout", str(DEADLINE), "--json", cwd=work)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr + server["log"].read_text()[-3000:]
    data = json.loads(pushed.stdout)
    assert data["environment"]["name"] == env and data["environment"]["commit"] == commit
    assert data["environment"]["state"] == "running"
    assert f"push {branch}: running at {commit[:12]}" in pushed.stderr

    listed = cli(server, tmp_path, "env", "list", "--json")
    assert {e["name"]: e["state"] for e in json.loads(listed.stdout)["environments"]}[env] == "running"

    # logs of the current branch's env, then --follow streams until interrupted.
    logs = cli(server, tmp_path, "logs", "--tail", "50", cwd=work)
    assert logs.returncode == 0 and logs.stdout.strip(), logs.stderr
    follow = subprocess.Popen([sys.executable, "-m", "reconciler", "logs", env, "--follow", "--tail", "5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=cli_env(tmp_path, ODOOOPS_SERVER=server["url"], ODOOOPS_TOKEN=server["token"]))
    try:
        assert first_line(follow, 60).strip()
        assert follow.poll() is None  # still streaming
    finally:
        follow.terminate()
        follow.wait(30)

    # shell: stdin passed through, the command's exit code is the CLI's.
    echoed = cli(server, tmp_path, "shell", env, "--", "cat", stdin="hello from stdin\n")
    assert echoed.returncode == 0, echoed.stderr
    assert "hello from stdin" in echoed.stdout
    failing = cli(server, tmp_path, "shell", env, "--", "sh", "-c", "echo nope; exit 7")
    assert failing.returncode == 7 and "nope" in failing.stdout

    # destroy by branch name, waiting until it is gone.
    gone = cli(server, tmp_path, "destroy", branch, "--wait", "--timeout", str(DEADLINE))
    assert gone.returncode == 0, gone.stderr + server["log"].read_text()[-3000:]
    assert git(remote["bare"], "for-each-ref", f"refs/heads/{branch}") == ""
    after = cli(server, tmp_path, "env", "list", "--json")
    assert env not in {e["name"] for e in json.loads(after.stdout)["environments"]}
