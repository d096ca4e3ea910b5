"""Real-time through the router on real Odoo 19 with workers: a websocket handshake (101 Switching Protocols,
then a ping answered by a pong from Odoo's bus) through Caddy to the evented port of an environment the
Applier deployed, and the database manager refused (403) by the router."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from reconciler.executors.docker_runtime import DockerRuntime
from reconciler.executors.router import CaddyRouter
from tests.realodoo.platform_project import PlatformProject, explain, platform_project

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
ODOO_WS_VERSION = "19.0-2"  # bus/websocket.py WebsocketConnectionHandler._VERSION
CONFIG = """\
version: 1
odoo:
  version: "19.0"
modules: [bus]
mail_catcher: false
tiers:
  staging:
    workers: 2
    cron_workers: 1
    data: {source: fresh, neutralize: false, mask: false}
"""


class Handshake:
    """One raw HTTP/1.1 Upgrade request on a socket: the status, headers and the socket for frames."""

    def __init__(self, address: str, host: str, timeout: float = 60) -> None:
        parts = urlsplit(address if "://" in address else f"http://{address}")
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self.key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /websocket?version={ODOO_WS_VERSION} HTTP/1.1\r\nHost: {host}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Origin: http://{host}\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        text, _, self.rest = head.partition(b"\r\n\r\n")
        lines = text.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}

    @property
    def expected_accept(self) -> str:
        return base64.b64encode(hashlib.sha1((self.key + WS_GUID).encode()).digest()).decode()

    def _recv(self, n: int) -> bytes:
        out = self.rest[:n]
        self.rest = self.rest[n:]
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise AssertionError("the websocket closed")
            out += chunk
        return out

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def recv(self) -> tuple[int, bytes]:
        first, second = self._recv(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._recv(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._recv(8))[0]
        return first & 0x0F, self._recv(length)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def deployed(tmp_path: Path, services_env: dict[str, str], odoo_image: str) -> Iterator[tuple[PlatformProject, str]]:
    with platform_project(tmp_path, services_env, odoo_image, {".odooops.yaml": CONFIG}, production=False) as p:
        branch = f"release/ws-{p.tag}"
        p.commit(branch, {"README": "staging\n"}, "staging")
        report = p.apply(branch)
        assert report.ok, explain(report)
        [rep] = report.environments
        yield p, rep.env


def test_websocket_through_the_router_reaches_odoos_evented_port(deployed: tuple[PlatformProject, str]) -> None:
    p, env = deployed
    assert p.entry(env)["settings"]["workers"] == 2
    host = p.domain(env)
    runtime = DockerRuntime(p.host.docker_host)
    observed = runtime.observe_env(env)
    assert observed.web_upstream and observed.websocket_upstream
    assert observed.websocket_upstream != observed.web_upstream  # the evented port, published on its own
    with CaddyRouter(p.host.caddy_admin, server=p.host.caddy_server) as router:
        route = router.routes()[env]
    assert (route.upstream, route.websocket_upstream) == (observed.web_upstream, observed.websocket_upstream)

    # Through the router: Odoo's bus accepts the upgrade and answers a ping.
    ws = Handshake(p.host.router_http, host)
    try:
        assert ws.status == 101, (ws.status, ws.headers, ws.rest[:500])
        assert ws.headers.get("upgrade", "").lower() == "websocket"
        assert ws.headers.get("sec-websocket-accept") == ws.expected_accept
        ws.send(0x9, b"odooops")
        opcode, payload = ws.recv()
        while opcode == 0x9:  # Odoo's own keep-alive ping first: answer it and read on
            ws.send(0xA, payload)
            opcode, payload = ws.recv()
        assert (opcode, payload) == (0xA, b"odooops")
    finally:
        ws.close()

    # What the issue saw: on the HTTP port a server with workers cannot bind the websocket (500).
    direct = Handshake(observed.web_upstream, host)
    try:
        assert direct.status == 500, (direct.status, direct.headers)
    finally:
        direct.close()

    # The database manager is closed at the router, whatever the path's case.
    for path in ("/web/database/manager", "/web/database/selector", "/Web/Database/Manager"):
        resp = httpx.get(f"{p.host.router_http}{path}", headers={"Host": host}, timeout=60)
        assert resp.status_code == 403, (path, resp.status_code, resp.text[:300])
    # ... and Odoo itself still serves the rest through the same route.
    assert httpx.get(f"{p.host.router_http}/web/login", headers={"Host": host}, timeout=60).status_code == 200
