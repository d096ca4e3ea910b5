"""Git remotes on loopback for the daemon tests: `git daemon` and smart HTTP (`git http-backend`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx

GIT_ENV = {
    **os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
    "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.test", "GIT_TERMINAL_PROMPT": "0",
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], deadline_s: float = 60.0, what: str = "condition",
             step: float = 0.02) -> Any:
    """Poll cond until it returns something truthy; fail after deadline_s (never a fixed sleep)."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(step)

def wait_port(port: int, deadline_s: float, what: str, proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port (fail at once if `proc` exits)."""
    def up() -> bool:
        assert proc is None or proc.poll() is None, f"{what} exited with {proc.returncode if proc else None}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_for(up, deadline_s, what)


def wait_serve_ready(proc: subprocess.Popen[Any], base: str, log: Path, deadline_s: float = 120,
                     request_timeout_s: float = 2) -> None:
    """Wait until `odooops serve` at `base` answers /readyz with 200; on failure, the last answer and the log."""
    last: list[str] = []

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            answer = httpx.get(f"{base}/readyz", timeout=request_timeout_s)
        except httpx.HTTPError as exc:
            last[:] = [repr(exc)]
            return False
        last[:] = [answer.text]
        return answer.status_code == 200

    try:
        wait_for(ready, deadline_s, "serve ready", step=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last /readyz answer: {last}; log: {log.read_text()[-3000:]}") from None



@contextmanager
def git_daemon(base: Path, port: int | None = None) -> Iterator[str]:
    """Serve every repository under base over git:// on loopback; yields git://127.0.0.1:PORT."""
    port = port or free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--enable=receive-pack", "--reuseaddr", "--informative-errors",
         f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base)],
        env=GIT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 10, "git daemon", proc)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(target=self._handle, args=(request, client_address), daemon=True)
        t.start()

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)


def _read_chunked(stream: Any) -> bytes:
    out = bytearray()
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        out += stream.read(size)
        stream.readline()


def _http_backend_app(base: Path) -> Callable[..., Any]:
    """A WSGI wrapper around `git http-backend` that buffers the response to set Content-Length
    (libgit2 needs it) and allows pushes without authentication (loopback tests only)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            body = _read_chunked(environ["wsgi.input"])  # libgit2 pushes chunked; wsgiref can't
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
        cgi = {**GIT_ENV, "GIT_PROJECT_ROOT": str(base), "GIT_HTTP_EXPORT_ALL": "1",
               "REMOTE_USER": "tester", "REMOTE_ADDR": "127.0.0.1"}
        for key in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "GIT_PROTOCOL"):
            if environ.get(key):
                cgi[key] = environ[key]
        if environ.get("HTTP_GIT_PROTOCOL"):
            cgi["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]
        cgi["CONTENT_LENGTH"] = str(len(body))
        proc = subprocess.run(["git", "-c", "http.receivepack=true", "http-backend"], input=body, env=cgi,
                              capture_output=True, check=False)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name, value.strip()))
        headers.append(("Content-Length", str(len(payload))))
        start_response(status, headers)
        return [payload]

    return app


@contextmanager
def http_git_server(base: Path) -> Iterator[str]:
    """Serve every repository under base over smart HTTP on loopback; yields http://127.0.0.1:PORT."""
    server = make_server("127.0.0.1", 0, _http_backend_app(base), server_class=_ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sign_github(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def github_push(branch: str, after: str = "0" * 40) -> bytes:
    return json.dumps({"ref": f"refs/heads/{branch}", "after": after, "deleted": False}).encode()


def github_pr(number: int, action: str, head: str, updated_at: float | None = None) -> bytes:
    """A GitHub pull_request payload: the request's head commit and when it changed (now by default)."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if updated_at is None else updated_at))
    return json.dumps({"action": action, "number": number, "pull_request": {
        "number": number, "state": "closed" if action == "closed" else "open", "updated_at": when,
        "head": {"sha": head, "ref": f"topic{number}"}}}).encode()
