"""The files step: the environment's odoo.conf (and its mail catcher), written only when it changed."""

from __future__ import annotations

from reconciler.controller import files
from reconciler.controller.steps.context import DeployContext, StepResult, need, platform_values
from reconciler.core.copy_guard import UNTRUSTED_SETTING
from reconciler.core.model import digest
from reconciler.data import mail
from reconciler.render.artifacts import fill
from reconciler.secrets import SecretStore


def run(ctx: DeployContext) -> StepResult:
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    # The database password lives in odoo.conf only (0400, the container's user): the official
    # image's entrypoint would put it on Odoo's command line, where `ps` on the host shows it.
    values = {"admin_passwd": need(st.admin_passwd, "admin_passwd"), "db_password": need(st.logins, "logins").password}
    what = "odoo.conf"
    # The resolved setting decides: the top-level mail_catcher never reaches production (core.desired),
    # only an explicit tiers/environments.production entry does.
    if spec["mail_catcher"]:
        # The catcher authenticates each environment with its own password and files its mail under
        # it; it runs before the database step so a production clone can point its mail server at it.
        values["smtp_password"] = mail.register_env(p.host, p.secrets, spec.key)[1]
        address, port = mail.ensure_catcher(p.host, p.runtime, p.secrets, need(st.image, "image"),
                                            name=p.mail_catcher_name)
        if spec.settings.get(UNTRUSTED_SETTING):
            # Its internal network has no route to the host's published port: odoo.conf names the catcher
            # container, which the runtime connects to that network.
            what += f"; mail goes to the catcher {p.mail_catcher_name}:{mail.CONTAINER_PORT} on its internal network"
        else:
            what += f"; mail goes to the catcher at {address}:{port}"
    conf = fill(ctx.rendered["odoo.conf"], platform_values(ctx), values)
    changed = files.write_env_files(p.host.env_dir(spec.key), need(st.owner, "owner"), {"odoo.conf": conf})
    # Containers started before a rotation hold the old passwords: a new config replaces them.
    st.config_digest = digest(["odoo.conf", conf])
    st.credentials = credentials(p.secrets, spec.key)
    return StepResult(("changed" if changed else "ok"), what)


def credentials(secrets: SecretStore, env: str) -> str | None:
    """A digest of the env's platform secrets as stored now (None before its first deploy): a
    rotation changes it, and a no-op apply then redeploys the env with the new values."""
    stored = secrets.values(env)  # one decryption: this runs for every env of a no-op apply
    if "db_password" not in stored:
        return None
    names = [n for n in ("db_password", "admin_passwd", mail.SECRET_NAME) if n in stored]
    return digest(["credentials", env, *(stored[n] for n in names)])[:24]
