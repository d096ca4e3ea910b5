"""The route step: the router sends the environment's domains to its web and websocket upstreams."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.controller.steps.context import DeployContext, StepResult
from reconciler.errors import OdooOpsError
from reconciler.executors.router import ROUTE_PREFIX, Route


def claimed_hosts(routes: Mapping[str, Route], key: str, hosts: Iterable[str]) -> dict[str, str]:
    """The host names of `hosts` another environment's route (any project's: the router is shared, and its
    routes are the installation's record of who serves which name) already matches, each with its key."""
    wanted = {h.lower() for h in hosts}
    return {h: other for other, route in sorted(routes.items()) if other != key for h in route.hosts
            if h.lower() in wanted}


def run(ctx: DeployContext) -> StepResult:
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    if not st.upstream:
        raise OdooOpsError("RUNTIME_NO_PORT", f"the web container of {spec.name} publishes no port",
                           f"odooops logs {spec.name}")
    claimed = claimed_hosts(p.router.routes(), spec.key, spec["domains"])
    if claimed:
        host, other = next(iter(claimed.items()))
        raise OdooOpsError(
            "HOST_NAME_CLAIMED",
            f"{spec.name} asks for the host name {host}, which the router already sends to environment {other} "
            f"(route {ROUTE_PREFIX}{other}, of this or another project); two routes for one host name would "
            "take each other's requests",
            f"change `domains` of {spec.name} in .odooops.yaml of {spec.branch}, or destroy {other} first; "
            "nothing of the other environment was touched",
            {"env": spec.name, "hosts": sorted(claimed), "claimed_by": sorted(set(claimed.values()))})
    # HTTP and websocket upstreams switch together, in one write of the route.
    changed = p.router.set_route(spec.key, spec["domains"], st.upstream, st.websocket_upstream)
    return StepResult(("changed" if changed else "ok"), f"{spec['domains'][0]} -> {st.upstream}")
