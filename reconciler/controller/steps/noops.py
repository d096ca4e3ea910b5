"""Environments the plan leaves alone (no-ops): redeployed when they drifted, failed ones retried on request,
routes repaired (the drift rules are core/drift.py's)."""

from __future__ import annotations

from typing import Any

from reconciler.controller.steps.context import Platform
from reconciler.controller.steps.files import credentials
from reconciler.core.drift import route_drift, web_drift
from reconciler.core.model import Action, ActionKind, EnvSpec
from reconciler.platform.env_lock import is_busy


def drifted(p: Platform, noops: list[Action], specs: dict[str, EnvSpec], *, retry_failed: bool) -> list[Action]:
    """Observed state comes from the real engine: a no-op whose containers are gone is redeployed."""
    if not noops:
        return []
    running = {k: v for k, v in p.runtime.observe().items() if _ours(p, v)}
    entries = p.project.store.entries()
    _repair_routes(p, noops, running, specs)
    out = []
    for a in noops:
        key = p.project.key(a.env)  # the runtime, the locks and the secrets know it by key (docs/adr/0037)
        if is_busy(p.host.state_dir, key):
            continue  # a restore or rollback has it (its containers may be stopped on purpose)
        if entries.get(a.env, {}).get("state") == "failed":
            if retry_failed:
                out.append(Action(env=a.env, action=ActionKind.REDEPLOY, branch=a.branch, tier=a.tier,
                                  commit=a.commit, old_commit=a.commit, reason="retry of a failed deploy"))
            continue  # otherwise recorded once; retried when the branch moves, never in a loop
        web = running[key].container("web") if key in running else None
        recorded = entries.get(a.env, {}).get("credentials")
        what = web_drift(web, specs[a.env].commit, compare_commit=True)
        if what is not None:
            out.append(Action(env=a.env, action=ActionKind.REDEPLOY, branch=a.branch, tier=a.tier,
                              commit=a.commit, old_commit=a.commit,
                              reason=f"runtime drift: the web container {what}"))
        elif recorded is not None and recorded != credentials(p.secrets, key):
            out.append(Action(env=a.env, action=ActionKind.REDEPLOY, branch=a.branch, tier=a.tier,
                              commit=a.commit, old_commit=a.commit,
                              reason="secrets rotated: the role's password and odoo.conf follow"))
    return out


def _repair_routes(p: Platform, noops: list[Action], running: dict[str, Any], specs: dict[str, EnvSpec]) -> None:
    """Host ports change when dockerd restarts and Caddy forgets routes when it restarts: compare
    every running environment's route with its container and fix only what differs."""
    routes = p.router.routes()
    for a in noops:
        key = p.project.key(a.env)
        rt = running.get(key)
        upstream = rt.web_upstream if rt is not None else None
        if upstream is None:
            continue
        route = routes.get(key)
        hosts = tuple(specs[a.env]["domains"])
        ws = rt.websocket_upstream if rt is not None else None
        if route_drift(route, upstream, ws, hosts):
            p.router.set_route(key, list(hosts), upstream, ws)
            p.progress(a.env, "route", "changed", f"repaired: {hosts[0]} -> {upstream}")


def _ours(p: Platform, runtime: Any) -> bool:
    """Containers of this project (a host may run several projects)."""
    web = runtime.container("web")
    return web is None or web.project in (None, p.project.id)
