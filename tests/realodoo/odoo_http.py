"""Talking to a real Odoo web server in tests: wait for /web/health, log in over JSON-RPC, and run a
server container for one database (127.0.0.1:<random port>) that is removed afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import httpx


@dataclass(frozen=True)
class OdooRun:
    """One finished one-shot container: exit code (None: killed at the timeout) and its output."""

    name: str
    exit_code: int | None
    output: str
    seconds: float


@dataclass(frozen=True)
class OdooServer:
    """A running Odoo web server: its base URL and container."""

    url: str
    container: Any  # docker.models.containers.Container
    db: str

    def logs(self, tail: int = 200) -> str:
        return str(self.container.logs(stdout=True, stderr=True, tail=tail).decode("utf-8", "replace"))


def wait_healthy(url: str, timeout: float = 180, *, gone: Callable[[], str | None] | None = None) -> float:
    """Poll `url`/web/health until it answers 200 {"status": "pass"}; the seconds it took.

    `gone` returns a reason when the server can no longer come up (its container exited): the wait
    then fails at once instead of running into the timeout."""
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer yet"
    with httpx.Client(timeout=5) as client:
        while True:
            try:
                r = client.get(url.rstrip("/") + "/web/health")
                if r.status_code == 200 and r.json().get("status") == "pass":
                    return time.monotonic() - started
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except (httpx.HTTPError, ValueError) as exc:
                last = repr(exc)
            reason = gone() if gone else None
            if reason:
                raise AssertionError(f"{url} will not become healthy: {reason}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"{url}/web/health did not pass within {timeout:.0f} s (last: {last})")
            time.sleep(0.25)


def odoo_login(base_url: str, db: str, login: str, password: str, *, timeout: float = 60) -> bool:
    """Log in through Odoo's JSON-RPC /web/session/authenticate: True when Odoo returns a user id.

    Wrong credentials are False; anything else (HTTP error, unexpected answer) raises."""
    body = {"jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"db": db, "login": login, "password": password}}
    r = httpx.post(base_url.rstrip("/") + "/web/session/authenticate", json=body, timeout=timeout)
    if r.status_code != 200:
        raise AssertionError(f"/web/session/authenticate answered HTTP {r.status_code}: {r.text[:500]}")
    data = r.json()
    if "error" in data:
        error = data["error"].get("data", {}).get("name", "") + " " + str(data["error"].get("message", ""))
        if "AccessDenied" in error or "Access Denied" in error or "Wrong login/password" in error:
            return False
        raise AssertionError(f"/web/session/authenticate failed: {data['error']}")
    return bool((data.get("result") or {}).get("uid"))


@contextmanager
def serve_odoo(client: docker.DockerClient, kwargs: dict[str, Any], *, timeout: float = 180,
               attempts: int = 3) -> Iterator[OdooServer]:
    """Start a web server container from `kwargs` (containers.create arguments; the command names the
    database with -d), publish 8069 on 127.0.0.1:<random>, wait until healthy, yield, then remove it."""
    db = kwargs["command"][kwargs["command"].index("-d") + 1] if "-d" in kwargs["command"] else ""
    container = None
    for attempt in range(attempts):
        container = client.containers.create(**kwargs, ports={"8069/tcp": ("127.0.0.1", None)})
        try:
            container.start()
            break
        except docker.errors.APIError as exc:
            # A random host port can collide with a listener dockerd does not know of: try another.
            _remove(container)
            container = None
            if "address already in use" not in str(exc) or attempt == attempts - 1:
                raise
            kwargs = {**kwargs, "name": f"{kwargs['name']}-{attempt + 1}"}
    assert container is not None
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8069/tcp"][0]["HostPort"]
        server = OdooServer(f"http://127.0.0.1:{port}", container, db)

        def gone() -> str | None:
            container.reload()
            if container.status in ("exited", "dead"):
                return f"container {container.name} {container.status}"
            return None

        try:
            wait_healthy(server.url, timeout, gone=gone)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- last server log lines ---\n{server.logs(60)}") from None
        yield server
    finally:
        _remove(container)


def _remove(container: Any) -> None:
    with suppress(docker.errors.APIError):
        container.remove(v=True, force=True)
