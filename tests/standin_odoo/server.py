"""HTTP service (/web/health and a few entry points) and the cron loop of the stand-in server."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import psycopg2

from . import RELEASE_DESCRIPTION, SERIES, VERSION_INFO, logger
from .db import connect, list_dbs

_log = logger("odoo.service.server")
_wlog = logger("werkzeug")
CRON_POLL_SECONDS = 10.0


class _Handler(BaseHTTPRequestHandler):
    server_version = "Werkzeug/3.0.1"
    sys_version = "Python/3"
    protocol_version = "HTTP/1.1"
    conf: ClassVar[dict[str, Any]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        _wlog.info('%s - - "%s" %s', self.client_address[0], self.requestline,
                   args[1] if len(args) > 1 else "-")

    def _send(self, status: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(303, b"", "text/html; charset=utf-8", {"Location": location})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        path = url.path
        if path in ("/web/health", "/odoo/health"):
            self._health(query)
        elif path == "/":
            self._redirect("/odoo")
        elif path == "/odoo" or path.startswith("/odoo/") or path == "/web":
            self._redirect("/web/login?redirect=" + quote(self.path, safe=""))
        elif path == "/web/login":
            self._login_page()
        else:
            self._send(404, b"<h1>Not Found</h1>", "text/html; charset=utf-8")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if urlsplit(self.path).path == "/web/webclient/version_info":
            try:
                req_id = json.loads(raw or b"{}").get("id")
            except ValueError:
                req_id = None
            result = {"server_version": SERIES, "server_version_info": list(VERSION_INFO),
                      "server_serie": SERIES, "protocol_version": 1}
            body = json.dumps({"jsonrpc": "2.0", "id": req_id, "result": result}).encode()
            self._send(200, body, "application/json")
        else:
            self._send(404, b"<h1>Not Found</h1>", "text/html; charset=utf-8")

    def _health(self, query: dict[str, list[str]]) -> None:
        # Same JSON, status and headers as odoo/addons/web/controllers/home.py:health.
        info: dict[str, Any] = {"status": "pass"}
        status = 200
        if any(query.get("db_server_status", [])):
            try:
                connect(self.conf, "postgres", timeout=5).close()
                info["db_server_status"] = True
            except psycopg2.Error:
                info["db_server_status"] = False
                info["status"] = "fail"
                status = 500
        self._send(status, json.dumps(info).encode(), "application/json",
                   {"Cache-Control": "no-store"})

    def _login_page(self) -> None:
        dbs = ", ".join(self.conf.get("db_name") or []) or "(selector)"
        body = (f"<!DOCTYPE html><html><head><title>Odoo</title></head><body>"
                f"<h1>{RELEASE_DESCRIPTION} stand-in</h1><p>database: {dbs}</p>"
                f"<form method='post' action='/web/login'><input name='login'/>"
                f"<input name='password' type='password'/></form></body></html>")
        self._send(200, body.encode(), "text/html; charset=utf-8")


def _cron_databases(conf: dict[str, Any]) -> list[str]:
    if conf.get("db_name"):
        return list(conf["db_name"])
    names = list_dbs(conf)
    pattern = conf.get("dbfilter") or ""
    if pattern:
        names = [n for n in names if re.match(pattern.replace("%d", ".*").replace("%h", ".*"), n)]
    return names


def _cron_tick(conf: dict[str, Any]) -> None:
    """Run due active crons: they only record lastcall/nextcall, as a no-op job would."""
    for name in _cron_databases(conf):
        try:
            conn = connect(conf, name)
        except psycopg2.Error:
            continue
        try:
            with conn, conn.cursor() as cr:
                cr.execute("SELECT to_regclass('ir_cron')")
                if cr.fetchone()[0] is None:
                    continue
                cr.execute(
                    "UPDATE ir_cron SET lastcall = now() at time zone 'UTC', "
                    "nextcall = now() at time zone 'UTC' + (interval_number || ' ' || "
                    "interval_type)::interval WHERE active AND nextcall <= now() at time zone 'UTC' "
                    "RETURNING cron_name")
                for (cron,) in cr.fetchall():
                    logger("odoo.addons.base.models.ir_cron").info(
                        "Job %r done.", cron, extra={"dbname": name})
        except psycopg2.Error as exc:
            _log.warning("cron on %s failed: %s", name, exc)
        finally:
            conn.close()


def _cron_loop(conf: dict[str, Any], stop: threading.Event) -> None:
    while not stop.is_set():
        _cron_tick(conf)
        stop.wait(CRON_POLL_SECONDS)


def serve(conf: dict[str, Any], stop: threading.Event) -> int:
    """Serve until `stop` is set (SIGTERM/SIGINT); --workers N uses threads, not processes."""
    servers: list[ThreadingHTTPServer] = []
    handler = type("Handler", (_Handler,), {"conf": conf})
    if conf["http_enable"]:
        host = conf["http_interface"] or "0.0.0.0"
        ports = [conf["http_port"]]
        if conf["workers"] > 0:
            # Prefork mode serves websockets on the gevent port; threads stand in for both.
            ports.append(conf["gevent_port"])
            _log.info("Multiprocessing of %d workers emulated by threads", conf["workers"])
        for port in ports:
            httpd = ThreadingHTTPServer((host, port), handler)
            httpd.daemon_threads = True
            servers.append(httpd)
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            _log.info("HTTP service (werkzeug) running on %s:%s", host, port)
    else:
        _log.info("HTTP service disabled (--no-http)")
    if conf["max_cron_threads"] > 0:
        threading.Thread(target=_cron_loop, args=(conf, stop), daemon=True).start()
        _log.info("cron loop started (%d threads emulated by one)", conf["max_cron_threads"])
    stop.wait()
    _log.info("Initiating shutdown")
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
    return 0
