"""Apply a plan on one host: per environment an idempotent sequence of steps that is safe to re-run.

create/update/redeploy: secrets -> build (artifact) -> infra (Terraform) -> files (odoo.conf, mail
catcher) -> database (controller/steps/database.py: production clone, template clone, install or module
update; pre-deploy backup of production) -> tests -> runtime (Docker) -> route (Caddy) -> health ->
status (state + note). The running version is only replaced after the database and tests steps passed, and is put
back when the new one fails its health gate. destroy: runtime -> route -> infra -> files -> status.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from reconciler.controller import files
from reconciler.controller.credentials import PREVIOUS, DbLogins, db_logins
from reconciler.controller.modules import effective_test_tags, repo_modules
from reconciler.controller.planning import PlanOutcome, Project
from reconciler.controller.steps.database import DatabaseStep, StepFailed
from reconciler.core import odoo_log
from reconciler.core.drift import route_drift, web_drift
from reconciler.core.model import Action, ActionKind, EnvSpec, digest
from reconciler.data import access_sweep, mail
from reconciler.data.odoo_cli import run_tests_command
from reconciler.data.working_copy import WorkingCopy
from reconciler.errors import OdooOpsError
from reconciler.executors.artifacts import Artifact, ArtifactInputs, ArtifactStore, export_tree
from reconciler.executors.health import wait_healthy
from reconciler.executors.postgres import Postgres
from reconciler.executors.router import CaddyRouter
from reconciler.executors.runtime import Runtime
from reconciler.executors.runtimes import open_runtime
from reconciler.executors.terraform import PG_ADMIN_PASSWORD_ENV, TerraformRunner, render_backend
from reconciler.platform.env_lock import env_lock, is_busy
from reconciler.platform.host import HostSettings
from reconciler.render.artifacts import fill
from reconciler.secrets import SecretStore
from reconciler.sources.notes import push_notes, write_env_entry

Progress = Callable[[str, str, str, str], None]  # env, step, status (start|ok|changed|skipped|failed), detail
SIGNATURE = ("OdooOps", "odooops@localhost")
LOCK_WAIT_S = 900.0  # an apply waits this long for a restore/clone/rollback of the same env (ENV_BUSY: retried)


@dataclass
class StepRecord:
    name: str
    result: str
    seconds: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "result": self.result, "seconds": round(self.seconds, 3), "detail": self.detail}


@dataclass
class EnvReport:
    env: str
    action: str
    branch: str
    commit: str | None
    result: str = "ok"  # ok | failed
    url: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    error: dict[str, Any] | None = None
    tests: dict[str, Any] | None = None
    modules: dict[str, list[str]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "action": self.action, "branch": self.branch, "commit": self.commit,
                "result": self.result, "url": self.url, "steps": [s.to_json() for s in self.steps],
                "error": self.error, "tests": self.tests, "modules": self.modules}


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
                 retry_failed: bool = False, mail_catcher_name: str | None = None) -> None:
        self.project = project
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
        todo += self._drifted([a for a in plan.actions if a.action is ActionKind.NOOP], specs)
        report = ApplyReport(plan.plan_digest, [], 0.0)
        if todo:
            # A host that cannot be prepared fails the whole apply before anything is touched.
            report.host_prepared = files.prepare_host_once(self.host, self.progress)
            self._sweep_database_access()
        for action in todo:
            # One operation per environment across processes: a restore, clone or rollback of this
            # environment finishes before its apply starts (and a rollback's own apply re-enters).
            with env_lock(self.host.state_dir, action.env, f"apply ({action.action})", wait_s=LOCK_WAIT_S):
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
            report = access_sweep.sweep(self._pg(), set(self.project.store.entries()))
        except OdooOpsError as exc:
            self.progress("host", "database access", "failed", exc.message)
            return
        for db, problems in sorted(report.repaired.items()):
            self.progress("host", "database access", "changed", f"{db} was reachable beyond its own role "
                          f"({'; '.join(problems)}): repaired")
        for db, why in sorted(report.failed.items()):
            self.progress("host", "database access", "failed", f"{db}: {why}")

    def _drifted(self, noops: list[Action], specs: dict[str, EnvSpec]) -> list[Action]:
        """Observed state comes from the real engine: a no-op whose containers are gone is redeployed."""
        if not noops:
            return []
        running = {k: v for k, v in self.runtime.observe().items() if self._ours(v)}
        entries = self.project.store.entries()
        self._repair_routes(noops, running, specs)
        out = []
        for a in noops:
            if is_busy(self.host.state_dir, a.env):
                continue  # a restore or rollback has it (its containers may be stopped on purpose)
            if entries.get(a.env, {}).get("state") == "failed":
                if self.retry_failed:
                    out.append(Action(env=a.env, action=ActionKind.REDEPLOY, branch=a.branch, tier=a.tier,
                                      commit=a.commit, old_commit=a.commit, reason="retry of a failed deploy"))
                continue  # otherwise recorded once; retried when the branch moves, never in a loop
            web = running[a.env].container("web") if a.env in running else None
            recorded = entries.get(a.env, {}).get("credentials")
            what = web_drift(web, specs[a.env].commit, compare_commit=True)
            if what is not None:
                out.append(Action(env=a.env, action=ActionKind.REDEPLOY, branch=a.branch, tier=a.tier,
                                  commit=a.commit, old_commit=a.commit,
                                  reason=f"runtime drift: the web container {what}"))
            elif recorded is not None and recorded != self._credentials(a.env):
                out.append(Action(env=a.env, action=ActionKind.REDEPLOY, branch=a.branch, tier=a.tier,
                                  commit=a.commit, old_commit=a.commit,
                                  reason="secrets rotated: the role's password and odoo.conf follow"))
        return out

    def _repair_routes(self, noops: list[Action], running: dict[str, Any], specs: dict[str, EnvSpec]) -> None:
        """Host ports change when dockerd restarts and Caddy forgets routes when it restarts: compare
        every running environment's route with its container and fix only what differs."""
        routes = self.router.routes()
        for a in noops:
            rt = running.get(a.env)
            upstream = rt.web_upstream if rt is not None else None
            if upstream is None:
                continue
            route = routes.get(a.env)
            hosts = tuple(specs[a.env]["domains"])
            ws = rt.websocket_upstream if rt is not None else None
            if route_drift(route, upstream, ws, hosts):
                self.router.set_route(a.env, list(hosts), upstream, ws)
                self.progress(a.env, "route", "changed", f"repaired: {hosts[0]} -> {upstream}")

    def _ours(self, runtime: Any) -> bool:
        """Containers of this project (a host may run several projects)."""
        web = runtime.container("web")
        return web is None or web.project in (None, self.project.id)

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
                                         pygit2.Signature(*SIGNATURE))
            except OdooOpsError as exc:
                self.progress(a.env, "note", "failed", exc.message)
        return wrote

    def _push_notes(self) -> bool:
        try:
            push_notes(self.project.source.repo, self.project.location)
            return True
        except OdooOpsError as exc:
            # Notes stay in the mirror and are merged and pushed by the next apply.
            self.progress("-", "notes", "failed", exc.message)
            return False

    # ------------------------------------------------------------------ one environment

    def _run(self, report: EnvReport, name: str, fn: Callable[[], tuple[str, str]]) -> None:
        self.progress(report.env, name, "start", "")
        t0 = time.monotonic()
        try:
            result, detail = fn()
        except StepFailed as failed:
            report.steps.append(StepRecord(name, "failed", time.monotonic() - t0, failed.error.message))
            self.progress(report.env, name, "failed", failed.error.message)
            raise
        except OdooOpsError as exc:
            report.steps.append(StepRecord(name, "failed", time.monotonic() - t0, exc.message))
            self.progress(report.env, name, "failed", exc.message)
            raise StepFailed(exc) from exc
        report.steps.append(StepRecord(name, result, time.monotonic() - t0, detail))
        self.progress(report.env, name, result, detail)

    def _deploy(self, spec: EnvSpec, action: Action, rendered: dict[str, str]) -> EnvReport:
        report = EnvReport(spec.name, str(action.action), spec.branch, spec.commit)
        previous = self.project.store.entries().get(spec.name, {})
        ctx: dict[str, Any] = {"rendered": rendered}
        try:
            self._run(report, "secrets", lambda: self._secrets(spec, previous, ctx))
            self._run(report, "build", lambda: self._build(spec, ctx))
            self._run(report, "infra", lambda: self._infra(spec, rendered, previous, ctx))
            self._run(report, "files", lambda: self._files(spec, rendered, ctx))
            self._run(report, "database", lambda: self._database(spec, previous, report, ctx))
            if spec["run_tests"]:
                self._run(report, "tests", lambda: self._tests(spec, report, ctx))
            self._run(report, "runtime", lambda: self._runtime_step(spec, previous, ctx))
            self._run(report, "route", lambda: self._route(spec, ctx))
            self._run(report, "health", lambda: self._health(spec, previous, ctx))
        except StepFailed as failed:
            self._abandon_handovers(spec, ctx)  # e.g. the route step failed: the old version keeps serving
            self._drop_working_copy(ctx)  # a refused deploy leaves the live database as it was
            report.result = "failed"
            report.error = {**failed.error.to_dict(), "log_excerpt": odoo_log.tail(failed.log_excerpt, 2000)}
            self._record(spec, report, "failed", previous, ctx)
            return report
        report.url = f"http://{spec['domains'][0]}"
        self._record(spec, report, "running", previous, ctx)
        return report

    def _secrets(self, spec: EnvSpec, previous: dict[str, Any], ctx: dict[str, Any]) -> tuple[str, str]:
        logins: DbLogins = db_logins(self.secrets, spec.name, previous)
        ctx["logins"] = logins
        ctx["admin_passwd"] = self.secrets.get_or_create(spec.name, "admin_passwd")
        if logins.retiring:
            return "changed", (f"rotated: the new version logs in as {logins.active}, the running one keeps "
                               f"{logins.retiring} until it is replaced")
        return "ok", f"db and admin passwords in the encrypted store; login {logins.active}"

    def _build(self, spec: EnvSpec, ctx: dict[str, Any]) -> tuple[str, str]:
        image = self.host.image_overrides.get(spec["image"], spec["image"])
        image_id = self.runtime.image_id(image)
        ctx["image"], ctx["image_id"] = image, image_id
        ctx["owner"] = files.image_owner(self.runtime, self.host, image_id)
        repo = self.project.source.repo
        addons = []
        for path in spec["addons_paths"]:
            tree = self.project.source.tree_id(spec.commit, path)
            if tree is None:
                raise OdooOpsError("ADDONS_PATH_MISSING", f"addons path {path!r} does not exist at {spec.commit[:12]}",
                                   f"create {path}/ on {spec.branch} or fix addons.paths in .odooops.yaml")
            addons.append((path.strip("/"), tree))
        external = files.pinned_external(self.host, spec["external_addons"], spec.branch)
        ctx["external"] = external
        req_blob = None
        if spec["requirements"]:
            req_blob = files.blob_id(repo, spec.commit, spec["requirements"])
        inputs = ArtifactInputs(base_image=image_id, addons=tuple(addons), external=tuple(external),
                                requirements=req_blob)

        def materialize(bundle: Path) -> None:
            for path, tree in addons:
                export_tree(repo, tree, bundle / "repo" / path)
            for name, url, commit in external:
                files.export_external(self.host, name, url, commit, bundle / "external" / name)

        artifact: Artifact = self.artifacts.ensure(inputs, materialize)
        ctx["artifact"] = artifact
        return ("changed" if artifact.created else "ok"), f"artifact {artifact.id[:12]}" + (
            " built" if artifact.created else " reused")

    def _platform(self, spec: EnvSpec, ctx: dict[str, Any]) -> dict[str, str]:
        art: Artifact = ctx["artifact"]
        values = self.host.platform_values(spec.name, art.id, art.path, ctx["owner"], self.project.id,
                                           db_login=ctx["logins"].active)
        # An internal network (untrusted code) reaches the catcher by name, on the catcher's own port.
        values.update(mail_catcher_name=self.mail_catcher_name, mail_catcher_container_port=str(mail.CONTAINER_PORT))
        return values

    def _infra(self, spec: EnvSpec, rendered: dict[str, str], previous: dict[str, Any],
               ctx: dict[str, Any]) -> tuple[str, str]:
        root = json.loads(fill(rendered["main.tf.json"], self._platform(spec, ctx)))
        if self.host.tf_backend is not None:
            root["terraform"]["backend"] = render_backend(spec.name, dict(self.host.tf_backend))
        ctx["tf_root"] = root
        variables = ctx["logins"].terraform_vars()
        infra_digest = self._write_root(spec.name, root, variables)
        ctx["infra_digest"] = infra_digest
        if previous.get("infra_digest") == infra_digest and self.tf.has_state(spec.name):
            return "ok", "database, role and filestore unchanged"
        result = self.tf.apply(spec.name)
        return "changed", f"terraform apply ({getattr(result, 'duration_s', 0):.1f}s)"

    def _write_root(self, env: str, root: dict[str, Any], variables: dict[str, str | None]) -> str:
        self.tf.write_root(env, root, variables)
        return digest([root, digest(sorted((k, v) for k, v in variables.items() if v is not None))])

    def _retire_login(self, spec: EnvSpec, ctx: dict[str, Any]) -> str:
        """After the handover: the previous login can no longer log in and its password is gone."""
        logins: DbLogins = ctx["logins"]
        if self.secrets.get(spec.name, PREVIOUS) is None:
            return ""
        if logins.retiring:
            ctx["infra_digest"] = self._write_root(spec.name, ctx["tf_root"], logins.terraform_vars(retired=True))
            self.tf.apply(spec.name)
        self.secrets.discard(spec.name, PREVIOUS)
        return f"; login {logins.retiring} disabled" if logins.retiring else ""

    def _files(self, spec: EnvSpec, rendered: dict[str, str], ctx: dict[str, Any]) -> tuple[str, str]:
        # The database password lives in odoo.conf only (0400, the container's user): the official
        # image's entrypoint would put it on Odoo's command line, where `ps` on the host shows it.
        values = {"admin_passwd": ctx["admin_passwd"], "db_password": ctx["logins"].password}
        what = "odoo.conf"
        # The resolved setting decides: the top-level mail_catcher never reaches production (core.desired),
        # only an explicit tiers/environments.production entry does.
        if spec["mail_catcher"]:
            # The catcher authenticates each environment with its own password and files its mail under
            # it; it runs before the database step so a production clone can point its mail server at it.
            values["smtp_password"] = mail.register_env(self.host, self.secrets, spec.name)[1]
            address, port = mail.ensure_catcher(self.host, self.runtime, self.secrets, ctx["image"],
                                                name=self.mail_catcher_name)
            ctx["mail_catcher"] = (address, port)
            what += f"; mail goes to the catcher at {address}:{port}"
        conf = fill(rendered["odoo.conf"], self._platform(spec, ctx), values)
        changed = files.write_env_files(self.host.env_dir(spec.name), ctx["owner"], {"odoo.conf": conf})
        # Containers started before a rotation hold the old passwords: a new config replaces them.
        ctx["config_digest"] = digest(["odoo.conf", conf])
        ctx["credentials"] = self._credentials(spec.name)
        return ("changed" if changed else "ok"), what

    def _credentials(self, env: str) -> str | None:
        """A digest of the env's platform secrets as stored now (None before its first deploy): a
        rotation changes it, and a no-op apply then redeploys the env with the new values."""
        stored = self.secrets.values(env)  # one decryption: this runs for every env of a no-op apply
        if "db_password" not in stored:
            return None
        names = [n for n in ("db_password", "admin_passwd", mail.SECRET_NAME) if n in stored]
        return digest(["credentials", env, *(stored[n] for n in names)])[:24]

    def _container_spec(self, spec: EnvSpec, rendered: dict[str, str], ctx: dict[str, Any]) -> dict[str, Any]:
        doc = json.loads(fill(rendered["container.json"], self._platform(spec, ctx)))
        host_cpus = self._host_cpus()
        for c in doc["containers"]:
            c["image"] = ctx["image"]
            c["config_digest"] = ctx.get("config_digest")
            if c.get("cpus") and c["cpus"] > host_cpus:
                # The engine refuses a limit above the host's CPUs; the tier's request is recorded
                # in the plan and the limit becomes "all of this host".
                note = f"{c['role']} CPU limit {c['cpus']:g} capped to the host's {host_cpus}"
                ctx.setdefault("notes", []).append(note)
                c["cpus"] = float(host_cpus)
        return doc

    def _host_cpus(self) -> int:
        if not hasattr(self, "_cpus"):
            self._cpus = self.runtime.cpu_count()
        return self._cpus

    def _database(self, spec: EnvSpec, previous: dict[str, Any], report: EnvReport,
                  ctx: dict[str, Any]) -> tuple[str, str]:
        container_spec = self._container_spec(spec, ctx["rendered"], ctx)
        ctx["container_spec"] = container_spec
        step = DatabaseStep(project=self.project, host=self.host, runtime=self.runtime, secrets=self.secrets,
                            spec=spec, previous=previous, container_spec=container_spec, owner=ctx["owner"],
                            image_id=ctx["image_id"], external=ctx.get("external", []),
                            progress=lambda msg: self.progress(spec.name, "database", "start", msg))
        try:
            out = step.run()
        finally:
            # Even a failed step may have taken the pre-deploy backup: record it with the failure.
            ctx["pre_deploy_backup"] = step.backup
            ctx["database_step"] = step
        report.modules = out.modules.to_json() if out.modules is not None else None
        ctx["data"] = out.data
        ctx["working_copy"] = out.working_copy
        return out.result, out.detail

    def _drop_working_copy(self, ctx: dict[str, Any]) -> None:
        """The live database and filestore back in place if the copy was swapped in; the copy dropped."""
        copy: WorkingCopy | None = ctx.pop("working_copy", None)
        if copy is not None:
            copy.undo(self._pg())

    def _pg(self) -> Any:
        return Postgres.from_host(self.host)

    def _swap_in_working_copy(self, ctx: dict[str, Any]) -> str:
        """A copy the update changed and the tests passed takes the live name as the new version starts;
        one only tested (nothing to update) is dropped and the live database stays."""
        copy: WorkingCopy | None = ctx.get("working_copy")
        if copy is None:
            return ""
        if not copy.changed:
            ctx.pop("working_copy")
            copy.discard(self._pg())
            return ""
        copy.swap(self._pg())
        return f"; working copy {copy.db} swapped in ({copy.timings.get('swap', 0):.2f}s), the live data set aside"

    def test_tags(self, spec: EnvSpec) -> str | None:
        """What --test-tags gets: the project's tags, or its own addons' (`/mod_a,/mod_b`); None: all."""
        code = repo_modules(self.project.source.repo, spec.commit, spec["addons_paths"])
        return effective_test_tags(spec["test_tags"], code)

    def _tests(self, spec: EnvSpec, report: EnvReport, ctx: dict[str, Any]) -> tuple[str, str]:
        container_spec = ctx["container_spec"]
        web = container_spec["containers"][0]
        tags = self.test_tags(spec)
        if tags == "":
            report.tests = {"result": "skipped", "tags": "", "seconds": 0.0, "log_tail": "", "reason": None}
            return "skipped", "the repository has no addons to test (tests.tags: all runs Odoo's whole suite)"
        copy: WorkingCopy | None = ctx.get("working_copy")
        # On the working copy when there is one: what tests write never reaches the live database.
        cmd = run_tests_command(copy.db if copy is not None else spec.name, tags)
        run = self.runtime.run_once(container_spec, web, cmd, timeout_s=3600, tail=5000)
        passed = run.ok
        # Why it failed, from Odoo's log: the failing test and its assertion, or the install error.
        why = "" if passed else (odoo_log.parse(run.logs).headline() or (
            "timed out" if run.timed_out else f"odoo exited with code {run.exit_code}"))
        report.tests = {"result": "passed" if passed else "failed", "tags": tags if tags is not None else "all",
                        "seconds": round(run.duration_s, 2), "log_tail": "\n".join(run.logs.splitlines()[-15:]),
                        "reason": why or None}
        required = self.project.policy.gates.get(str(spec.tier), {}).get("tests_required", False)
        if not passed and required:
            failed = StepFailed(OdooOpsError("TESTS_FAILED", why, f"fix the failing tests on {spec.branch} and push",
                                             {"test_tags": tags}), odoo_log.excerpt(run.logs))
            # Production tests run on the updated live database (no working copy there): a refused
            # update is undone by restoring the backup taken before it, like a failed migration.
            step: DatabaseStep | None = ctx.get("database_step")
            backup = ctx.get("pre_deploy_backup")
            if copy is None and step is not None and backup is not None and backup.get("to_commit") == spec.commit:
                step.restore_pre_deploy_backup(backup, failed)
            raise failed
        return ("ok", "passed") if passed else ("failed", why)

    def _runtime_step(self, spec: EnvSpec, previous: dict[str, Any], ctx: dict[str, Any]) -> tuple[str, str]:
        # A running web container keeps serving while its replacement starts beside it (blue/green):
        # the route moves only once the new one passes /web/health on its own port.
        swapped = self._swap_in_working_copy(ctx)
        result = self.runtime.ensure(ctx["container_spec"], handover=self.handover)
        ctx["handovers"] = list(result.handovers)
        ctx["upstream"] = result.observed.web_upstream
        ctx["websocket_upstream"] = result.observed.websocket_upstream
        for h in result.handovers:
            if not h.new_upstream:
                raise OdooOpsError("RUNTIME_NO_PORT", f"the new web container of {spec.name} publishes no port",
                                   f"odooops logs {spec.name}")
            # The evented (websocket) port too: Odoo starts that process a moment after the HTTP workers,
            # and the route switches both at once.
            for upstream in filter(None, (h.new_upstream, h.new_websocket)):
                health = wait_healthy(f"http://{upstream}", timeout_s=self._health_timeout(spec))
                if not health.healthy:
                    logs = self._logs_of(h.new_id)
                    self._restore_previous(spec, previous, ctx)
                    try:
                        health.raise_if_unhealthy(spec.name)
                    except OdooOpsError as exc:
                        exc.remediation += "; the previous version kept serving"
                        raise StepFailed(exc, logs) from exc
            ctx["upstream"], ctx["websocket_upstream"] = h.new_upstream, h.new_websocket
        capped = "; " + "; ".join(ctx["notes"]) if ctx.get("notes") else ""
        capped += swapped
        if result.handovers:
            capped = f"; {len(result.handovers)} started beside the serving one (no downtime){capped}"
        if result.changed:
            return "changed", f"created {len(result.created)}, replaced {len(result.replaced)}{capped}"
        return "ok", f"containers already match (no restart){capped}"

    def _health_timeout(self, spec: EnvSpec) -> float:
        return float(self.project.policy.gates.get(str(spec.tier), {}).get("health_timeout", 120))

    def _logs_of(self, container_id: str) -> str:
        with contextlib.suppress(OdooOpsError):
            return self.runtime.container_logs(container_id)
        return ""

    def _abandon_handovers(self, spec: EnvSpec, ctx: dict[str, Any]) -> None:
        """Route back to the containers that kept running and remove their would-be replacements."""
        for h in ctx.pop("handovers", []):
            with contextlib.suppress(OdooOpsError):
                if h.old_upstream:
                    self.router.set_route(spec.name, spec["domains"], h.old_upstream, h.old_websocket)
                self.runtime.abandon(h)

    def _restore_previous(self, spec: EnvSpec, previous: dict[str, Any], ctx: dict[str, Any]) -> None:
        """Put the last healthy version back: a failed deploy must not take the environment down."""
        self._abandon_handovers(spec, ctx)
        self._drop_working_copy(ctx)  # and its data: the live database set aside by the swap returns
        old = previous.get("container_spec")
        if old and previous.get("state") == "running":
            restored = self.runtime.ensure(old)
            if restored.observed.web_upstream:
                self.router.set_route(spec.name, spec["domains"], restored.observed.web_upstream,
                                      restored.observed.websocket_upstream)
            ctx["restored_previous"] = True

    def _route(self, spec: EnvSpec, ctx: dict[str, Any]) -> tuple[str, str]:
        if not ctx.get("upstream"):
            raise OdooOpsError("RUNTIME_NO_PORT", f"the web container of {spec.name} publishes no port",
                               f"odooops logs {spec.name}")
        # HTTP and websocket upstreams switch together, in one write of the route.
        changed = self.router.set_route(spec.name, spec["domains"], ctx["upstream"], ctx.get("websocket_upstream"))
        return ("changed" if changed else "ok"), f"{spec['domains'][0]} -> {ctx['upstream']}"

    def _health(self, spec: EnvSpec, previous: dict[str, Any], ctx: dict[str, Any]) -> tuple[str, str]:
        result = wait_healthy(self.host.router_http, host_header=spec["domains"][0],
                              timeout_s=self._health_timeout(spec))
        if result.healthy and ctx.get("websocket_upstream"):
            # Real-time too: the evented process (it serves /web/health as well) answers on its port.
            result = wait_healthy(f"http://{ctx['websocket_upstream']}", timeout_s=self._health_timeout(spec))
        if result.healthy:
            retired = ctx.pop("handovers", [])
            for h in retired:
                self.runtime.promote(h)
            copy: WorkingCopy | None = ctx.pop("working_copy", None)
            if copy is not None:
                copy.finish(self._pg())  # the set-aside live data goes once the new version is healthy
            return "ok", f"/web/health passed after {result.elapsed_s:.1f}s" + (
                f"; {len(retired)} old container retired" if retired else "") + self._retire_login(spec, ctx)
        # The failing version's logs, read before it is removed.
        pending = ctx.get("handovers") or []
        logs = "".join(self._logs_of(h.new_id) for h in pending)
        if not pending:
            with contextlib.suppress(OdooOpsError):
                logs = self.runtime.logs(spec.name)
        self._restore_previous(spec, previous, ctx)
        try:
            result.raise_if_unhealthy(spec.name)
        except OdooOpsError as exc:
            raise StepFailed(exc, logs) from exc
        return "ok", ""

    # ------------------------------------------------------------------ records

    def _record(self, spec: EnvSpec, report: EnvReport, state: str, previous: dict[str, Any],
                ctx: dict[str, Any]) -> None:
        extra: dict[str, Any] = {
            "url": report.url or previous.get("url"), "steps": [s.to_json() for s in report.steps],
            "tests": report.tests, "modules": report.modules,
            "error": report.error, "plan_digest": None,
        }
        if "artifact" in ctx:
            extra["artifact"] = ctx["artifact"].id
        # How the database was built (the promotion gate reads data.source) and the backup a rollback
        # restores: kept from the previous entry until a deploy replaces them.
        extra["data"] = ctx["data"] if ctx.get("data") is not None else previous.get("data")
        extra["pre_deploy_backup"] = ctx.get("pre_deploy_backup") or previous.get("pre_deploy_backup")
        if state == "running":
            extra.update(infra_digest=ctx.get("infra_digest"), container_spec=ctx.get("container_spec"),
                         running_commit=spec.commit, credentials=ctx.get("credentials"),
                         db_login=ctx["logins"].active)
        else:
            extra.update(infra_digest=ctx.get("infra_digest", previous.get("infra_digest")),
                         container_spec=previous.get("container_spec"),
                         running_commit=previous.get("running_commit") if previous.get("container_spec") else None,
                         db_login=previous.get("db_login"))
        entry = self.project.store.record(spec, state=state, extra=extra)
        self._note(spec.commit, spec.name, entry)

    def _note(self, commit: str, env: str, entry: dict[str, Any]) -> None:
        public = {k: v for k, v in entry.items()
                  if k not in ("container_spec", "infra_digest", "credentials", "db_login")}
        public["schema"] = "odooops/status-entry/v1"
        try:
            write_env_entry(self.project.source.repo, commit, env, public, pygit2.Signature(*SIGNATURE))
        except OdooOpsError as exc:
            self.progress(env, "note", "failed", exc.message)

    def _destroy(self, action: Action) -> EnvReport:
        report = EnvReport(action.env, "destroy", action.branch, action.old_commit)
        previous = self.project.store.entries().get(action.env, {})
        expired = "TTL" in action.reason
        try:
            self._run(report, "runtime", lambda: self._remove_runtime(action.env))
            self._run(report, "route", lambda: ("changed" if self.router.remove_route(action.env) else "ok", ""))
            self._run(report, "infra", lambda: self._destroy_infra(action.env))
            self._run(report, "files", lambda: self._destroy_files(action.env))
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

    def _remove_runtime(self, env: str) -> tuple[str, str]:
        removed = self.runtime.remove(env)
        return "changed", f"removed {len(removed.containers)} containers, {len(removed.networks)} networks"

    def _destroy_infra(self, env: str) -> tuple[str, str]:
        if not (self.tf.root / env / "main.tf.json").exists():
            return "ok", "no terraform root"
        self.tf.destroy(env)
        shutil.rmtree(self.tf.root / env, ignore_errors=True)
        return "changed", "database, role and filestore dropped"

    def _destroy_files(self, env: str) -> tuple[str, str]:
        shutil.rmtree(self.host.env_dir(env), ignore_errors=True)
        mail.drop_mailbox(self.host, env)
        self.secrets.drop(env)
        return "changed", "config, captured mail and secrets removed"
