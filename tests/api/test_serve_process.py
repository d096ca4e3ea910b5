"""`odooops serve` as a process: the REST API is on and closed by default; the document matches the code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from reconciler.api.auth import KeyRing, issue_token
from tests.api.conftest import OPENAPI, ROOT
from tests.daemon.gitserve import free_port, git, git_daemon, wait_serve_ready
from tests.example_repo import build_example


def test_openapi_document_is_current(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "scripts/openapi.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    stale = tmp_path / "openapi.json"
    doc = json.loads(OPENAPI.read_text())
    del doc["paths"]["/api/v1/tokens"]
    stale.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    bad = subprocess.run([sys.executable, "scripts/openapi.py", "--check", "--output", str(stale)], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and '+    "/api/v1/tokens": {' in bad.stdout and "out of date" in bad.stderr
    assert doc["openapi"].startswith("3.1")


def test_serve_process(tmp_path: Path, services_env: dict[str, str]) -> None:
    srv = tmp_path / "srv"
    bare = srv / "acme.git"
    refs = build_example(bare, bare=True, oca_dest=tmp_path / "oca-web.git")
    # one branch no policy rule maps: the daemon polls for real but has nothing to apply
    git(bare, "branch", "base", "develop")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/base")
    for ref in refs:
        git(bare, "update-ref", "-d", ref)
    key_file, audit_log, log = tmp_path / "keys" / "api.key", tmp_path / "audit.jsonl", tmp_path / "serve.log"
    port = free_port()
    env = {**os.environ, **services_env, "ODOOOPS_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    with git_daemon(srv) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "serve", "--repo", f"{url}/acme.git", "--listen",
             f"127.0.0.1:{port}", "--poll-interval", "3600", "--sweep-interval", "3600", "--state-dir",
             str(tmp_path / "state"), "--api-key-file", str(key_file), "--audit-log", str(audit_log),
             "--rate-limit", "5/min", "--allow-ip", "10.0.0.0/8", "--trusted-proxy", "127.0.0.1",
             # a burst of 10, then one more every 6 minutes: the 11th failure below is refused however
             # slowly a loaded machine sends them (at the default 30/min one comes back every 2 s)
             "--auth-failure-limit", "10/h"],
            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_serve_ready(proc, base, log)
            assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
            assert key_file.stat().st_mode & 0o777 == 0o600  # created on the first start
            refused = httpx.get(f"{base}/api/v1/environments")
            assert refused.status_code == 401 and refused.json()["error"] == "TOKEN_MISSING"
            token = issue_token(KeyRing.from_file(key_file), "ops@example.com", role="developer")
            headers = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{base}/api/v1/environments", headers=headers).json() == {"environments": []}
            status = httpx.get(f"{base}/api/v1/status", headers=headers).json()
            assert status["ready"] is True and status["desired"] == []
            assert httpx.get(f"{base}/status").status_code == 200  # operator endpoint, open on loopback
            # --trusted-proxy 127.0.0.1: its X-Forwarded-For names the client (uvicorn's own handling is off)
            assert httpx.get(f"{base}/status", headers={"X-Forwarded-For": "198.51.100.9"}).status_code == 401
            # /readyz: the same answer for both, what the checks found only for the local client
            local = httpx.get(f"{base}/readyz")
            remote = httpx.get(f"{base}/readyz", headers={"X-Forwarded-For": "198.51.100.9"})
            assert local.status_code == remote.status_code == 200, (local.text, remote.text)
            assert [c["id"] for c in remote.json()["checks"]] == [c["id"] for c in local.json()["checks"]]
            assert {"postgres.reachable", "docker.reachable"} <= {c["id"] for c in local.json()["checks"]}
            assert all(set(c) == {"id", "status"} for c in remote.json()["checks"]), remote.text
            assert all(set(c) == {"id", "status", "detail", "fix", "duration_ms"} for c in local.json()["checks"])
            # failed authentication: --auth-failure-limit 10/h allows a burst of 10 per address
            bad = [httpx.get(f"{base}/api/v1/environments", headers={"Authorization": "Bearer nope",
                                                                      "X-Forwarded-For": "198.51.100.9"}).status_code
                   for _ in range(11)]
            assert bad == [401] * 10 + [429], bad
            made = httpx.post(f"{base}/api/v1/tokens", headers=headers, json={"subject": "x", "role": "tester"})
            assert made.status_code == 403  # developers have no tokens:write (and it is audited)
            codes = [httpx.get(f"{base}/api/v1/environments", headers=headers).status_code for _ in range(5)]
            assert codes[-1] == 429  # --rate-limit 5/min: the burst is spent
            events = [json.loads(line) for line in audit_log.read_text().splitlines()]
            assert [(e["action"], e["result"]) for e in events] == [("token.create",
                                                                     "refused:SCOPE_REQUIRED (tokens:write)")]
        finally:
            proc.terminate()
            proc.wait(60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
