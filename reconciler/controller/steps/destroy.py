"""The steps of a destroy: runtime, route, infra and files removed (the applier records them)."""

from __future__ import annotations

import shutil

from reconciler.controller.steps.context import Platform, StepResult
from reconciler.data import mail


def remove_runtime(p: Platform, env: str) -> StepResult:
    removed = p.runtime.remove(env)
    return StepResult("changed", f"removed {len(removed.containers)} containers, {len(removed.networks)} networks")


def remove_route(p: Platform, env: str) -> StepResult:
    return StepResult("changed" if p.router.remove_route(env) else "ok", "")


def destroy_infra(p: Platform, env: str) -> StepResult:
    if not (p.tf.root / env / "main.tf.json").exists():
        return StepResult("ok", "no terraform root")
    p.tf.destroy(env)
    shutil.rmtree(p.tf.root / env, ignore_errors=True)
    return StepResult("changed", "database, role and filestore dropped")


def destroy_files(p: Platform, env: str) -> StepResult:
    shutil.rmtree(p.host.env_dir(env), ignore_errors=True)
    mail.drop_mailbox(p.host, env)
    p.secrets.drop(env)
    return StepResult("changed", "config, captured mail and secrets removed")
