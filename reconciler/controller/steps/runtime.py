"""The runtime step: the environment's containers started (blue/green beside the serving ones) and checked."""

from __future__ import annotations

from reconciler.controller.steps.context import DeployContext, StepFailed, StepResult, need, pg
from reconciler.controller.steps.health import health_timeout
from reconciler.controller.steps.recovery import logs_of, restore_previous
from reconciler.data.working_copy import WorkingCopy
from reconciler.errors import OdooOpsError
from reconciler.executors.health import wait_healthy


def swap_in_working_copy(ctx: DeployContext) -> str:
    """A copy the update changed and the tests passed takes the live name as the new version starts;
    one only tested (nothing to update) is dropped and the live database stays."""
    copy: WorkingCopy | None = ctx.state.working_copy
    if copy is None:
        return ""
    if not copy.changed:
        ctx.state.working_copy = None
        copy.discard(pg(ctx.platform.host))
        return ""
    copy.swap(pg(ctx.platform.host))
    return f"; working copy {copy.db} swapped in ({copy.timings.get('swap', 0):.2f}s), the live data set aside"


def run(ctx: DeployContext) -> StepResult:
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    # A running web container keeps serving while its replacement starts beside it (blue/green):
    # the route moves only once the new one passes /web/health on its own port.
    swapped = swap_in_working_copy(ctx)
    result = p.runtime.ensure(need(st.container_spec, "container_spec"), handover=p.handover)
    st.handovers = list(result.handovers)
    st.upstream = result.observed.web_upstream
    st.websocket_upstream = result.observed.websocket_upstream
    for h in result.handovers:
        if not h.new_upstream:
            raise OdooOpsError("RUNTIME_NO_PORT", f"the new web container of {spec.name} publishes no port",
                               f"odooops logs {spec.name}")
        # The evented (websocket) port too: Odoo starts that process a moment after the HTTP workers,
        # and the route switches both at once.
        for upstream in filter(None, (h.new_upstream, h.new_websocket)):
            health = wait_healthy(f"http://{upstream}", timeout_s=health_timeout(ctx))
            if not health.healthy:
                logs = logs_of(p, h.new_id)
                restore_previous(ctx)
                try:
                    health.raise_if_unhealthy(spec.name)
                except OdooOpsError as exc:
                    exc.remediation += "; the previous version kept serving"
                    raise StepFailed(exc, logs) from exc
        st.upstream, st.websocket_upstream = h.new_upstream, h.new_websocket
    capped = "; " + "; ".join(st.notes) if st.notes else ""
    capped += swapped
    if result.handovers:
        capped = f"; {len(result.handovers)} started beside the serving one (no downtime){capped}"
    if result.changed:
        return StepResult("changed", f"created {len(result.created)}, replaced {len(result.replaced)}{capped}")
    return StepResult("ok", f"containers already match (no restart){capped}")
