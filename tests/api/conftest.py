"""Fixtures of the REST API tests: a live server on loopback over a real example remote and state dir."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from reconciler.api.app import create_app
from reconciler.api.audit import AuditKey, AuditLog
from reconciler.api.auth import SCOPES, KeyRing, issue_token
from reconciler.api.ratelimit import RateLimiter
from reconciler.api.rest import ApiContext
from reconciler.controller.daemon import Daemon, DaemonConfig
from reconciler.platform.host import HostSettings
from reconciler.platform.state_store import StateStore
from reconciler.service.operations import Operations
from tests.daemon.gitserve import free_port, git, git_daemon, wait_for
from tests.example_repo import build_example

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.json"


@dataclass
class ApiServer:
    """The server under test and handles on what it writes (state, audit log, remote)."""

    url: str
    keys: KeyRing
    ctx: ApiContext
    daemon: Daemon
    state: Path
    bare: Path
    log_file: Path
    responses: list[str] = field(default_factory=list)  # every body the tests received (secret grep)

    def token(self, scopes: list[str] | None = None, role: str | None = None, subject: str = "tester@example.com",
              ttl_s: float = 3600) -> str:
        return issue_token(self.keys, subject, scopes, ttl_s, role=role)

    def auth(self, scopes: list[str] | None = None, role: str | None = "admin", **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(scopes, None if scopes else role, **kw)}"}

    def request(self, method: str, path: str, *, token: str | None = None, role: str | None = "admin",
                **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif role is not None:
            headers.update(self.auth(role=role))
        response = httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)
        self.responses.append(response.text)
        return response

    @property
    def store(self) -> StateStore:
        return self.ctx.ops.project.store

    def add_env(self, name: str | None = None, *, branch: str | None = None, tier: str = "development",
                **extra: Any) -> str:
        """A state entry as an apply records it (no containers: the API reads the record)."""
        name = name or f"api-{uuid.uuid4().hex[:10]}"
        with self.daemon.project().store._lock:  # type: ignore[attr-defined]
            data = self.store._read()
            data["environments"][name] = {
                "env": name, "branch": branch or name, "tier": tier, "commit": "0" * 40, "spec_digest": "d",
                "settings": {"workers": 2, "cron_workers": 1}, "state": "running", "deployed_at": time.time(),
                "updated_at": time.time(), "url": f"http://{name}.odooops.localhost", **extra}
            self.store._write(data)
        return name

    def remove_env(self, name: str) -> None:
        self.store.forget(name)

    def branch_in_remote(self, branch: str) -> str | None:
        out = git(self.bare, "for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}")
        return out or None


def all_scopes_but(scope: str) -> list[str]:
    return [s for s in SCOPES if s not in (scope, "admin")]


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str],
        standin_image: str) -> Iterator[ApiServer]:
    """One server for the session: the example project served by `git daemon`, a state dir, the
    Operations over a Daemon that is not started (no poller: nothing is applied behind the tests'
    backs; `test_serve_process` runs the whole `odooops serve`)."""
    base = tmp_path_factory.mktemp("api")
    srv = base / "srv"
    srv.mkdir()
    build_example(srv / "acme.git", bare=True, oca_dest=base / "oca-web.git")
    state = base / "state"
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(base / "secret.key")
    key_file = base / "api.key"
    keys = KeyRing.from_file(key_file, create=True)
    log_file = base / "server.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    with git_daemon(srv) as git_url:
        host = HostSettings.from_env(state, {
            **services_env, "ODOOOPS_IMAGE_OVERRIDES": f"odoo:19.0={standin_image}",
            "ODOOOPS_GIT_MIRRORS": f"https://github.com/OCA/web.git={(base / 'oca-web.git').as_uri()}"})
        daemon = Daemon(DaemonConfig(repo=f"{git_url}/acme.git", state_dir=state, poll_interval=3600), host)
        daemon.project().source.refresh()
        ops = Operations(daemon, host)
        ctx = ApiContext(keys=keys, ops=ops, audit=AuditLog(state / "audit" / "audit.jsonl",
                                                         AuditKey.from_file(base / "audit.key", create=True)),
                         limiter=RateLimiter(1000.0, 1000.0), auth_failures=RateLimiter(1000.0, 1000.0),
                         known_secrets=lambda: ops.secret_store().all_values())
        try:
            with serve_app(create_app(daemon, None, api=ctx)) as url:
                yield ApiServer(url, keys, ctx, daemon, state, srv / "acme.git", log_file)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """An app on a free loopback port, configured as `odooops serve` runs it (uvicorn believes no proxy
    header: the API decides, from --trusted-proxy)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off", proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20, "uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def openapi_operations() -> list[tuple[str, str, dict[str, Any]]]:
    doc = json.loads(OPENAPI.read_text())
    return [(method.upper(), path, operation) for path, item in sorted(doc["paths"].items())
            for method, operation in sorted(item.items())]
