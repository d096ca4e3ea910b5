"""The health step: /web/health through the router (and the websocket port); healthy, the old version retires."""

from __future__ import annotations

import contextlib

from reconciler.controller.steps.context import DeployContext, StepFailed, StepResult, pg
from reconciler.controller.steps.infra import retire_login
from reconciler.controller.steps.recovery import logs_of, restore_previous
from reconciler.data.working_copy import WorkingCopy
from reconciler.errors import OdooOpsError
from reconciler.executors.health import wait_healthy


def health_timeout(ctx: DeployContext) -> float:
    return float(ctx.platform.project.policy.gates.get(str(ctx.spec.tier), {}).get("health_timeout", 120))


def run(ctx: DeployContext) -> StepResult:
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    result = wait_healthy(p.host.router_http, host_header=spec["domains"][0],
                          timeout_s=health_timeout(ctx))
    if result.healthy and st.websocket_upstream:
        # Real-time too: the evented process (it serves /web/health as well) answers on its port.
        result = wait_healthy(f"http://{st.websocket_upstream}", timeout_s=health_timeout(ctx))
    if result.healthy:
        retired, st.handovers = st.handovers, []
        for h in retired:
            p.runtime.promote(h)
        copy: WorkingCopy | None
        copy, st.working_copy = st.working_copy, None
        if copy is not None:
            copy.finish(pg(p.host))  # the set-aside live data goes once the new version is healthy
        return StepResult("ok", f"/web/health passed after {result.elapsed_s:.1f}s" + (
            f"; {len(retired)} old container retired" if retired else "") + retire_login(ctx))
    # The failing version's logs, read before it is removed.
    pending = st.handovers or []
    logs = "".join(logs_of(p, h.new_id) for h in pending)
    if not pending:
        with contextlib.suppress(OdooOpsError):
            logs = p.runtime.logs(spec.key)
    restore_previous(ctx)
    try:
        result.raise_if_unhealthy(spec.name)
    except OdooOpsError as exc:
        raise StepFailed(exc, logs) from exc
    return StepResult("ok", "")
