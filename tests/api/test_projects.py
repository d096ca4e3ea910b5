"""Several projects on one host: two `odooops serve --project` processes side by side, on one state
directory, one API key file and one token registry. Tokens limited to projects, project-addressed paths
(/api/v1/projects/{project}/...), `odooops --project` and the served project in the status."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from reconciler.api.auth import KeyRing, Principal, issue_claims, issue_token
from reconciler.api.jobs import JobRegistry
from reconciler.api.token_registry import TokenRegistry
from reconciler.core import projects as projects_module
from tests.api.conftest import OPENAPI, ROOT, ApiServer
from tests.cli.test_client_offline import cli_env
from tests.daemon.gitserve import free_port, git, git_daemon, wait_serve_ready
from tests.example_repo import build_example


@dataclass
class Host:
    """One host's serves by project name, their shared key file and state directory."""

    urls: dict[str, str]
    keys: KeyRing
    key_file: Path
    state: Path

    def token(self, role: str | None = "developer", scopes: list[str] | None = None,
              projects: list[str] | None = None, subject: str = "dev@example.com") -> str:
        return issue_token(self.keys, subject, scopes, 3600, role=role, projects=projects)

    def call(self, project: str, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.request(method, self.urls[project] + path, headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str]) -> Iterator[Host]:
    """`odooops serve --project alpha` and `--project beta` over one repository (two projects may be made
    from one), with the same --state-dir and --api-key-file. No branch is mapped to an environment by
    the policy: the serves poll for real but apply nothing."""
    base = tmp_path_factory.mktemp("projects")
    srv = base / "srv"
    bare = srv / "acme.git"
    refs = build_example(bare, bare=True, oca_dest=base / "oca-web.git")
    git(bare, "branch", "base", "develop")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/base")
    for ref in refs:
        git(bare, "update-ref", "-d", ref)
    key_file, state = base / "keys" / "api.key", base / "state"
    keys = KeyRing.from_file(key_file, create=True)
    env = {**os.environ, **services_env, "ODOOOPS_SECRET_KEY_FILE": str(base / "secret.key"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("ODOOOPS_PROJECT", None)
    with git_daemon(srv) as url, contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for project in ("alpha", "beta"):
            port, log = free_port(), base / f"serve-{project}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "serve", "--repo", f"{url}/acme.git", "--project", project,
                 "--listen", f"127.0.0.1:{port}", "--poll-interval", "3600", "--sweep-interval", "3600",
                 "--state-dir", str(state), "--api-key-file", str(key_file),
                 "--audit-log", str(base / f"audit-{project}.jsonl")],
                env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
            stack.callback(_stop, proc)
            urls[project] = f"http://127.0.0.1:{port}"
            wait_serve_ready(proc, urls[project], log)
        yield Host(urls, keys, key_file, state)


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body


def test_a_token_limited_to_a_project_is_taken_by_its_serve_only(host: Host) -> None:
    alpha_only = host.token(projects=["Alpha"])  # normalised as a project name is
    assert jwt.decode(alpha_only, options={"verify_signature": False})["projects"] == ["alpha"]
    assert host.call("alpha", "GET", "/api/v1/environments", alpha_only).status_code == 200
    refused = host.call("beta", "GET", "/api/v1/environments", alpha_only)
    assert refused.status_code == 403, refused.text
    err = _error(refused)
    assert err["error"] == "TOKEN_PROJECT_REFUSED"
    assert "'beta'" in err["message"] and "alpha" in err["message"]
    assert "--project alpha" in err["remediation"] and "--project beta" in err["remediation"]
    # Both serves' answers under the project path too: the limit is the token's, whatever the path.
    assert host.call("beta", "GET", "/api/v1/projects/beta/environments", alpha_only).status_code == 403
    both = host.token(projects=["alpha", "beta"])
    unlimited = host.token()
    for project in ("alpha", "beta"):
        assert host.call(project, "GET", "/api/v1/environments", both).status_code == 200
        assert host.call(project, "GET", "/api/v1/environments", unlimited).status_code == 200


def test_the_unnamed_projects_serve_takes_only_unlimited_tokens(api: ApiServer) -> None:
    limited = issue_token(api.keys, "dev@example.com", None, 600, role="developer", projects=["alpha"])
    refused = api.request("GET", "/api/v1/environments", token=limited)
    assert refused.status_code == 403 and _error(refused)["error"] == "TOKEN_PROJECT_REFUSED"
    assert "unnamed project" in _error(refused)["message"]
    assert api.request("GET", "/api/v1/environments", role="developer").status_code == 200
    # No project path addresses it, and its status names no project.
    wrong = api.request("GET", "/api/v1/projects/alpha/environments", role="developer")
    assert wrong.status_code == 404 and _error(wrong)["error"] == "PROJECT_NOT_FOUND"
    assert api.request("GET", "/api/v1/status", role="developer").json()["project"] is None


def test_project_paths_answer_on_the_projects_serve_and_404_elsewhere(host: Host) -> None:
    token = host.token()
    plain = host.call("alpha", "GET", "/api/v1/environments", token)
    prefixed = host.call("alpha", "GET", "/api/v1/projects/alpha/environments", token)
    assert prefixed.status_code == plain.status_code == 200 and prefixed.json() == plain.json()
    # The name is normalised as everywhere else; an invalid one says so.
    assert host.call("alpha", "GET", "/api/v1/projects/ALPHA/status", token).json()["project"] == "alpha"
    invalid = host.call("alpha", "GET", "/api/v1/projects/a/environments", token)
    assert invalid.status_code == 400 and _error(invalid)["error"] == "PROJECT_NAME_INVALID"
    wrong = host.call("beta", "GET", "/api/v1/projects/alpha/environments", token)
    assert wrong.status_code == 404, wrong.text
    err = _error(wrong)
    assert err["error"] == "PROJECT_NOT_FOUND" and err["request_id"] == wrong.headers["X-Request-ID"]
    assert "'beta'" in err["message"] and "'alpha'" in err["message"]
    assert "odooops --project beta" in err["remediation"] and err["docs"].endswith("#PROJECT_NOT_FOUND")
    # Everything else answers as on /api/v1: writes, errors of the operation, unknown paths.
    made = host.call("alpha", "POST", "/api/v1/projects/alpha/tokens", token,
                     json={"subject": "ci@example.com", "scopes": ["env:read"]})
    assert made.status_code == 403 and _error(made)["error"] == "SCOPE_REQUIRED"  # a developer has no tokens:write
    gone = host.call("alpha", "GET", "/api/v1/projects/alpha/environments/nosuchenv", token)
    assert gone.status_code == 404 and _error(gone)["error"] == "ENV_NOT_FOUND"
    assert host.call("alpha", "GET", "/api/v1/projects/alpha/nosuchpath", token).status_code == 404
    # Without a token: the project is checked first (the right server), then the token.
    assert _error(host.call("beta", "GET", "/api/v1/projects/alpha/environments", None))["error"] == \
        "PROJECT_NOT_FOUND"
    assert _error(host.call("alpha", "GET", "/api/v1/projects/alpha/environments", None))["error"] == "TOKEN_MISSING"


def test_a_developer_minting_on_a_projects_serve_gets_a_token_of_that_project(host: Host) -> None:
    dev = host.token(scopes=["env:read", "tokens:write"], subject="dev@example.com")
    made = host.call("alpha", "POST", "/api/v1/tokens", dev, json={"subject": "ci@example.com",
                                                                   "scopes": ["env:read"]})
    assert made.status_code == 201, made.text
    assert made.json()["projects"] == ["alpha"]
    minted = made.json()["token"]
    assert host.call("alpha", "GET", "/api/v1/environments", minted).status_code == 200
    assert _error(host.call("beta", "GET", "/api/v1/environments", minted))["error"] == "TOKEN_PROJECT_REFUSED"
    # Named projects are allowed within the creator's own reach; beyond it, refused.
    other = host.call("alpha", "POST", "/api/v1/tokens", dev, json={"subject": "ci@example.com",
                                                                    "scopes": ["env:read"], "projects": ["beta"]})
    assert other.status_code == 201 and other.json()["projects"] == ["beta"]
    narrow = host.token(scopes=["env:read", "tokens:write"], projects=["alpha"])
    beyond = host.call("alpha", "POST", "/api/v1/tokens", narrow,
                       json={"subject": "ci@example.com", "scopes": ["env:read"], "projects": ["alpha", "beta"]})
    assert beyond.status_code == 403 and _error(beyond)["error"] == "TOKEN_PROJECT_NOT_ALLOWED"
    assert "beta" in _error(beyond)["message"]
    bad = host.call("alpha", "POST", "/api/v1/tokens", dev,
                    json={"subject": "ci@example.com", "scopes": ["env:read"], "projects": ["x"]})
    assert bad.status_code == 400 and _error(bad)["error"] == "PROJECT_NAME_INVALID"
    # The API takes the normal form (as openapi.json's pattern says), and names it when sent another.
    unnormal = host.call("alpha", "POST", "/api/v1/tokens", dev,
                         json={"subject": "ci@example.com", "scopes": ["env:read"], "projects": ["Beta"]})
    assert unnormal.status_code == 400 and _error(unnormal)["error"] == "PROJECT_NAME_INVALID"
    assert "'beta'" in _error(unnormal)["remediation"]
    # Only an admin mints an unlimited token on a project's serve.
    admin = host.token(role="admin", subject="ops@example.com")
    free = host.call("alpha", "POST", "/api/v1/tokens", admin, json={"subject": "ci@example.com",
                                                                     "scopes": ["env:read"]})
    assert free.status_code == 201 and free.json()["projects"] is None
    assert host.call("beta", "GET", "/api/v1/environments", free.json()["token"]).status_code == 200
    # One registry for the host: beta's serve lists what alpha's minted, with the projects.
    listed = {t["id"]: t for t in host.call("beta", "GET", "/api/v1/tokens", admin).json()["tokens"]}
    assert listed[made.json()["id"]]["projects"] == ["alpha"]
    assert listed[free.json()["id"]]["projects"] is None


def test_status_names_the_served_project(host: Host) -> None:
    token = host.token()
    assert host.call("beta", "GET", "/api/v1/status", token).json()["project"] == "beta"
    assert httpx.get(host.urls["alpha"] + "/status", timeout=60).json()["project"] == "alpha"  # loopback


def _odooops(tmp_path: Path, url: str, token: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True,
                          env=cli_env(tmp_path, ODOOOPS_SERVER=url, ODOOOPS_TOKEN=token, **extra), cwd=tmp_path,
                          timeout=120)


def test_the_cli_addresses_its_project_and_fails_on_another_serve(host: Host, tmp_path: Path) -> None:
    token = host.token()
    ok = _odooops(tmp_path, host.urls["alpha"], token, "--project", "alpha", "env", "list", "--json")
    assert ok.returncode == 0, ok.stderr
    wrong = _odooops(tmp_path, host.urls["beta"], token, "--project", "alpha", "env", "list", "--json")
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["error"] == "PROJECT_NOT_FOUND", wrong.stdout
    by_env = _odooops(tmp_path, host.urls["beta"], token, "env", "list", "--json", ODOOOPS_PROJECT="alpha")
    assert by_env.returncode == 1 and json.loads(by_env.stdout)["error"] == "PROJECT_NOT_FOUND"
    invalid = _odooops(tmp_path, host.urls["beta"], token, "--project", "x", "env", "list", "--json")
    assert invalid.returncode == 1 and json.loads(invalid.stdout)["error"] == "PROJECT_NAME_INVALID"
    # status has its own --project (for --repo): the group's reaches it, and its own wins.
    fed = _odooops(tmp_path, host.urls["beta"], token, "--project", "alpha", "status", "--json")
    assert fed.returncode == 1 and json.loads(fed.stdout)["error"] == "PROJECT_NOT_FOUND"
    own = _odooops(tmp_path, host.urls["beta"], token, "--project", "alpha", "status", "--project", "beta", "--json")
    assert own.returncode == 0, own.stdout + own.stderr
    assert json.loads(own.stdout)["daemon"]["project"] == "beta"
    human = _odooops(tmp_path, host.urls["beta"], token, "status")
    assert human.returncode == 0 and "project beta, repository" in human.stdout, human.stdout + human.stderr


def test_token_create_and_list_carry_the_projects(host: Host, tmp_path: Path) -> None:
    offline = subprocess.run(
        [sys.executable, "-m", "reconciler", "token", "create", "--key-file", str(host.key_file), "--role",
         "developer", "--subject", "bob@example.com", "--project", "Alpha", "--project", "beta", "--json"],
        capture_output=True, text=True, env=cli_env(tmp_path), cwd=tmp_path, timeout=120)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["projects"] == ["alpha", "beta"]
    admin = host.token(role="admin", subject="ops@example.com")
    # On alpha's serve, through its project path: the token asked for is limited as asked.
    made = _odooops(tmp_path, host.urls["alpha"], admin, "--project", "alpha", "token", "create", "--role",
                    "tester", "--subject", "qa@example.com", "--project", "beta", "--json")
    assert made.returncode == 0, made.stdout + made.stderr
    minted = json.loads(made.stdout)
    assert minted["projects"] == ["beta"]
    assert host.call("beta", "GET", "/api/v1/environments", minted["token"]).status_code == 200
    assert host.call("alpha", "GET", "/api/v1/environments", minted["token"]).status_code == 403
    listed = _odooops(tmp_path, host.urls["beta"], admin, "token", "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert "PROJECTS" in header.split()
    row = next(r for r in rows if r.startswith(minted["id"]))
    assert " beta " in row


def test_each_projects_serve_has_its_own_jobs(host: Host) -> None:
    """Each project's jobs in a folder of their own (jobs/NAME), not in one folder for the host: a serve
    that starts marks the running jobs it finds as interrupted, and one project's token must not read
    another project's jobs."""
    registry = JobRegistry(host.state / "jobs" / "alpha")
    try:
        job = registry.submit("db.backup", "main", "dev@example.com", lambda: {"ok": True})
        assert registry.wait(job.id, 30) is not None
    finally:
        registry.shutdown(wait=True)
    token = host.token()
    assert host.call("alpha", "GET", f"/api/v1/jobs/{job.id}", token).json()["state"] == "succeeded"
    assert _error(host.call("beta", "GET", f"/api/v1/jobs/{job.id}", token))["error"] == "JOB_NOT_FOUND"
    assert job.id not in {j["id"] for j in host.call("beta", "GET", "/api/v1/jobs", token).json()["jobs"]}


def test_the_documented_project_pattern_is_the_rule() -> None:
    doc = json.loads(OPENAPI.read_text())["components"]["schemas"]["TokenBody"]["properties"]["projects"]
    items = next(s for s in doc["anyOf"] if s.get("type") == "array")["items"]
    assert items["pattern"] == projects_module._PROJECT.pattern
    assert (items["minLength"], items["maxLength"]) == (projects_module.PROJECT_MIN, projects_module.PROJECT_MAX)


def test_a_registry_from_before_projects_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE tokens (jti TEXT PRIMARY KEY, subject TEXT NOT NULL, scopes TEXT NOT NULL, "
                     "issued_at REAL, expires_at REAL NOT NULL, origin TEXT NOT NULL, created_by TEXT, parent TEXT, "
                     "revoked_at REAL, revoked_by TEXT)")
    db.execute("INSERT INTO tokens VALUES ('old', 'a@example.com', 'env:read', ?, ?, 'api', NULL, NULL, NULL, NULL)",
               (time.time(), time.time() + 600))
    db.commit()
    db.close()
    path.chmod(0o600)
    registry = TokenRegistry(path)
    try:
        assert registry.get("old")["projects"] is None  # type: ignore[index]
        _token, claims = issue_claims(b"k" * 32, "b@example.com", ["env:read"], 600, projects=["gamma"])
        registry.record(Principal("b@example.com", frozenset({"env:read"}), claims["jti"], float(claims["exp"]),
                                  claims))
        assert registry.get(claims["jti"])["projects"] == ["gamma"]  # type: ignore[index]
    finally:
        registry.close()


def test_a_token_revoked_through_one_serve_is_refused_by_the_others(host: Host) -> None:
    token = host.token(subject="leaver@example.com")
    for project in ("alpha", "beta"):  # both serves have seen it (a key-file token, recorded at first use)
        assert host.call(project, "GET", "/api/v1/environments", token).status_code == 200
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    admin = host.token(role="admin", subject="ops@example.com")
    assert host.call("alpha", "DELETE", f"/api/v1/tokens/{jti}", admin).status_code == 200
    for project in ("alpha", "beta"):
        refused = host.call(project, "GET", "/api/v1/environments", token)
        assert refused.status_code == 401 and _error(refused)["error"] == "TOKEN_REVOKED", project
