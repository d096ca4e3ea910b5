"""The secrets step: the environment's database logins and admin password, from the encrypted store."""

from __future__ import annotations

from reconciler.controller.credentials import DbLogins, db_logins
from reconciler.controller.steps.context import DeployContext, StepResult


def run(ctx: DeployContext) -> StepResult:
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    logins: DbLogins = db_logins(p.secrets, spec.key, ctx.previous)
    st.logins = logins
    st.admin_passwd = p.secrets.get_or_create(spec.key, "admin_passwd")
    if logins.retiring:
        return StepResult("changed", (f"rotated: the new version logs in as {logins.active}, the running one keeps "
                                      f"{logins.retiring} until it is replaced"))
    return StepResult("ok", f"db and admin passwords in the encrypted store; login {logins.active}")
