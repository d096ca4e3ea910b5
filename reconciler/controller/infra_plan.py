"""Terraform's own view of a plan: `terraform plan` + `show -json` per environment that would change."""

from __future__ import annotations

import json
from typing import Any

from reconciler.controller.credentials import db_logins
from reconciler.controller.planning import PlanOutcome, Project
from reconciler.core.model import ActionKind
from reconciler.errors import OdooOpsError
from reconciler.executors.runtime import ODOO_USER
from reconciler.executors.terraform import PG_ADMIN_PASSWORD_ENV, TerraformRunner
from reconciler.platform.host import HostSettings
from reconciler.render.artifacts import fill
from reconciler.secrets import SecretStore

_PLAN_ONLY_PASSWORD = "plan-only-placeholder-never-applied"


def _owner(host: HostSettings) -> str:
    return ODOO_USER  # what apply owns an environment's files by (controller.files.image_owner)


def terraform_summaries(project: Project, host: HostSettings, outcome: PlanOutcome) -> dict[str, dict[str, Any]]:
    """env -> {"add", "change", "destroy", "resources"} (or {"error": ...}) for create/update actions.

    Writes only under the state directory (the environment's Terraform root); touches no resource.
    """
    runner = TerraformRunner(host.state_dir / "terraform", binary=host.terraform_binary,
                             secret_env={PG_ADMIN_PASSWORD_ENV: host.pg_admin_password})
    secrets = SecretStore(host.state_dir / "secrets")
    out: dict[str, dict[str, Any]] = {}
    entries = project.store.entries()
    for action in outcome.plan.actions:
        if action.action not in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.REDEPLOY):
            continue
        key = project.key(action.env)
        logins = db_logins(secrets, key, entries.get(action.env, {}), placeholder=_PLAN_ONLY_PASSWORD)
        platform = host.platform_values(key, "0" * 64, host.state_dir / "artifacts", _owner(host), project.id,
                                        db_login=logins.active)
        root = json.loads(fill(outcome.artifacts[action.env]["main.tf.json"], platform))
        try:
            runner.write_root(key, root, logins.terraform_vars())
            out[action.env] = runner.plan(key).summary()
        except OdooOpsError as exc:
            out[action.env] = {"error": exc.to_dict()}
    return out
