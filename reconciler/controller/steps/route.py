"""The route step: the router sends the environment's domains to its web and websocket upstreams."""

from __future__ import annotations

from reconciler.controller.steps.context import DeployContext, StepResult
from reconciler.errors import OdooOpsError


def run(ctx: DeployContext) -> StepResult:
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    if not st.upstream:
        raise OdooOpsError("RUNTIME_NO_PORT", f"the web container of {spec.name} publishes no port",
                           f"odooops logs {spec.name}")
    # HTTP and websocket upstreams switch together, in one write of the route.
    changed = p.router.set_route(spec.key, spec["domains"], st.upstream, st.websocket_upstream)
    return StepResult(("changed" if changed else "ok"), f"{spec['domains'][0]} -> {st.upstream}")
