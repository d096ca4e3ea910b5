"""Keep one Caddy route per environment through Caddy's admin API, always ahead of the 404 catch-all."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import httpx

from reconciler.errors import OdooOpsError

ROUTE_PREFIX = "odooops-"
# "--" right after the prefix: no environment name starts with "-", so no env route can clash.
CATCH_ALL_ID = "odooops--catch-all"
_UPSTREAM = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$|^\[[0-9a-fA-F:]+\]:[0-9]{1,5}$")
_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
# Odoo serves its websocket (bus) on the gevent port when it runs with workers.
WEBSOCKET_PATHS = ["/websocket", "/websocket/*"]
# The database manager (create, drop, dump, restore with the master password) stays closed on every
# environment: refused by the router whatever Odoo's list_db says.
DATABASE_MANAGER_PATHS = ["/web/database*"]
_ATTEMPTS = 8  # optimistic-concurrency retries when another writer changed the routes meanwhile


class Route(NamedTuple):
    hosts: tuple[str, ...]
    upstream: str
    websocket_upstream: str | None = None


def _fnv1a32(data: bytes) -> str:
    """Caddy's config ETag is FNV-1a/32 of the JSON it serves; If-Match needs the same hash."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


class CaddyRouter:
    """Routes `Host: <domain>` to an environment's published port; one route per env, id `odooops-<env>`."""

    def __init__(self, admin_url: str, server: str = "odooops", timeout_s: float = 5.0,
                 retry_s: float = 3.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.server = server
        self.retry_s = retry_s
        self._routes_path = f"/config/apps/http/servers/{server}/routes"
        # trust_env=False: an HTTP(S)_PROXY in the environment must never see admin traffic.
        # No keep-alive: Caddy closes admin connections whenever its config changes.
        self._http = httpx.Client(base_url=self.admin_url, timeout=timeout_s, trust_env=False,
                                  limits=httpx.Limits(max_keepalive_connections=0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CaddyRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    def set_route(self, env: str, host: str | Sequence[str], upstream: str,
                  websocket_upstream: str | None = None) -> bool:
        """Create or update the env's route; returns True when Caddy's config changed."""
        hosts = (host,) if isinstance(host, str) else tuple(host)
        _check_route(env, hosts, upstream, websocket_upstream)
        route = _route_json(env, hosts, upstream, websocket_upstream)
        attempted = False  # a write whose answer was lost may have landed: report it as a change
        for _ in range(_ATTEMPTS):
            routes, etag = self._get_routes()
            current = routes or []
            mine = [i for i, r in enumerate(current) if r.get("@id") == route["@id"]]
            if any(not current[i].get("match") for i in mine):
                raise OdooOpsError(
                    "ROUTER_ID_CLASH", f"a route without host matcher already has @id {route['@id']}",
                    f"give the router's catch-all route another @id (e.g. {CATCH_ALL_ID})",
                    {"admin_url": self.admin_url, "id": route["@id"]})
            index = mine[0] if mine else None
            catch_all = next((i for i, r in enumerate(current) if not r.get("match")), None)
            body: dict[str, Any] | list[dict[str, Any]]
            if index is not None:
                if current[index] == route:
                    return attempted
                # Replace in place: the route keeps its position ahead of the catch-all.
                method, path, body = "PATCH", f"{self._routes_path}/{index}", route
            elif catch_all is not None:
                # PUT on an array index inserts before the element that is there.
                method, path, body = "PUT", f"{self._routes_path}/{catch_all}", route
            else:
                # Without a last matcher-less route Caddy answers unknown hosts with an empty 200.
                method = "PATCH" if routes is not None else "POST"
                path, body = self._routes_path, [*current, route, _catch_all()]
            attempted = True
            if self._write(method, path, body, etag):
                return True
        raise self._conflict()

    def remove_route(self, env: str) -> bool:
        """Delete the env's route; returns False when there was none (idempotent)."""
        route_id = ROUTE_PREFIX + env
        for _ in range(_ATTEMPTS):
            routes, etag = self._get_routes()
            # Only routes with matchers are environment routes: a catch-all that happens to
            # carry an id like ours is never deleted.
            index = next((i for i, r in enumerate(routes or [])
                          if r.get("@id") == route_id and r.get("match")), None)
            if index is None:
                return False
            if self._write("DELETE", f"{self._routes_path}/{index}", None, etag):
                return True
        raise self._conflict()

    def routes(self) -> dict[str, Route]:
        """env -> Route for every route this class manages (others are ignored)."""
        out: dict[str, Route] = {}
        for r in self._get_routes()[0] or []:
            rid = r.get("@id", "")
            if rid.startswith(ROUTE_PREFIX) and r.get("match") and (parsed := _parse(r)):
                out[rid[len(ROUTE_PREFIX):]] = parsed
        return out

    def route_count(self) -> int:
        """How many routes the server has (any owner): one read that proves the admin API answers."""
        return len(self._get_routes()[0] or [])

    # ------------------------------------------------------------------ admin API plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One admin call; transport errors are retried briefly because Caddy replaces its admin
        server on every config load and drops other clients' connections meanwhile. Retrying is
        safe: reads are idempotent and every write carries If-Match."""
        delay, deadline = 0.02, time.monotonic() + self.retry_s
        while True:
            try:
                return self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if time.monotonic() + delay > deadline or isinstance(exc, httpx.TimeoutException):
                    raise self._unreachable(exc) from exc
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _unreachable(self, exc: Exception) -> OdooOpsError:
        return OdooOpsError(
            "ROUTER_UNREACHABLE", f"cannot reach the Caddy admin API at {self.admin_url}: {exc}",
            "start Caddy (bash scripts/services.sh start) or fix the router admin URL",
            {"admin_url": self.admin_url})

    def _get_routes(self) -> tuple[list[dict[str, Any]] | None, str]:
        """The server's routes (None when it has no `routes` key) and the ETag for If-Match."""
        resp = self._request("GET", self._routes_path)
        if resp.status_code == 400 and "invalid traversal path" in resp.text:
            raise OdooOpsError(
                "ROUTER_SERVER_MISSING", f"Caddy has no http server named {self.server!r}",
                "load the base router config (bash scripts/services.sh start)",
                {"admin_url": self.admin_url, "server": self.server})
        self._raise_for(resp, "read routes")
        etag = f'"{self._routes_path} {_fnv1a32(resp.content)}"'
        return json.loads(resp.content), etag

    def _write(self, method: str, path: str, body: Any, etag: str) -> bool:
        """False when another writer changed the routes since we read them (HTTP 412)."""
        kwargs: dict[str, Any] = {"headers": {"If-Match": etag}}
        if body is not None:
            kwargs["json"] = body
        resp = self._request(method, path, **kwargs)
        if resp.status_code == 412:
            return False
        self._raise_for(resp, f"{method} {path}")
        return True

    def _raise_for(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code >= 400:
            raise OdooOpsError("ROUTER_API_ERROR", f"Caddy refused to {what}: "
                               f"{resp.status_code} {resp.text.strip()[:300]}",
                               "check the Caddy log; the config it holds is unchanged",
                               {"admin_url": self.admin_url, "status": resp.status_code})

    def _conflict(self) -> OdooOpsError:
        return OdooOpsError("ROUTER_CONFLICT", "the router config kept changing while updating it",
                            "retry; if it persists, another process rewrites Caddy's routes",
                            {"admin_url": self.admin_url})


def _check_route(env: str, hosts: tuple[str, ...], upstream: str, ws: str | None) -> None:
    bad = [h for h in hosts if not _HOST.match(h) or len(h) > 253]
    bad += [u for u in (upstream, ws) if u is not None and not _UPSTREAM.match(u)]
    if not hosts or bad or not re.match(r"^[a-z0-9][a-z0-9-]{0,62}$", env):
        raise OdooOpsError("ROUTER_BAD_ROUTE", f"cannot route env {env!r}: bad host or upstream "
                           f"{bad or 'none given'}", "hosts are DNS names, upstreams host:port",
                           {"env": env, "hosts": list(hosts), "upstream": upstream})


def _proxy(upstream: str) -> dict[str, Any]:
    return {"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]}


def _refuse_database_manager() -> dict[str, Any]:
    return {"handler": "static_response", "status_code": 403,
            "body": "the database manager is closed; use odooops db backup|restore|clone\n"}


def _route_json(env: str, hosts: tuple[str, ...], upstream: str, ws: str | None) -> dict[str, Any]:
    """One route per env: the database manager refused, /websocket to the gevent port (when the env runs
    workers), everything else to the HTTP port. Both upstreams change in one write (a handover's switch)."""
    routes: list[dict[str, Any]] = [{"match": [{"path": DATABASE_MANAGER_PATHS}],
                                     "handle": [_refuse_database_manager()]}]
    if ws:
        routes.append({"match": [{"path": WEBSOCKET_PATHS}], "handle": [_proxy(ws)]})
    routes.append({"handle": [_proxy(upstream)]})
    return {"@id": ROUTE_PREFIX + env, "match": [{"host": [h.lower() for h in hosts]}],
            "handle": [{"handler": "subroute", "routes": routes}], "terminal": True}


def _catch_all() -> dict[str, Any]:
    return {"@id": CATCH_ALL_ID, "handle": [{"handler": "static_response", "status_code": 404,
                                             "body": "no environment serves this host\n"}]}


def _parse(route: dict[str, Any]) -> Route | None:
    """Read back a route this module writes; None for other shapes (an older release's route, which
    left the database manager open: it reads as missing, so it is rewritten)."""
    try:
        hosts = tuple(route["match"][0]["host"])
        sub = route["handle"][0]["routes"]
        if sub[0] != {"match": [{"path": DATABASE_MANAGER_PATHS}], "handle": [_refuse_database_manager()]}:
            return None
        ws = sub[1]["handle"][0]["upstreams"][0]["dial"] if len(sub) == 3 else None
        return Route(hosts, sub[-1]["handle"][0]["upstreams"][0]["dial"], ws)
    except (KeyError, IndexError, TypeError):
        return None
