"""CaddyRouter against real Caddy (shared and private instances) and wait_healthy against real servers."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.errors import OdooOpsError
from reconciler.executors.docker_runtime import DockerRuntime
from reconciler.executors.health import wait_healthy
from reconciler.executors.router import CATCH_ALL_ID, CaddyRouter, Route
from tests.executors.test_docker_runtime import Deploy, deploy, new_env, runtime  # noqa: F401

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_routes(admin_url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{admin_url}/config/apps/http/servers/odooops/routes", trust_env=False).json()


@contextmanager
def private_caddy(tmp_path: Path, routes: list[dict[str, Any]] | None) -> Iterator[tuple[str, str]]:
    """A Caddy of our own, for router states the shared one must never be put in."""
    admin, http_port = _free_port(), _free_port()
    server: dict[str, Any] = {"listen": [f"127.0.0.1:{http_port}"],
                              "automatic_https": {"disable": True}}
    if routes is not None:
        server["routes"] = routes
    config = {"admin": {"listen": f"127.0.0.1:{admin}", "config": {"persist": False}},
              "apps": {"http": {"servers": {"odooops": server}}}}
    (tmp_path / "caddy.json").write_text(json.dumps(config))
    caddy = shutil.which("caddy") or pytest.fail("caddy is not installed: bash scripts/install.sh")
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "d"),
           "XDG_CONFIG_HOME": str(tmp_path / "c"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([caddy, "run", "--config", str(tmp_path / "caddy.json")], env=env,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "caddy.log").open("w"))
    admin_url = f"http://127.0.0.1:{admin}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{admin_url}/config/", trust_env=False, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("private caddy did not start:\n" + (tmp_path / "caddy.log").read_text())
                time.sleep(0.05)
        yield admin_url, f"http://127.0.0.1:{http_port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def router(caddy_admin_url: str) -> Iterator[CaddyRouter]:
    with CaddyRouter(caddy_admin_url) as r:
        yield r


def test_route_reaches_container_and_unknown_hosts_get_404(
        runtime: DockerRuntime, deploy: Deploy, router: CaddyRouter,  # noqa: F811
        caddy_admin_url: str, router_http_url: str) -> None:
    env = new_env("rt")
    host = f"{env}.odooops.test"
    try:
        upstream = runtime.ensure(deploy.spec(env, roles=("web",))).observed.web_upstream
        assert upstream
        assert router.set_route(env, host, upstream) is True
        assert router.set_route(env, host, upstream) is False  # idempotent: no config write
        assert router.routes()[env] == Route((host,), upstream)
        ids = [r.get("@id") for r in _server_routes(caddy_admin_url)]
        last = _server_routes(caddy_admin_url)[-1]
        assert "match" not in last and ids.index(f"odooops-{env}") < len(ids) - 1

        health = wait_healthy(router_http_url, host_header=host, timeout_s=90, interval_s=0.2)
        assert health.healthy, health
        unknown = httpx.get(f"{router_http_url}/web/health", headers={"Host": f"x-{host}"},
                            trust_env=False)
        assert unknown.status_code == 404

        assert router.remove_route(env) is True
        gone = httpx.get(f"{router_http_url}/web/health", headers={"Host": host}, trust_env=False)
        assert gone.status_code == 404
        assert router.remove_route(env) is False and env not in router.routes()
    finally:
        router.remove_route(env)
        runtime.remove(env)


def test_concurrent_writers_update_in_place(router: CaddyRouter, caddy_admin_url: str) -> None:
    envs = [new_env("cw") for _ in range(6)]
    try:
        # Several writers at once: If-Match makes each insert land on the config it read.
        def add(e: str) -> bool:
            with CaddyRouter(caddy_admin_url) as own:
                return own.set_route(e, [f"{e}.test", f"www.{e}.test"], "127.0.0.1:9")

        with ThreadPoolExecutor(3) as pool:
            assert all(pool.map(add, envs))
        routes = router.routes()
        assert all(routes[e] == Route((f"{e}.test", f"www.{e}.test"), "127.0.0.1:9") for e in envs)
        assert "match" not in _server_routes(caddy_admin_url)[-1]
        mine = {f"odooops-{e}" for e in envs}

        def order() -> list[str]:  # other workers add and remove their own routes meanwhile
            return [r.get("@id") for r in _server_routes(caddy_admin_url) if r.get("@id") in mine]

        before = order()
        assert router.set_route(envs[0], f"{envs[0]}.test", "127.0.0.1:10", "127.0.0.1:11")
        assert router.routes()[envs[0]] == Route((f"{envs[0]}.test",), "127.0.0.1:10", "127.0.0.1:11")
        assert order() == before  # updated in place, not removed and appended
    finally:
        for e in envs:
            router.remove_route(e)
    assert not set(envs) & set(router.routes())


def test_catch_all_is_added_when_missing(tmp_path: Path) -> None:
    for routes in (None, []):
        with private_caddy(tmp_path, routes) as (admin_url, http_url), CaddyRouter(admin_url) as r:
            assert r.set_route("a1", "a1.test", "127.0.0.1:9")
            assert [x.get("@id") for x in _server_routes(admin_url)] == ["odooops-a1", CATCH_ALL_ID]
            assert httpx.get(http_url, headers={"Host": "nobody.test"}, trust_env=False).status_code == 404


def test_catch_all_with_a_clashing_id_is_never_touched(tmp_path: Path) -> None:
    catch_all = {"@id": "odooops-catchall",
                 "handle": [{"handler": "static_response", "status_code": 404}]}
    with private_caddy(tmp_path, [catch_all]) as (admin_url, _), CaddyRouter(admin_url) as r:
        with pytest.raises(OdooOpsError) as err:
            r.set_route("catchall", "c.test", "127.0.0.1:9")
        assert err.value.code == "ROUTER_ID_CLASH"
        assert r.remove_route("catchall") is False
        assert _server_routes(admin_url) == [catch_all]


def test_router_errors(tmp_path: Path, router: CaddyRouter) -> None:
    with pytest.raises(OdooOpsError) as err:
        CaddyRouter(f"http://127.0.0.1:{_free_port()}", retry_s=0.2).routes()
    assert err.value.code == "ROUTER_UNREACHABLE"
    for host, upstream in (("bad host!", "127.0.0.1:9"), ("ok.test", "127.0.0.1"), ([], "h:1")):
        with pytest.raises(OdooOpsError) as err:
            router.set_route("e1", host, upstream)
        assert err.value.code == "ROUTER_BAD_ROUTE"
    with pytest.raises(OdooOpsError) as err:
        CaddyRouter(router.admin_url, server="no-such-server").routes()
    assert err.value.code == "ROUTER_SERVER_MISSING"


class _Health(BaseHTTPRequestHandler):
    """Answers `fail` for the first `fail_first` requests, then `pass`."""

    fail_first = 0
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        status = "fail" if type(self).seen <= type(self).fail_first else "pass"
        body = json.dumps({"status": status}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def health_server(fail_first: int) -> Iterator[str]:
    handler = type("H", (_Health,), {"fail_first": fail_first, "seen": 0})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_wait_healthy_needs_status_pass() -> None:
    with health_server(fail_first=2) as url:
        ok = wait_healthy(url, timeout_s=30, interval_s=0.01)
    assert ok.healthy and ok.attempts == 3 and ok.time_to_healthy_s is not None
    with health_server(fail_first=10**6) as url:
        failing = wait_healthy(url, timeout_s=0.3, interval_s=0.05)
    assert not failing.healthy and failing.last_status == 200 and "pass" in (failing.last_error or "")
    assert failing.attempts >= 2
    refused = wait_healthy(f"http://127.0.0.1:{_free_port()}", timeout_s=0.3, interval_s=0.05)
    assert not refused.healthy and refused.last_status is None and refused.last_error
    with pytest.raises(OdooOpsError) as err:
        refused.raise_if_unhealthy("some-env")
    assert err.value.code == "HEALTH_TIMEOUT" and "some-env" in err.value.remediation
