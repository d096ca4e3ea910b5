"""Drift rules: what makes a running environment differ from what was deployed (pure; apply and the sweep use them)."""

from __future__ import annotations

from typing import Protocol


class WebContainer(Protocol):
    """What the rules read of the web container the engine reports."""

    @property
    def state(self) -> str: ...
    @property
    def commit(self) -> str | None: ...
    @property
    def running(self) -> bool: ...


class RouteEntry(Protocol):
    """What the rules read of the route the router reports."""

    @property
    def hosts(self) -> tuple[str, ...]: ...
    @property
    def upstream(self) -> str: ...
    @property
    def websocket_upstream(self) -> str | None: ...


def web_drift(web: WebContainer | None, commit: str | None = None, *, compare_commit: bool = False) -> str | None:
    """Why the web container differs ("is missing", "is exited", "runs another commit"), or None.

    The commit is compared only with compare_commit (apply knows the planned commit; the sweep does not
    compare it: a new commit reaches the sweep as a plan change, not as drift)."""
    if web is None:
        return "is missing"
    if not web.running:
        return f"is {web.state}"
    if compare_commit and web.commit != commit:
        return "runs another commit"
    return None


def route_drift(route: RouteEntry | None, upstream: str | None, websocket_upstream: str | None,
                hosts: tuple[str, ...] | None = None) -> bool:
    """True when the route is missing or points elsewhere than the containers' upstreams (and, when
    hosts are given, serves other host names)."""
    if route is None:
        return True
    if (route.upstream, route.websocket_upstream) != (upstream, websocket_upstream):
        return True
    return hosts is not None and tuple(route.hosts) != hosts
