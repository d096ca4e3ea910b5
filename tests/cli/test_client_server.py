"""The CLI as a subprocess against the live REST server on loopback (tests/api's `api` fixture):
env list/show, name resolution, tokens, error objects and exit codes, secrets from stdin, the
git side of push/branch and the --wait outcomes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from reconciler.api.auth import issue_token
from reconciler.core.naming import env_name_for_branch
from tests.api import conftest as api_conftest
from tests.api.conftest import ApiServer
from tests.cli.test_client_offline import cli_env
from tests.daemon.gitserve import git

api = api_conftest.api  # the session's live server (re-exported so pytest finds the fixture here)


def run(api: ApiServer, tmp_path: Path, *args: str, token: str | None = None, role: str | None = "admin",
        stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = {"ODOOOPS_SERVER": api.url}
    if token is None and role is not None:
        token = api.token(role=role)
    if token is not None:
        extra["ODOOOPS_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "reconciler", *args], input=stdin, capture_output=True, text=True,
                          env=cli_env(tmp_path, **extra), cwd=cwd or tmp_path, timeout=120)


def new_branch(api: ApiServer, start: str = "develop") -> tuple[str, str, str]:
    """A fresh branch in the served remote: (branch, env name, commit)."""
    branch = f"feature/cli-{uuid.uuid4().hex[:8]}"
    git(api.bare, "branch", branch, start)
    api.daemon.project().source.refresh()
    return branch, env_name_for_branch(branch), git(api.bare, "rev-parse", branch)


def test_env_list_and_show_json_and_table(api: ApiServer, tmp_path: Path) -> None:
    branch = f"feature/cli-{uuid.uuid4().hex[:8]}"
    a = api.add_env(branch=branch, tier="development")
    b = api.add_env(tier="preview")
    try:
        out = run(api, tmp_path, "env", "list", "--json", role="tester")
        assert out.returncode == 0, out.stderr
        listed = {e["name"]: e for e in json.loads(out.stdout)["environments"]}
        assert listed[a]["branch"] == branch and listed[a]["workers"] == 2 and listed[b]["tier"] == "preview"
        human = run(api, tmp_path, "env", "list", role="tester")
        header, *rows = human.stdout.splitlines()
        assert header.split()[:4] == ["NAME", "BRANCH", "TIER", "STATE"]
        row = next(r for r in rows if r.startswith(a + " "))
        assert row.split()[:5] == [a, branch, "development", "running", "0" * 8]
        # ENV as the branch name, resolved by the client (the server's path takes DNS labels only).
        shown = run(api, tmp_path, "env", "show", branch, "--json", role="tester")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["name"] == a and "steps" in json.loads(shown.stdout)
        human_show = run(api, tmp_path, "env", "show", a, role="tester")
        assert f"branch        {branch}" in human_show.stdout
    finally:
        api.remove_env(a)
        api.remove_env(b)


def test_ambiguous_tier_and_unknown_names(api: ApiServer, tmp_path: Path) -> None:
    tier = f"t{uuid.uuid4().hex[:6]}"
    a, b = api.add_env(tier=tier), api.add_env(tier=tier)
    try:
        amb = run(api, tmp_path, "env", "show", tier, "--json", role="tester")
        assert amb.returncode == 1
        err = json.loads(amb.stdout)
        assert err["error"] == "ENV_AMBIGUOUS" and a in err["message"] and b in err["message"]
        # A name the client cannot match goes to the server: its 404 error object is printed verbatim.
        missing = run(api, tmp_path, "env", "show", "nope-nope", "--json", role="tester")
        assert missing.returncode == 1
        body = json.loads(missing.stdout)
        assert body["error"] == "ENV_NOT_FOUND" and body["request_id"] and body["remediation"].startswith("odooops")
        human = run(api, tmp_path, "env", "show", "nope-nope", role="tester")
        assert "Error ENV_NOT_FOUND" in human.stderr and "request id: " in human.stderr
        branch = run(api, tmp_path, "env", "show", "feature/does-not-exist", role="tester")
        assert branch.returncode == 1 and "odooops push feature/does-not-exist --wait" in branch.stderr
        api.remove_env(b)
        single = run(api, tmp_path, "env", "show", tier, "--json", role="tester")  # one env left in the tier
        assert single.returncode == 0 and json.loads(single.stdout)["name"] == a
    finally:
        api.remove_env(a)
        api.remove_env(b)


def test_tokens_offline_key_file_accepted_expired_and_scopeless_exit_4(api: ApiServer, tmp_path: Path) -> None:
    key_file = api.state.parent / "api.key"
    made = run(api, tmp_path, "token", "create", "--key-file", str(key_file), "--role", "tester",
               "--subject", "cli-test", "--ttl", "10m", role=None)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert run(api, tmp_path, "env", "list", token=token).returncode == 0
    expired = issue_token(api.keys, "cli-test", role="tester", ttl_s=60, now=time.time() - 7200)
    out = run(api, tmp_path, "env", "list", "--json", token=expired)
    assert out.returncode == 4
    assert json.loads(out.stdout)["error"] == "TOKEN_EXPIRED" and "odooops token create" in out.stdout
    no_token = run(api, tmp_path, "env", "list", role=None)
    assert no_token.returncode == 4 and "TOKEN_MISSING" in no_token.stderr
    forged = run(api, tmp_path, "env", "list", token=token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert forged.returncode == 4 and "TOKEN_INVALID" in forged.stderr
    scope = run(api, tmp_path, "audit", "list", "--json", token=token)  # tester has no audit:read
    assert scope.returncode == 4 and json.loads(scope.stdout)["error"] == "SCOPE_REQUIRED"


def test_token_create_through_the_server_and_login(api: ApiServer, tmp_path: Path) -> None:
    # Shorter than the calling token's hour: a token never mints one that outlives it (an hour asked a few
    # seconds after the caller's was issued would outlive it, and is refused: TOKEN_EXPIRY_NOT_ALLOWED).
    out = run(api, tmp_path, "token", "create", "--role", "tester", "--subject", "bob", "--ttl", "30m", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["subject"] == "bob" and "env:read" in data["scopes"] and "shell" not in data["scopes"]
    bad = run(api, tmp_path, "login", "--server", api.url, "--token-stdin", stdin="not-a-jwt\n", role=None)
    config = tmp_path / "cfg" / "odooops" / "config.json"
    assert bad.returncode == 4 and not config.exists()
    good = run(api, tmp_path, "login", "--server", api.url, "--token-stdin", stdin=data["token"] + "\n", role=None)
    assert good.returncode == 0, good.stderr
    assert json.loads(config.read_text()) == {"server": api.url, "token": data["token"]}
    # No ODOOOPS_SERVER/TOKEN now: both come from the 0600 file.
    listed = subprocess.run([sys.executable, "-m", "reconciler", "env", "list", "--json"], capture_output=True,
                            text=True, env=cli_env(tmp_path), timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "environments" in json.loads(listed.stdout)


def test_secret_from_stdin_never_in_argv_environ_or_output(api: ApiServer, tmp_path: Path) -> None:
    env = api.add_env()
    value = f"s3cr3t-{uuid.uuid4().hex}"
    try:
        cmd = [sys.executable, "-m", "reconciler", "secrets", "set", "smtp_password", "--env", env]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=cli_env(tmp_path, ODOOOPS_SERVER=api.url,
                                                       ODOOOPS_TOKEN=api.token(role="admin")))
        # What `ps` and /proc show of the running client, before it has the value.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        stdout, stderr = proc.communicate(value + "\n", timeout=60)
        assert proc.returncode == 0, stderr
        assert value.encode() not in cmdline + environ
        assert value not in stdout + stderr
        assert api.ctx.ops.secret_store().get(env, "smtp_password") == value  # the trailing newline dropped
        listed = run(api, tmp_path, "secrets", "list", env, "--json")
        assert json.loads(listed.stdout)["secrets"] == ["smtp_password"] and value not in listed.stdout
        audit = run(api, tmp_path, "audit", "list", "--json", "--limit", "50")
        assert audit.returncode == 0 and value not in audit.stdout
        assert value not in (api.state / "audit" / "audit.jsonl").read_text()
        verify = run(api, tmp_path, "audit", "verify", "--json")
        assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True
    finally:
        api.remove_env(env)


def test_refusals_exit_3_and_wait_timeout_exit_2(api: ApiServer, tmp_path: Path) -> None:
    prod = api.add_env(tier="production")
    dev = api.add_env()
    try:
        refused = run(api, tmp_path, "destroy", prod, "--json")
        assert refused.returncode == 3
        assert json.loads(refused.stdout)["error"] == "DESTROY_NEEDS_CONFIRMATION"
        # The daemon of the test server is not started: the redeploy is queued but never applied.
        waited = run(api, tmp_path, "deploy", dev, "--wait", "--timeout", "1", "--json")
        assert waited.returncode == 2, waited.stderr
        assert json.loads(waited.stdout)["error"] == "WAIT_TIMEOUT"
        assert f"deploy {dev}: running" in waited.stderr
        queued = run(api, tmp_path, "deploy", dev, "--json")
        assert queued.returncode == 0 and json.loads(queued.stdout) == {"status": "queued", "env": dev}
    finally:
        api.remove_env(prod)
        api.remove_env(dev)


def test_scale_by_branch_commits_to_the_remote(api: ApiServer, tmp_path: Path) -> None:
    branch, env, head = new_branch(api)
    api.add_env(env, branch=branch)
    try:
        out = run(api, tmp_path, "env", "scale", branch, "--workers", "3", "--json")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert git(api.bare, "rev-parse", branch) == data["commit"] != head
        assert "workers: 3" in git(api.bare, "show", f"{branch}:.odooops.yaml")
    finally:
        api.remove_env(env)


def clone(api: ApiServer, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", api.daemon.config.repo, str(work))
    git(work, "config", "user.email", "dev@example.com")
    git(work, "config", "user.name", "Dev")
    return work


def test_branch_from_env_then_push_to_env_fast_forward_and_wait(api: ApiServer, tmp_path: Path) -> None:
    branch, env, head = new_branch(api)
    api.add_env(env, branch=branch, tier="staging", commit=head)
    work = clone(api, tmp_path)
    try:
        made = run(api, tmp_path, "branch", "hotfix/x", "--from", env, "--json", cwd=work)
        assert made.returncode == 0, made.stderr
        assert git(work, "rev-parse", "HEAD") == head and git(work, "symbolic-ref", "--short", "HEAD") == "hotfix/x"
        (work / "HOTFIX").write_text("fix\n")
        git(work, "add", "HOTFIX")
        git(work, "commit", "-q", "-m", "hotfix")
        fix = git(work, "rev-parse", "HEAD")
        pushed = run(api, tmp_path, "push", "hotfix/x", "--to", env, "--json", cwd=work)
        assert pushed.returncode == 0, pushed.stderr
        assert json.loads(pushed.stdout)["pushed_to"] == branch and git(api.bare, "rev-parse", branch) == fix
        # A record of the pushed commit that is running ends --wait with 0; a failed one with 1.
        api.add_env(env, branch=branch, tier="staging", commit=fix)
        ok = run(api, tmp_path, "push", "hotfix/x", "--to", env, "--wait", "--timeout", "30", cwd=work)
        assert ok.returncode == 0, ok.stderr
        api.add_env(env, branch=branch, tier="staging", commit=fix, state="failed",
                    error={"message": "module crm_reports failed to install", "remediation": "fix the module"})
        failed = run(api, tmp_path, "push", "hotfix/x", "--to", env, "--wait", "--timeout", "30", "--json", cwd=work)
        assert failed.returncode == 1
        assert json.loads(failed.stdout)["error"] == "ENV_FAILED" and "crm_reports" in failed.stdout
        # The env's branch moved on: pushing the old line again is not a fast-forward and git refuses.
        git(work, "checkout", "-q", "-b", "other", head)
        (work / "OTHER").write_text("x\n")
        git(work, "add", "OTHER")
        git(work, "commit", "-q", "-m", "diverged")
        refused = run(api, tmp_path, "push", "other", "--to", env, cwd=work)
        assert refused.returncode == 1 and "GIT_FAILED" in refused.stderr
        assert git(api.bare, "rev-parse", branch) == fix
    finally:
        api.remove_env(env)


def test_logs_and_rollback_default_to_the_current_branch(api: ApiServer, tmp_path: Path) -> None:
    branch, env, head = new_branch(api)
    api.add_env(env, branch=branch, commit=head)
    work = clone(api, tmp_path)
    git(work, "checkout", "-q", branch)
    try:
        # No container runs for this record: the server's 404 names the env the client resolved.
        out = run(api, tmp_path, "logs", "--json", cwd=work)
        assert out.returncode == 1, out.stdout
        assert env in out.stdout
    finally:
        api.remove_env(env)


def test_env_create_from_an_env_pushes_a_new_branch_and_never_overwrites(api: ApiServer, tmp_path: Path) -> None:
    branch, env, head = new_branch(api)
    api.add_env(env, branch=branch, tier="production", commit=head)
    work = clone(api, tmp_path)
    new = f"feature/crm-{uuid.uuid4().hex[:8]}"
    try:
        # This server has no POST /api/v1/environments: the branch is created from the checkout.
        made = run(api, tmp_path, "env", "create", new, f"--branch={new}", "--from", env, "--json", cwd=work)
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["commit"] == head and git(api.bare, "rev-parse", new) == head
        again = run(api, tmp_path, "env", "create", new, "--json", cwd=work)
        assert again.returncode == 1 and json.loads(again.stdout)["error"] == "BRANCH_EXISTS"
        assert git(api.bare, "rev-parse", new) == head
        plain = f"feature/new-{uuid.uuid4().hex[:8]}"
        default = run(api, tmp_path, "env", "create", plain, cwd=work)  # the remote's default branch
        assert default.returncode == 0, default.stderr
        assert git(api.bare, "rev-parse", plain) == git(api.bare, "rev-parse", "HEAD")
        outside = run(api, tmp_path, "env", "create", "feature/x", "--json")
        assert outside.returncode == 1 and json.loads(outside.stdout)["error"] == "ENV_CREATE_UNSUPPORTED"
    finally:
        api.remove_env(env)


def test_rollback_clear_deletes_the_pin_ref(api: ApiServer, tmp_path: Path) -> None:
    branch, env, head = new_branch(api)
    api.add_env(env, branch=branch, commit=head)
    git(api.bare, "update-ref", f"refs/odooops/pins/{env}", head)
    work = clone(api, tmp_path)
    try:
        cleared = run(api, tmp_path, "rollback", env, "--clear", "--json", cwd=work)
        assert cleared.returncode == 0, cleared.stderr
        assert json.loads(cleared.stdout)["status"] == "cleared"
        assert git(api.bare, "for-each-ref", f"refs/odooops/pins/{env}") == ""
        again = run(api, tmp_path, "rollback", env, "--clear", "--json", cwd=work)
        assert again.returncode == 0 and json.loads(again.stdout)["status"] == "not_pinned"
        both = run(api, tmp_path, "rollback", env, "--clear", "--to", head[:12], cwd=work)
        assert both.returncode == 1
    finally:
        api.remove_env(env)


def test_status_without_repo_asks_the_server(api: ApiServer, tmp_path: Path) -> None:
    """`odooops status` is a client of the server unless --repo asks for this host's files."""
    branch, env, head = new_branch(api)
    api.add_env(env, branch=branch, commit=head)
    try:
        as_json = run(api, tmp_path, "status", "--json", role="tester")
        assert as_json.returncode == 0, as_json.stderr
        data = json.loads(as_json.stdout)
        assert {e["name"]: e["commit"] for e in data["environments"]}[env] == head
        # this fixture's daemon does not poll: its status says so rather than inventing a poll
        assert data["daemon"]["ready"] is False and data["daemon"]["queue"]["running"] == []
        human = run(api, tmp_path, "status", role="tester")
        assert human.returncode == 0 and env in human.stdout and "last poll never" in human.stdout, human.stderr
        assert head[:12] in human.stdout
        refused = run(api, tmp_path, "status", "--json", role=None)  # no token
        assert refused.returncode == 4 and json.loads(refused.stdout)["error"] == "TOKEN_MISSING"
    finally:
        api.remove_env(env)
