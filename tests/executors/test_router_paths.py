"""Per-path routing through real Caddy: the database manager refused, /websocket to the evented port,
both upstreams switched in one write; the runtime publishes the evented port and hands it over."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from reconciler.executors.docker_runtime import DockerRuntime
from reconciler.executors.router import CaddyRouter, Route
from tests.executors.test_docker_runtime import COMMIT_A, Deploy, deploy, new_env, runtime  # noqa: F401

pytestmark = pytest.mark.integration


@contextmanager
def named_server(name: str) -> Iterator[str]:
    """A loopback HTTP server answering every path with its own name and the path it saw."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{name} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(router_http_url: str, host: str, path: str) -> httpx.Response:
    return httpx.get(f"{router_http_url}{path}", headers={"Host": host}, trust_env=False, timeout=10)


def test_database_manager_refused_and_websocket_routed(caddy_admin_url: str, router_http_url: str) -> None:
    env = new_env("paths")
    host = f"{env}.odooops.test"
    with named_server("http-a") as http_a, named_server("ws-a") as ws_a, named_server("http-b") as http_b, \
            named_server("ws-b") as ws_b, CaddyRouter(caddy_admin_url) as router:
        try:
            assert router.set_route(env, host, http_a, ws_a)
            assert router.routes()[env] == Route((host,), http_a, ws_a)
            for path in ("/web/database/manager", "/web/database/selector", "/web/database/list",
                         "/web/database", "/WEB/Database/manager"):
                resp = _get(router_http_url, host, path)
                assert resp.status_code == 403, (path, resp.status_code, resp.text)
                assert "database manager is closed" in resp.text
            assert _get(router_http_url, host, "/websocket").text == "ws-a /websocket"
            assert _get(router_http_url, host, "/websocket/health").text == "ws-a /websocket/health"
            assert _get(router_http_url, host, "/web/login").text == "http-a /web/login"
            assert _get(router_http_url, host, "/websocketx").text == "http-a /websocketx"
            # A handover: both upstreams move in one write.
            assert router.set_route(env, host, http_b, ws_b)
            assert router.routes()[env] == Route((host,), http_b, ws_b)
            assert _get(router_http_url, host, "/websocket").text == "ws-b /websocket"
            assert _get(router_http_url, host, "/web").text == "http-b /web"
            # Without an evented port (a threaded server) everything but the manager goes to HTTP.
            assert router.set_route(env, host, http_a)
            assert router.routes()[env] == Route((host,), http_a, None)
            assert _get(router_http_url, host, "/websocket").text == "http-a /websocket"
            assert _get(router_http_url, host, "/web/database/manager").status_code == 403
        finally:
            router.remove_route(env)


def test_an_older_route_without_the_refusal_reads_as_missing(caddy_admin_url: str, router_http_url: str) -> None:
    env = new_env("old")
    host = f"{env}.odooops.test"
    with named_server("http") as upstream, CaddyRouter(caddy_admin_url) as router:
        try:
            assert router.set_route(env, host, upstream)
            # Replaced by its @id, not by its index in the list: other tests add and remove their
            # routes on the same router meanwhile, so an index read a moment ago may name theirs.
            old = {"@id": f"odooops-{env}", "match": [{"host": [host]}], "terminal": True,
                   "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]}]}
            httpx.patch(f"{caddy_admin_url}/id/odooops-{env}", json=old, trust_env=False).raise_for_status()
            assert _get(router_http_url, host, "/web/database/manager").status_code == 200  # the old shape
            assert env not in router.routes()  # so apply's route repair rewrites it
            assert router.set_route(env, host, upstream) is True
            assert _get(router_http_url, host, "/web/database/manager").status_code == 403
        finally:
            router.remove_route(env)


def test_runtime_publishes_the_evented_port_and_hands_it_over(runtime: DockerRuntime,  # noqa: F811
                                                              deploy: Deploy) -> None:  # noqa: F811
    env = new_env("ws")
    try:
        spec = deploy.spec(env, roles=("web",))
        spec["containers"][0].update(gevent_port=8072, command=["odoo", "--workers=2", "--max-cron-threads=0"])
        first = runtime.ensure(spec).observed
        web = first.container("web")
        assert web is not None and web.http_host_port and web.gevent_host_port
        assert web.gevent_host_port != web.http_host_port
        assert first.websocket_upstream == f"127.0.0.1:{web.gevent_host_port}"
        spec["labels"]["odooops.commit"] = "b" * 40 if COMMIT_A != "b" * 40 else "c" * 40
        result = runtime.ensure(spec, handover=True)
        [h] = result.handovers
        assert h.old_websocket == first.websocket_upstream and h.old_upstream == first.web_upstream
        assert h.new_websocket and h.new_upstream and h.new_websocket not in (h.old_websocket, h.new_upstream)
        runtime.promote(h)
        assert runtime.observe_env(env).websocket_upstream == h.new_websocket
    finally:
        runtime.remove(env)
