"""The infra step: the environment's Terraform root (database, role, filestore), applied when it changed."""

from __future__ import annotations

import json
from typing import Any

from reconciler.controller.credentials import PREVIOUS, DbLogins
from reconciler.controller.steps.context import DeployContext, Platform, StepResult, need, platform_values
from reconciler.core.model import digest
from reconciler.executors.terraform import render_backend
from reconciler.render.artifacts import fill


def run(ctx: DeployContext) -> StepResult:
    p, spec, st, previous = ctx.platform, ctx.spec, ctx.state, ctx.previous
    root = json.loads(fill(ctx.rendered["main.tf.json"], platform_values(ctx)))
    if p.host.tf_backend is not None:
        root["terraform"]["backend"] = render_backend(spec.key, dict(p.host.tf_backend))
    st.tf_root = root
    variables = need(st.logins, "logins").terraform_vars()
    infra_digest = write_root(p, spec.key, root, variables)
    st.infra_digest = infra_digest
    if previous.get("infra_digest") == infra_digest and p.tf.has_state(spec.key):
        return StepResult("ok", "database, role and filestore unchanged")
    result = p.tf.apply(spec.key)
    return StepResult("changed", f"terraform apply ({getattr(result, 'duration_s', 0):.1f}s)")


def write_root(p: Platform, env: str, root: dict[str, Any], variables: dict[str, str | None]) -> str:
    p.tf.write_root(env, root, variables)
    return digest([root, digest(sorted((k, v) for k, v in variables.items() if v is not None))])


def retire_login(ctx: DeployContext) -> str:
    """After the handover: the previous login can no longer log in and its password is gone."""
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    logins: DbLogins = need(st.logins, "logins")
    if p.secrets.get(spec.key, PREVIOUS) is None:
        return ""
    if logins.retiring:
        st.infra_digest = write_root(p, spec.key, need(st.tf_root, "tf_root"), logins.terraform_vars(retired=True))
        p.tf.apply(spec.key)
    p.secrets.discard(spec.key, PREVIOUS)
    return f"; login {logins.retiring} disabled" if logins.retiring else ""
