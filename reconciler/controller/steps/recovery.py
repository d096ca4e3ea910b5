"""What a failed deploy undoes: the half-made handovers, the working copy, and the previous version put back."""

from __future__ import annotations

import contextlib

from reconciler.controller.steps.context import DeployContext, Platform, pg
from reconciler.data.working_copy import WorkingCopy
from reconciler.errors import OdooOpsError


def abandon_handovers(ctx: DeployContext) -> None:
    """Route back to the containers that kept running and remove their would-be replacements."""
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    handovers, st.handovers = st.handovers, []
    for h in handovers:
        with contextlib.suppress(OdooOpsError):
            if h.old_upstream:
                p.router.set_route(spec.key, spec["domains"], h.old_upstream, h.old_websocket)
            p.runtime.abandon(h)


def drop_working_copy(ctx: DeployContext) -> None:
    """The live database and filestore back in place if the copy was swapped in; the copy dropped."""
    copy: WorkingCopy | None
    copy, ctx.state.working_copy = ctx.state.working_copy, None
    if copy is not None:
        copy.undo(pg(ctx.platform.host))


def restore_previous(ctx: DeployContext) -> None:
    """Put the last healthy version back: a failed deploy must not take the environment down."""
    p, spec, previous = ctx.platform, ctx.spec, ctx.previous
    abandon_handovers(ctx)
    drop_working_copy(ctx)  # and its data: the live database set aside by the swap returns
    old = previous.get("container_spec")
    if old and previous.get("state") == "running":
        restored = p.runtime.ensure(old)
        if restored.observed.web_upstream:
            p.router.set_route(spec.key, spec["domains"], restored.observed.web_upstream,
                               restored.observed.websocket_upstream)


def logs_of(p: Platform, container_id: str) -> str:
    with contextlib.suppress(OdooOpsError):
        return p.runtime.container_logs(container_id)
    return ""
