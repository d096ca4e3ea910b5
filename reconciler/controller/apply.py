"""Apply a plan on one host: per environment an idempotent sequence of steps that is safe to re-run.

create/update/redeploy: secrets -> build (artifact) -> infra (Terraform) -> files (odoo.conf, mail
catcher) -> database (production clone, template clone, install or module
update; pre-deploy backup of production) -> tests -> runtime (Docker) -> route (Caddy) -> health ->
status (state + note). The running version is only replaced after the database and tests steps passed, and is put
back when the new one fails its health gate. destroy: runtime -> route -> infra -> files -> status.
Each step is a module of controller/steps/ (`run(DeployContext) -> StepResult`); this module sequences
them, records each outcome and handles the failures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.controller import files
from reconciler.controller.planning import PlanOutcome, Project
from reconciler.controller.steps import build, database, destroy, health, infra, noops, recovery, route, status, tests
from reconciler.controller.steps import files as files_step
from reconciler.controller.steps import runtime as runtime_step
from reconciler.controller.steps import secrets as secrets_step
from reconciler.controller.steps.context import (
    DeployContext,
    EnvReport,
    Progress,
    StepFailed,
    StepParked,
    StepRecord,
    StepResult,
    pg,
)
from reconciler.core import odoo_log
from reconciler.core.model import Action, ActionKind, EnvSpec
from reconciler.data import access_sweep, mail
from reconciler.errors import OdooOpsError
from reconciler.executors.artifacts import ArtifactStore
from reconciler.executors.router import CaddyRouter
from reconciler.executors.runtime import Runtime
from reconciler.executors.runtimes import open_runtime
from reconciler.executors.terraform import PG_ADMIN_PASSWORD_ENV, TerraformRunner
from reconciler.platform.env_lock import env_lock
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore
from reconciler.sources.notes import push_notes, write_env_entry

__all__ = ["Applier", "ApplyReport", "EnvReport", "Progress", "StepRecord"]

LOCK_WAIT_S = 900.0  # an apply waits this long for a restore/clone/rollback of the same env (ENV_BUSY: retried)


@dataclass
class ApplyReport:
    plan_digest: str
    environments: list[EnvReport]
    seconds: float
    host_prepared: bool = False
    notes_pushed: bool | None = None

    @property
    def ok(self) -> bool:
        return all(e.result == "ok" for e in self.environments)

    def to_json(self) -> dict[str, Any]:
        return {"plan_digest": self.plan_digest, "ok": self.ok, "seconds": round(self.seconds, 3),
                "host_prepared": self.host_prepared, "notes_pushed": self.notes_pushed,
                "environments": [e.to_json() for e in self.environments]}


class Applier:
    """Carries out a plan against this host's Terraform, Docker, PostgreSQL and Caddy."""

    # Replace running web containers blue/green (ADR 0014); False: stop-then-start (the benchmark's baseline).
    handover = True

    def __init__(self, project: Project, host: HostSettings, progress: Progress | None = None,
                 retry_failed: bool = False, mail_catcher_name: str | None = None,
                 should_park: Callable[[], bool] | None = None) -> None:
        self.project = project
        # Asked before each deploy step (the daemon's shutdown): True stops the deploy there, undone as a
        # failed one would be but recorded as nothing, so the next start plans and runs it again.
        self.should_park = should_park or (lambda: False)
        # One catcher per host address: hosts (or tests) sharing one engine with their own port get their own.
        self.mail_catcher_name = mail_catcher_name or (
            mail.CATCHER_NAME if host.mail_catcher_port == 1025 else f"{mail.CATCHER_NAME}-{host.mail_catcher_port}")
        self.retry_failed = retry_failed
        self.host = host
        self.progress = progress or (lambda *_: None)
        self.secrets = SecretStore(host.state_dir / "secrets")
        self._runtime: Runtime | None = None
        self._router: CaddyRouter | None = None
        self._tf: TerraformRunner | None = None
        self.artifacts = ArtifactStore(host.state_dir / "artifacts")

    # Executors connect lazily: a no-op apply touches nothing but Docker's label listing.
    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = open_runtime(self.host)
        return self._runtime

    @property
    def router(self) -> CaddyRouter:
        if self._router is None:
            self._router = CaddyRouter(self.host.caddy_admin, server=self.host.caddy_server)
        return self._router

    @property
    def tf(self) -> TerraformRunner:
        if self._tf is None:
            self._tf = TerraformRunner(self.host.state_dir / "terraform", binary=self.host.terraform_binary,
                                       secret_env={PG_ADMIN_PASSWORD_ENV: self.host.pg_admin_password})
        return self._tf

    # ------------------------------------------------------------------ plan level

    def apply(self, outcome: PlanOutcome) -> ApplyReport:
        started = time.monotonic()
        plan = outcome.plan
        specs = {s.name: s for s in plan.environments}
        todo = [a for a in plan.actions if a.action in (ActionKind.CREATE, ActionKind.UPDATE,
                                                        ActionKind.REDEPLOY, ActionKind.DESTROY)]
        todo += noops.drifted(self, [a for a in plan.actions if a.action is ActionKind.NOOP], specs,
                              retry_failed=self.retry_failed)
        report = ApplyReport(plan.plan_digest, [], 0.0)
        if todo:
            # A host that cannot be prepared fails the whole apply before anything is touched.
            report.host_prepared = files.prepare_host_once(self.host, self.progress)
            self._sweep_database_access()
        for action in todo:
            if action.action is not ActionKind.DESTROY and self.should_park():
                report.environments.append(EnvReport(action.env, str(action.action), action.branch, action.commit,
                                                     result="parked"))
                continue
            # One operation per environment across processes: a restore, clone or rollback of this
            # environment finishes before its apply starts (and a rollback's own apply re-enters).
            with env_lock(self.host.state_dir, self.project.key(action.env), f"apply ({action.action})",
                          wait_s=LOCK_WAIT_S):
                if action.action is ActionKind.DESTROY:
                    report.environments.append(self._destroy(action))
                else:
                    report.environments.append(self._deploy(specs[action.env], action,
                                                            outcome.artifacts[action.env]))
        noted = self._note_blocked([a for a in plan.actions if a.action is ActionKind.BLOCKED])
        if (report.environments or noted) and self.project.source.is_mirror:
            report.notes_pushed = self._push_notes()
        report.seconds = time.monotonic() - started
        return report

    def _sweep_database_access(self) -> None:
        """Before anything deploys: no database of this project's environments (nor any oo_* copy) may be
        reachable by a role other than its own (data.access_sweep repairs it; one catalogue query when
        nothing is wrong). A sweep that cannot run is reported and leaves the deploys to fail on their own."""
        try:
            report = access_sweep.sweep(pg(self.host), {self.project.key(e) for e in self.project.store.entries()})
        except OdooOpsError as exc:
            self.progress("host", "database access", "failed", exc.message)
            return
        for db, problems in sorted(report.repaired.items()):
            self.progress("host", "database access", "changed", f"{db} was reachable beyond its own role "
                          f"({'; '.join(problems)}): repaired")
        for db, why in sorted(report.failed.items()):
            self.progress("host", "database access", "failed", f"{db}: {why}")

    def _note_blocked(self, blocked: list[Action]) -> bool:
        """Tell the repository why an environment was not created (quota, limits) on its commit.

        The entry is deterministic (no time stamp), so an unchanged block writes nothing again."""
        running = self.project.store.entries()
        wrote = False
        for a in blocked:
            if a.commit is None or running.get(a.env, {}).get("state") == "running":
                continue
            entry = {"schema": "odooops/status-entry/v1", "env": a.env, "branch": a.branch, "tier": a.tier,
                     "commit": a.commit, "spec_digest": "", "state": "blocked", "reason": a.reason,
                     "remediation": a.remediation or "", "updated_at": 0}
            try:
                wrote |= write_env_entry(self.project.source.repo, a.commit, a.env, entry,
                                         ref=self.project.source.notes_ref)
            except OdooOpsError as exc:
                self.progress(a.env, "note", "failed", exc.message)
        return wrote

    def _push_notes(self) -> bool:
        try:
            push_notes(self.project.source.repo, self.project.location, ref=self.project.source.notes_ref)
            return True
        except OdooOpsError as exc:
            # Notes stay in the mirror and are merged and pushed by the next apply.
            self.progress("-", "notes", "failed", exc.message)
            return False

    # ------------------------------------------------------------------ one environment

    def _run(self, report: EnvReport, name: str, fn: Callable[[], StepResult], may_park: bool = True) -> None:
        if may_park and report.action != "destroy" and self.should_park():
            raise StepParked(name)
        self.progress(report.env, name, "start", "")
        t0 = time.monotonic()
        try:
            step = fn()
        except StepFailed as failed:
            report.steps.append(StepRecord(name, "failed", time.monotonic() - t0, failed.error.message))
            self.progress(report.env, name, "failed", failed.error.message)
            raise
        except OdooOpsError as exc:
            report.steps.append(StepRecord(name, "failed", time.monotonic() - t0, exc.message))
            self.progress(report.env, name, "failed", exc.message)
            raise StepFailed(exc) from exc
        report.steps.append(StepRecord(name, step.status, time.monotonic() - t0, step.detail))
        self.progress(report.env, name, step.status, step.detail)

    def _deploy(self, spec: EnvSpec, action: Action, rendered: dict[str, str]) -> EnvReport:
        report = EnvReport(spec.name, str(action.action), spec.branch, spec.commit)
        previous = self.project.store.entries().get(spec.name, {})
        ctx = DeployContext(platform=self, spec=spec, previous=previous, rendered=rendered, report=report)
        try:
            self._run(report, "secrets", lambda: secrets_step.run(ctx))
            self._run(report, "build", lambda: build.run(ctx))
            self._run(report, "infra", lambda: infra.run(ctx))
            self._run(report, "files", lambda: files_step.run(ctx))
            self._run(report, "database", lambda: database.run(ctx))
            # A database step that changed the live database of a running version itself (no working
            # copy: production, tiers without tests) is past the point a shutdown may stop at: parking
            # now would leave the old code on the new schema, so the deploy runs to its end within the
            # stop grace. A new environment's fresh database has no version serving it: that one parks.
            may_park = (ctx.state.working_copy is not None or report.steps[-1].result != "changed"
                        or ctx.previous.get("state") != "running")
            if spec["run_tests"]:
                self._run(report, "tests", lambda: tests.run(ctx), may_park)
            self._run(report, "runtime", lambda: runtime_step.run(ctx), may_park)
            self._run(report, "route", lambda: route.run(ctx), may_park)
            self._run(report, "health", lambda: health.run(ctx), may_park)
        except StepParked as parked:
            # Stopped between two steps: the same undo as a failure (the previous version keeps serving),
            # but no state and no note, so the commit is still to deploy for the next start's plan.
            recovery.abandon_handovers(ctx)
            recovery.drop_working_copy(ctx)
            report.result = "parked"
            self.progress(report.env, parked.step, "parked", "the daemon is stopping; re-queued at its next start")
            return report
        except StepFailed as failed:
            recovery.abandon_handovers(ctx)  # e.g. the route step failed: the old version keeps serving
            recovery.drop_working_copy(ctx)  # a refused deploy leaves the live database as it was
            report.result = "failed"
            report.error = {**failed.error.to_dict(), "log_excerpt": odoo_log.tail(failed.log_excerpt, 2000)}
            status.record(ctx, "failed", self._note)
            return report
        report.url = f"http://{spec['domains'][0]}"
        status.record(ctx, "running", self._note)
        return report

    def test_tags(self, spec: EnvSpec) -> str | None:
        """What --test-tags gets: the project's tags, or its own addons' (`/mod_a,/mod_b`); None: all."""
        return tests.test_tags(self.project, spec)

    def host_cpus(self) -> int:
        if not hasattr(self, "_cpus"):
            self._cpus = self.runtime.cpu_count()
        return self._cpus

    # ------------------------------------------------------------------ records

    def _note(self, commit: str, env: str, entry: dict[str, Any]) -> None:
        public = {k: v for k, v in entry.items()
                  if k not in ("container_spec", "infra_digest", "credentials", "db_login")}
        public["schema"] = "odooops/status-entry/v1"
        try:
            write_env_entry(self.project.source.repo, commit, env, public, ref=self.project.source.notes_ref)
        except OdooOpsError as exc:
            self.progress(env, "note", "failed", exc.message)

    def _destroy(self, action: Action) -> EnvReport:
        report = EnvReport(action.env, "destroy", action.branch, action.old_commit)
        previous = self.project.store.entries().get(action.env, {})
        expired = "TTL" in action.reason
        key = self.project.key(action.env)
        try:
            self._run(report, "runtime", lambda: destroy.remove_runtime(self, key))
            self._run(report, "route", lambda: destroy.remove_route(self, key))
            self._run(report, "infra", lambda: destroy.destroy_infra(self, key))
            self._run(report, "files", lambda: destroy.destroy_files(self, key))
        except StepFailed as failed:
            report.result = "failed"
            report.error = failed.error.to_dict()
            self.project.store.set_state(action.env, "failed", error=report.error)
            return report
        entry = {**previous, "state": "expired" if expired else "destroyed", "updated_at": time.time(),
                 "steps": [s.to_json() for s in report.steps], "error": None}
        entry.pop("container_spec", None)
        if expired:
            self.project.store.set_state(action.env, "expired", steps=entry["steps"], container_spec=None)
        else:
            self.project.store.forget(action.env)
        if previous.get("commit"):
            self._note(previous["commit"], action.env, entry)
        return report
