"""Secrets set and rotated through the API never appear in state files, Git objects, logs or responses."""

from __future__ import annotations

import secrets
import subprocess
import uuid
from pathlib import Path

from reconciler.secrets import SecretStore
from tests.api.conftest import ApiServer
from tests.daemon.gitserve import git


def _git_objects(repo: Path) -> bytes:
    """Every object of the repository, decompressed (blobs, trees, commits, notes)."""
    return subprocess.run(["git", "--git-dir", str(repo), "cat-file", "--batch-all-objects", "--batch"],
                          capture_output=True, check=True).stdout


def test_secret_values_never_leak(api: ApiServer) -> None:
    branch = f"feature/sec-{uuid.uuid4().hex[:8]}"
    git(api.bare, "branch", branch, "develop")
    api.daemon.project().source.refresh()
    env = api.add_env(branch=branch)
    store = SecretStore(api.state / "secrets")
    old = [store.get_or_create(env, "db_password"), store.get_or_create(env, "admin_passwd")]  # as apply does
    smtp, s3 = f"smtp-{secrets.token_urlsafe(24)}", f"s3-{secrets.token_urlsafe(24)}"
    first = len(api.responses)
    try:
        dev = api.token(role="developer", subject="dev@example.com")
        refused = api.request("PUT", "/api/v1/secrets/s3_secret_access_key", json={"value": s3}, token=dev)
        assert refused.status_code == 403  # project secrets serve production: not the developer's to set
        assert refused.json()["error"] == "PRODUCTION_ROLE_REQUIRED" and s3 not in refused.text
        r = api.request("PUT", f"/api/v1/environments/{env}/secrets/smtp_password", json={"value": smtp}, token=dev)
        assert r.status_code == 204 and r.content == b""
        assert api.request("PUT", "/api/v1/secrets/s3_secret_access_key", json={"value": s3}).status_code == 204
        names = api.request("GET", f"/api/v1/environments/{env}/secrets", token=dev).json()
        assert names == {"secrets": ["admin_passwd", "db_password", "smtp_password"]}
        assert "s3_secret_access_key" in api.request("GET", "/api/v1/secrets").json()["secrets"]
        rotated = api.request("POST", f"/api/v1/environments/{env}/secrets/rotate")
        assert rotated.status_code == 200 and rotated.json() == {"rotated": ["db_password", "admin_passwd"],
                                                                 "env": env}
        new = [store.get(env, "db_password"), store.get(env, "admin_passwd")]
        assert new[0] not in old and new[1] not in old
        assert store.get(env, "smtp_password") == smtp and store.get("_project", "s3_secret_access_key") == s3
        # more of a workflow: a scale commit, a token, the audit trail, the env itself
        assert api.request("POST", f"/api/v1/environments/{env}/scale", json={"workers": 1}).status_code == 202
        assert api.request("POST", "/api/v1/tokens", json={"subject": "ci", "role": "tester"}).status_code == 201
        assert api.request("POST", f"/api/v1/environments/{env}/exec",
                           json={"command": ["echo", smtp], "stdin": s3}).status_code == 409  # not deployed
        for path in ("/api/v1/audit?limit=10000", f"/api/v1/environments/{env}", "/api/v1/environments",
                     "/api/v1/status", f"/api/v1/environments/{env}/deployments"):
            assert api.request("GET", path).status_code == 200
    finally:
        api.remove_env(env)
    values = [smtp, s3, *old, *new]
    assert all(v and len(v) >= 20 for v in values)
    leaks: list[str] = []
    for path in sorted(api.state.rglob("*")):
        if path.is_file() and not (path.parent == api.state / "secrets" and path.suffix == ".enc"):
            data = path.read_bytes()
            leaks += [f"{path}: {v[:6]}..." for v in values if v.encode() in data]
    mirror = api.daemon.project().source.path
    for name, blob in (("remote objects", _git_objects(api.bare)), ("mirror objects", _git_objects(mirror)),
                       ("server log", api.log_file.read_bytes()),
                       ("API responses", "\n".join(api.responses[first:]).encode())):
        leaks += [f"{name}: {v[:6]}..." for v in values if v.encode() in blob]
    assert leaks == []
    # the exec command is audited (without its stdin), the values are redacted
    events = [e for e in api.ctx.audit.entries() if e["target"] == env and e["action"] == "env.exec"]
    assert events and events[-1]["arguments"]["command"] == ["echo", "[redacted]"]
